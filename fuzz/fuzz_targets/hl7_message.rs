//! One HL7 v2 message (the content of an MLLP frame) on arbitrary bytes: charset from MSH-18,
//! strict decoding, segments, escapes, the ORU^R01 mapping and the ACK built from the
//! request's MSH. It must give an ACK and reports or a NAK text, never panic. Seeds:
//! `tests/data/hl7/*.hl7`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ack, _reports) = fgw_ingest::hl7::parse_message(data);
    assert!(!ack.is_empty(), "every message gets a reply");
});
