//! Japanese free-text de-identification measured on an independent held-out set
//! (`tests/data/freetext_ja_holdout.jsonl`), written by hand without reading the scrubber's
//! rules or the in-sample set (`tests/data/freetext_ja.jsonl`). Same item format and scoring
//! as `tests/freetext_ja.rs`, kept self-contained here.
//!
//! Labelling conventions: a name span is the name only (no honorific or role word; surname and
//! given name are separate spans when written with a space); a date span is the whole date
//! expression without the weekday; phone spans include parentheses and a `+81` prefix; postal
//! codes are `address` spans without the `〒` mark; facility names, ages and bare years are left
//! unlabelled. Everything is fictitious.
//!
//! The table goes to stdout and `target/freetext_ja_holdout_metrics.md`. These are reported
//! figures, an honest measurement rather than a target to tune against. The floors asserted at
//! the end are regression guards set in the session that added romaji names, English dates,
//! workflow roles and accession numbers: each is the value measured then, rounded down to
//! 0.1%, for the own_* labels, phone numbers, other + doctor names and clinical preservation.
//! Dates, addresses, numbers, e-mail and precision are reported only.

use fgw::deid::identifiers::IdentifierSet;
use fgw::deid::text::find;
use fgw::record::{Column, RawExam, SourceRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Deserialize)]
struct Span {
    start: usize,
    end: usize,
    label: String,
}

#[derive(Deserialize)]
struct Item {
    id: u32,
    text: String,
    patient_name: String,
    patient_kana: String,
    patient_id: String,
    birth_date: String,
    phone: String,
    address: String,
    spans: Vec<Span>,
}

fn exam(fields: &[(Column, &str)]) -> RawExam {
    RawExam {
        source: SourceRef { batch: "b".into(), file: "f".into(), row: 1, line: 2 },
        fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        extra: BTreeMap::new(),
        images: vec![],
        missing_images: vec![],
        report: None,
    }
}

fn load() -> Vec<Item> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/freetext_ja_holdout.jsonl");
    let data = std::fs::read_to_string(path).expect("held-out set present");
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const LABELS: &[&str] = &[
    "own_name",
    "own_id",
    "own_birth",
    "own_phone",
    "own_address",
    "other_name",
    "doctor_name",
    "phone",
    "date",
    "address",
    "number",
    "email",
];

#[derive(Default)]
struct Count {
    total: usize,
    hit: usize,
}

impl Count {
    fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.hit as f64 / self.total as f64
        }
    }
}

#[test]
fn held_out_set_metrics() {
    let items = load();
    assert!(items.len() >= 120, "{} items", items.len());
    let mut recall: BTreeMap<&str, Count> = LABELS.iter().map(|l| (*l, Count::default())).collect();
    // Per match kind: matched chars, and how many of them are inside an identifier span.
    let mut precision: BTreeMap<&'static str, Count> = BTreeMap::new();
    let mut clinical = Count::default();
    let mut misses = Vec::new();
    let mut damaged = Vec::new();
    let mut extra = Vec::new();
    for it in &items {
        let ids = IdentifierSet::from_exam(&exam(&[
            (Column::PatientName, &it.patient_name),
            (Column::PatientKana, &it.patient_kana),
            (Column::PatientId, &it.patient_id),
            (Column::BirthDate, &it.birth_date),
            (Column::Phone, &it.phone),
            (Column::Address, &it.address),
        ]));
        let n = it.text.chars().count();
        let matches = find(&it.text, &ids);
        let mut covered = vec![false; n];
        for m in &matches {
            covered[m.start..m.end].iter_mut().for_each(|c| *c = true);
        }
        let mut ident = vec![false; n];
        for s in it.spans.iter().filter(|s| s.label != "clinical") {
            ident[s.start..s.end].iter_mut().for_each(|c| *c = true);
        }
        let chars: Vec<char> = it.text.chars().collect();
        let piece = |s: &Span| chars[s.start..s.end].iter().collect::<String>();
        for s in &it.spans {
            if s.label == "clinical" {
                clinical.total += 1;
                if covered[s.start..s.end].iter().all(|c| !c) {
                    clinical.hit += 1;
                } else {
                    damaged.push(format!("#{} clinical damaged {:?}", it.id, piece(s)));
                }
                continue;
            }
            let c = recall.get_mut(s.label.as_str()).expect("known label");
            c.total += 1;
            if covered[s.start..s.end].iter().all(|c| *c) {
                c.hit += 1;
            } else {
                let left: String =
                    (s.start..s.end).filter(|i| !covered[*i]).map(|i| chars[i]).collect();
                misses.push(format!(
                    "#{} {} missed {:?} (left {left:?})",
                    it.id,
                    s.label,
                    piece(s)
                ));
            }
        }
        for m in &matches {
            let p = precision.entry(m.hit.key()).or_default();
            let inside = ident[m.start..m.end].iter().filter(|c| **c).count();
            p.total += m.end - m.start;
            p.hit += inside;
            if inside < m.end - m.start {
                let over: String = chars[m.start..m.end].iter().collect();
                extra.push(format!("#{} {} over-matched {over:?}", it.id, m.hit.key()));
            }
        }
    }

    let names = Count {
        total: recall["other_name"].total + recall["doctor_name"].total,
        hit: recall["other_name"].hit + recall["doctor_name"].hit,
    };
    let all_prec = Count {
        total: precision.values().map(|c| c.total).sum(),
        hit: precision.values().map(|c| c.hit).sum(),
    };
    let pct = |c: &Count| format!("{:.1}%", 100.0 * c.rate());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Japanese free text, held-out set (`tests/freetext_ja_holdout.rs`, {} items)\n",
        items.len()
    );
    let _ = writeln!(md, "| label | spans | caught | recall |\n|---|---:|---:|---:|");
    for (l, c) in &recall {
        let _ = writeln!(md, "| {l} | {} | {} | {} |", c.total, c.hit, pct(c));
    }
    let _ = writeln!(
        md,
        "| other + doctor names | {} | {} | {} |",
        names.total,
        names.hit,
        pct(&names)
    );
    let _ =
        writeln!(md, "\n| match kind | matched chars | inside a labelled identifier | precision |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for (k, c) in &precision {
        let _ = writeln!(md, "| {k} | {} | {} | {} |", c.total, c.hit, pct(c));
    }
    let _ = writeln!(md, "| all | {} | {} | {} |", all_prec.total, all_prec.hit, pct(&all_prec));
    let _ = writeln!(
        md,
        "\nClinical spans untouched: {} of {} ({}).",
        clinical.hit,
        clinical.total,
        pct(&clinical)
    );
    println!("{md}");
    // Fictitious data only, so every missed or over-matched piece may be shown.
    for m in misses.iter().chain(&damaged).chain(&extra) {
        println!("  {m}");
    }
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_string());
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(format!("{dir}/freetext_ja_holdout_metrics.md"), &md).expect("write metrics");

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
    if names.rate() < 0.922 {
        failed.push(format!("other + doctor names {} < 0.922", pct(&names)));
    }
    if clinical.rate() < 0.993 {
        failed.push(format!("clinical preservation {} < 0.993", pct(&clinical)));
    }
    assert!(failed.is_empty(), "regression guards not met: {failed:?}");
}
