//! The hub's manifest PUT checks on arbitrary bytes (`fgw_hub::intake::check_manifest`: id,
//! parse, facility): they must return `Ok` or `Err`, never panic or allocate without bound,
//! and an accepted manifest must name the caller's facility and re-parse to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fgw_hub::intake::exercise::manifest(data);
});
