//! The DICOM read + de-identification path on arbitrary bytes: it must return `Ok` or `Err`,
//! never panic, overflow the stack or allocate without bound.
#![no_main]

use fgw_deid::dicom::{deidentify_dicom, DicomPolicy};
use fgw_deid::{DeidContext, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use libfuzzer_sys::fuzz_target;
use ring::hmac;

static PIXELS: std::sync::LazyLock<fgw_deid::pixels::PixelStage> = std::sync::LazyLock::new(|| {
    fgw_deid::pixels::PixelStage::new(fgw_deid::pixels::PixelSettings {
        mode: fgw_deid::pixels::PixelMode::Withhold,
        ..Default::default()
    })
});

fuzz_target!(|data: &[u8]| {
    let fac = FacilityId::new("F0001").expect("valid id");
    let ps = Pseudonymizer::new(hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]));
    let policy = Policy::default();
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &policy,
        profile: "fuzz",
        revision: 1,
        // The header path only; pixels have their own target (jpeg_mask).
        pixels: &PIXELS,
    };
    // Raw bytes as they are, and behind a preamble so the data set parser is reached often.
    let _ = deidentify_dicom("fuzz.dcm", data, &ctx, &DicomPolicy::default());
    let mut framed = vec![0u8; 128];
    framed.extend_from_slice(b"DICM");
    framed.extend_from_slice(data);
    let _ = deidentify_dicom("fuzz.dcm", &framed, &ctx, &DicomPolicy::default());
});
