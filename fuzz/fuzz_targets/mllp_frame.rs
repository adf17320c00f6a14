//! MLLP deframing on arbitrary bytes, split into reads where the input says: the bytes after
//! each 0xFF byte start a new read. Each completed frame then goes through the message path
//! (`hl7_message`). It must frame, refuse or close, never panic or grow past the listener's
//! limits. Seeds: `tests/data/hl7/*.hl7` wrapped as `0x0B message 0x1C 0x0D`.
#![no_main]

use fgw_ingest::hl7::{deframe, parse_message, Deframed, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (frames, _closed) = deframe(data.split(|&b| b == 0xFF));
    for f in frames {
        match f {
            Deframed::Message(m) => {
                assert!(m.len() <= MAX_MESSAGE_BYTES);
                let _ = parse_message(&m);
            }
            Deframed::Oversize { len, .. } => {
                assert!(len > MAX_MESSAGE_BYTES && len <= MAX_FRAME_BYTES)
            }
        }
    }
});
