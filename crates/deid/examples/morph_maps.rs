//! How many times the MeCab dictionary is mapped when several threads analyse text, as the
//! gateway's blocking threads do: 4 threads each scrub a Japanese text with the analyser, and,
//! while all 4 are still alive (their per-thread state too), the mappings of the dictionary's
//! big files in /proc/self/maps are counted and the resident set is read. Linux only.
//!
//! usage: cargo run -p fgw-deid --example morph_maps   (sys.dic must be mapped 1 time)

use fgw_deid::identifiers::IdentifierSet;
use fgw_deid::text::{find_with, NameOpinions};
use std::sync::{Arc, Barrier};

const THREADS: usize = 4;
const DICTIONARY_DIR: &str = "/var/lib/mecab/dic/ipadic-utf8";

/// Mappings of `file` (a path) in this process.
fn mappings(maps: &str, file: &str) -> usize {
    maps.lines().filter(|l| l.split_whitespace().nth(5) == Some(file)).count()
}

fn main() {
    let text = "説明は中村一郎に行った。\n次回は小林直樹が同伴予定。";
    let analysed = Arc::new(Barrier::new(THREADS + 1));
    let counted = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (analysed, counted) = (analysed.clone(), counted.clone());
            std::thread::spawn(move || {
                let found = find_with(text, &IdentifierSet::default(), NameOpinions::Analyser);
                analysed.wait();
                counted.wait();
                found.len()
            })
        })
        .collect();
    analysed.wait();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    counted.wait();
    for t in threads {
        t.join().expect("analysing thread");
    }
    println!("threads that analysed: {THREADS}");
    for f in ["sys.dic", "matrix.bin"] {
        println!("{f} mapped: {} time(s)", mappings(&maps, &format!("{DICTIONARY_DIR}/{f}")));
    }
    for l in status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("RssFile")) {
        println!("{l}");
    }
}
