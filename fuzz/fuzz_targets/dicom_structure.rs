//! The structure check that runs before any DICOM parse (`fgw_format::dicom_structure`), and
//! the parses that follow it on the identifiable side: a received C-STORE data set
//! (`fgw_ingest::dicom_scp::check_received`) and a C-FIND response identifier
//! (`fgw_ingest::dicom_pull::read_find_match`). Each must return `Ok` or `Err`, never panic,
//! overflow the stack (the depth bound exists for exactly that) or allocate without bound.
//!
//! Input: one selector byte (transfer syntax: implicit LE, explicit LE, explicit BE, JPEG
//! Baseline), then the data set bytes as they arrive in P-DATA (no preamble, no meta group).
#![no_main]

use fgw_format::dicom_structure::{self, Encoding, Limits};
use fgw_ingest::dicom_scp::{check_received, Uid};
use libfuzzer_sys::fuzz_target;

const SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2",      // Implicit VR Little Endian
    "1.2.840.10008.1.2.1",    // Explicit VR Little Endian
    "1.2.840.10008.1.2.2",    // Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50", // JPEG Baseline (encapsulated pixel data)
];

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = data.split_first() else { return };
    let ts = SYNTAXES[usize::from(*sel) % SYNTAXES.len()];
    let encoding = Encoding::of_transfer_syntax(ts).expect("not deflated");
    // Every tag a sequence in implicit VR, or none: both extremes of the dictionary answer.
    let all = |_| true;
    let none = |_| false;
    let pick: &dyn Fn(dicom_structure::ElementTag) -> bool =
        if sel & 0x80 != 0 { &all } else { &none };
    let _ = dicom_structure::scan_data_set(body, 0, encoding, Limits::OBJECT, pick);
    let _ = dicom_structure::file_meta(body);

    let uid = |s: &str| Uid::new(s).expect("built-in UID");
    let (class, instance) = (uid("1.2.840.10008.5.1.4.1.1.7"), uid("1.2.3.4.5"));
    let _ = check_received(&uid(ts), body, &class, &instance);
    if sel % 4 < 2 {
        // The pull negotiates only the two little-endian uncompressed syntaxes.
        let _ = fgw_ingest::dicom_pull::read_find_match(body, ts);
    }
});
