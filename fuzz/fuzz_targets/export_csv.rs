//! The export table path on arbitrary bytes: encoding detection (UTF-8 with or without BOM,
//! CP932), strict decoding, RFC 4180 parsing and the vendor profile's mapping, as
//! `read_batch` runs them on `exams.csv`. It must return rows or an error, never panic. The
//! first byte picks the profile (even: reference, odd: vendor-b). Seeds: an `exams.csv` of
//! `cargo run -p fgw-synth --example synth_department -- DIR --exams 5` (CP932; `--utf8` for
//! UTF-8 with BOM) with one profile byte in front.
#![no_main]

use fgw_ingest::export::{parse_batch_bytes, Profile};
use libfuzzer_sys::fuzz_target;

static PROFILES: std::sync::LazyLock<[Profile; 2]> = std::sync::LazyLock::new(|| {
    [Profile::reference(), Profile::builtin("vendor-b").expect("built-in profile")]
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let profile = &PROFILES[usize::from(pick & 1)];
    match parse_batch_bytes("20261125T2300", bytes, profile) {
        Ok(rows) => {
            for e in &rows.errors {
                let _ = e.to_string();
            }
            for exam in &rows.exams {
                let _ = exam.source.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
