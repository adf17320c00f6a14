//! Japanese free-text de-identification measured on an independent held-out set
//! (`tests/data/freetext_ja_holdout.jsonl`), written by hand without reading the scrubber's
//! rules or the in-sample set (`tests/data/freetext_ja.jsonl`). Same item format and scoring
//! as `tests/freetext_ja.rs` (`tests/common/freetext.rs`).
//!
//! Labelling conventions: a name span is the name only (no honorific or role word; surname and
//! given name form one span); a date span is the whole date
//! expression without the weekday; phone spans include parentheses and a `+81` prefix; postal
//! codes are `address` spans including the `〒` mark; facility names, ages and bare years are left
//! unlabelled. Everything is fictitious.
//!
//! The table goes to stdout and `target/freetext_ja_holdout_metrics.md`. These are reported
//! figures, an honest measurement rather than a target to tune against. The floors asserted at
//! the end are regression guards set in the session that added romaji names, English dates,
//! workflow roles and accession numbers: each is the value measured then, rounded down to
//! 0.1%, for the own_* labels, phone numbers, other + doctor names and clinical preservation.
//! Dates, addresses, numbers, e-mail and precision are reported only.

use crate::common;
use common::freetext::{load, measure, pct};

#[test]
fn held_out_set_metrics() {
    let items = load("freetext_ja_holdout.jsonl");
    assert!(items.len() >= 120, "{} items", items.len());
    let m = measure(
        &items,
        "Japanese free text, held-out set (`tests/freetext_ja_holdout.rs`)",
        "freetext_ja_holdout_metrics.md",
    );
    let (recall, names, clinical) = (&m.recall, &m.names, &m.clinical);

    // Regression guards: the measured values when they were set, rounded down to 0.1%. Not
    // 100% targets; a change that lowers one must explain why.
    let floors = [
        ("own_name", 0.991), // LI Meiling: a Chinese reading the kana (リー) does not give
        ("own_id", 1.0),
        ("own_birth", 1.0),
        ("own_phone", 1.0),
        ("own_address", 0.916), // 大津市におの浜: hiragana town name after the city
        ("phone", 1.0),
    ];
    let mut failed: Vec<String> = floors
        .iter()
        .filter(|(l, floor)| recall[*l].rate() < *floor)
        .map(|(l, floor)| format!("{l} {} < {floor}", pct(&recall[*l])))
        .collect();
    // 0.922 with the cue rules alone; 0.988 since the analyser finds names without cues
    // (issue 17: 89 of 90, the one left is 王 偉).
    if names.rate() < 0.988 {
        failed.push(format!("other + doctor names {} < 0.988", pct(names)));
    }
    if clinical.rate() < 0.993 {
        failed.push(format!("clinical preservation {} < 0.993", pct(clinical)));
    }
    assert!(failed.is_empty(), "regression guards not met: {failed:?}");
}
