//! Benchmark of issue 17 (run by `bench/freetext_nocue.sh`, results in docs/benchmarks.md):
//! the cue rules alone, the morphological analyser alone and both combined, side by side, on
//! the labelled free-text sets: recall for other people's names (other + doctor), clinical
//! spans untouched, and the cost of `text::find_with` in µs per KB of text (UTF-8 bytes).
//!
//! usage: freetext_nocue [REPS=5] [SET.jsonl...]   (default: the no-cue, in-sample and
//! held-out sets of tests/data/)

#[allow(dead_code, unreachable_pub, missing_docs)] // shared with the gate tests
#[path = "../../../tests/common/freetext.rs"]
mod freetext;

use fgw_deid::text::{find_with, NameOpinions};
use std::time::Instant;

const MODES: [(NameOpinions, &str); 3] = [
    (NameOpinions::Rules, "rules alone"),
    (NameOpinions::Analyser, "analyser alone"),
    (NameOpinions::Both, "both combined (the gate)"),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut sets: Vec<String> = args.collect();
    if sets.is_empty() {
        sets = ["freetext_ja_nocue.jsonl", "freetext_ja.jsonl", "freetext_ja_holdout.jsonl"]
            .iter()
            .map(|f| format!("{root}/tests/data/{f}"))
            .collect();
    }
    // Open the analyser before timing anything.
    fgw_deid::text::analyser_ready().expect("analyser");
    let mut rows = Vec::new();
    for path in &sets {
        let items = freetext::load_path(path);
        let name = path.rsplit('/').next().unwrap_or(path);
        let ids: Vec<_> = items.iter().map(freetext::ids_of).collect();
        let bytes: usize = items.iter().map(|i| i.text.len()).sum();
        for (mode, label) in MODES {
            let m = freetext::measure_with(
                &items,
                &format!("{name}, {label}"),
                "freetext_bench.md",
                mode,
            );
            // Warm-up pass, then `reps` timed passes over the whole set.
            for (it, ids) in items.iter().zip(&ids) {
                std::hint::black_box(find_with(&it.text, ids, mode));
            }
            let t = Instant::now();
            for _ in 0..reps {
                for (it, ids) in items.iter().zip(&ids) {
                    std::hint::black_box(find_with(&it.text, ids, mode));
                }
            }
            let us_per_kb = t.elapsed().as_secs_f64() * 1e6 / reps as f64 / (bytes as f64 / 1024.0);
            let other = &m.recall["other_name"];
            rows.push(format!(
                "| {name} | {label} | {}/{} ({}) | {}/{} ({}) | {}/{} ({}) | {us_per_kb:.0} |",
                other.hit,
                other.total,
                freetext::pct(other),
                m.names.hit,
                m.names.total,
                freetext::pct(&m.names),
                m.clinical.hit,
                m.clinical.total,
                freetext::pct(&m.clinical),
            ));
        }
    }
    println!("\n## summary ({reps} timed passes per row)\n");
    println!(
        "| set | names found by | other_name | other + doctor names | clinical spans untouched | µs per KB |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
