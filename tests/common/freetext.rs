//! Scoring of a labelled free-text set (JSONL: text, the patient's own identifiers, labelled
//! spans in characters), shared by the in-sample and the held-out test.

use fgw_deid::identifiers::IdentifierSet;
use fgw_deid::text::{find_with, NameOpinions};
use fgw_records::{Column, RawExam};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub label: String,
}

#[derive(Deserialize)]
pub struct Item {
    pub id: u32,
    pub text: String,
    pub patient_name: String,
    pub patient_kana: String,
    pub patient_id: String,
    pub birth_date: String,
    pub phone: String,
    pub address: String,
    pub spans: Vec<Span>,
}

pub fn load(file: &str) -> Vec<Item> {
    load_path(&format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR")))
}

/// A labelled set by path (the benchmark example, built in another package, passes it).
pub fn load_path(path: &str) -> Vec<Item> {
    let data = std::fs::read_to_string(path).expect("labelled set present");
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub const LABELS: &[&str] = &[
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
pub struct Count {
    pub total: usize,
    pub hit: usize,
}

impl Count {
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.hit as f64 / self.total as f64
        }
    }
}

pub fn pct(c: &Count) -> String {
    format!("{:.1}%", 100.0 * c.rate())
}

/// What a run measured. `notes` lists missed, damaged and over-matched pieces (fictitious
/// data only, so they may be shown).
pub struct Metrics {
    pub recall: BTreeMap<&'static str, Count>,
    pub precision: BTreeMap<&'static str, Count>,
    pub clinical: Count,
    /// other_name + doctor_name.
    pub names: Count,
    pub markdown: String,
    pub notes: Vec<String>,
}

/// Score `items` with `deid::text::find` (the matcher the verifier uses too). A labelled
/// identifier counts as caught when every character is covered; precision is the share of
/// matched characters inside some labelled identifier; a clinical span is preserved when no
/// match touches it. The table is written to `target/<metrics_file>` as well.
pub fn measure(items: &[Item], title: &str, metrics_file: &str) -> Metrics {
    measure_with(items, title, metrics_file, NameOpinions::Both)
}

/// The `IdentifierSet` of an item's own fields.
pub fn ids_of(it: &Item) -> IdentifierSet {
    IdentifierSet::from_exam(&RawExam::with_fields(&[
        (Column::PatientName, &it.patient_name),
        (Column::PatientKana, &it.patient_kana),
        (Column::PatientId, &it.patient_id),
        (Column::BirthDate, &it.birth_date),
        (Column::Phone, &it.phone),
        (Column::Address, &it.address),
    ]))
}

/// [`measure`] with a choice of name opinions (`deid::text::find_with`): the benchmark sets
/// the cue rules, the analyser and both side by side.
pub fn measure_with(
    items: &[Item],
    title: &str,
    metrics_file: &str,
    opinions: NameOpinions,
) -> Metrics {
    let mut recall: BTreeMap<&str, Count> = LABELS.iter().map(|l| (*l, Count::default())).collect();
    let mut precision: BTreeMap<&'static str, Count> = BTreeMap::new();
    let mut clinical = Count::default();
    let mut notes = Vec::new();
    for it in items {
        let ids = ids_of(it);
        let n = it.text.chars().count();
        let matches = find_with(&it.text, &ids, opinions);
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
                    notes.push(format!("#{} clinical damaged {:?}", it.id, piece(s)));
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
                notes.push(format!("#{} {} missed {:?} (left {left:?})", it.id, s.label, piece(s)));
            }
        }
        for m in &matches {
            let p = precision.entry(m.hit.key()).or_default();
            let inside = ident[m.start..m.end].iter().filter(|c| **c).count();
            p.total += m.end - m.start;
            p.hit += inside;
            if inside < m.end - m.start {
                let over: String = chars[m.start..m.end].iter().collect();
                notes.push(format!("#{} {} over-matched {over:?}", it.id, m.hit.key()));
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
    let mut md = String::new();
    let _ = writeln!(md, "### {title} ({} items)\n", items.len());
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
    for m in &notes {
        println!("  {m}");
    }
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_string());
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(format!("{dir}/{metrics_file}"), &md).expect("write metrics");
    Metrics { recall, precision, clinical, names, markdown: md, notes }
}
