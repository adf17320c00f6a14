//! Names without cues (issue 17): other people's names in sentences with no honorific, role,
//! relation word, bracket or signature, beside clinical eponyms, drugs and anatomy, measured
//! on `tests/data/freetext_ja_nocue.jsonl` (made by `tests/data/make_freetext_ja_nocue.py`).
//! Same item format and scoring as the other free-text sets (`tests/common/freetext.rs`).
//!
//! The cue rules alone catch almost none of these names; the morphological analyser (MeCab
//! with IPADIC, `fgw_deid::text_ja`) is what finds them. The targets of the issue are
//! asserted on the gate's matcher (`text::find`, both opinions combined): recall for other
//! people's names at least 98%, clinical spans untouched at least 99%. The table goes to
//! stdout and `target/freetext_ja_nocue_metrics.md`; `bench/freetext_nocue.sh` sets the rules
//! alone, the analyser alone and both side by side, with their cost.

use crate::common;
use common::freetext::{load, measure, measure_with, pct};
use fgw_deid::identifiers::IdentifierSet;
use fgw_deid::text::{scrub, NameOpinions};
use fgw_records::{Column, RawExam};

#[test]
fn no_cue_set_metrics() {
    let items = load("freetext_ja_nocue.jsonl");
    assert!(items.len() >= 200, "{} items", items.len());
    let m = measure(
        &items,
        "Japanese free text, names without cues (`tests/gate/freetext_ja_nocue.rs`)",
        "freetext_ja_nocue_metrics.md",
    );
    assert!(m.recall["other_name"].total >= 400, "{} names", m.recall["other_name"].total);
    assert!(m.clinical.total >= 300, "{} clinical spans", m.clinical.total);
    assert!(m.recall["other_name"].rate() >= 0.98, "name recall {}", pct(&m.recall["other_name"]));
    assert!(m.clinical.rate() >= 0.99, "clinical preservation {}", pct(&m.clinical));
}

/// The set needs the analyser: the cue rules alone leave most of its names. Guards against a
/// set that the rules already pass (which would make the test above prove nothing).
#[test]
fn the_rules_alone_miss_these_names() {
    let items = load("freetext_ja_nocue.jsonl");
    let m = measure_with(&items, "rules alone", "freetext_ja_nocue_rules.md", NameOpinions::Rules);
    assert!(m.recall["other_name"].rate() < 0.5, "rules alone {}", pct(&m.recall["other_name"]));
}

/// The examples of the issue, end to end through `scrub`.
#[test]
fn the_issue_examples() {
    let ids = IdentifierSet::default();
    let s = |t: &str| scrub(t, &ids).text;
    assert_eq!(s("説明は中村一郎に行った"), "説明は[氏名]に行った");
    assert_eq!(s("次回は小林直樹が予約を取る"), "次回は[氏名]が予約を取る");
    // A replacement is finished: when the record names the referring physician by surname
    // only, the given name written after it in the text goes with it, under the same
    // placeholder (it was left as 「[医師]健太」).
    let physician = IdentifierSet::from_exam(&RawExam::with_fields(&[
        (Column::PatientName, "宇佐美 琴音"),
        (Column::ReferringPhysician, "鈴木"),
    ]));
    assert_eq!(scrub("紹介元は鈴木健太。", &physician).text, "紹介元は[医師]。");
    assert_eq!(scrub("紹介元は鈴木 健太。", &physician).text, "紹介元は[医師]。");
    // Clinical eponyms stay.
    for t in ["萎縮は木村・竹本分類でC-2。", "山田Ⅲ型のポリープ", "既往に高安動脈炎。"]
    {
        assert_eq!(s(t), t);
    }
}
