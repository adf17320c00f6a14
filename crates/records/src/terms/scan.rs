//! Leftmost-longest dictionary scan over normalized text, with ASCII word boundaries and
//! negation markers.

use super::normalize::NChar;
use super::parse::Dict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Term,
    Site,
    Qualifier,
}

#[derive(Debug)]
pub(crate) struct Hit {
    pub(crate) kind: Kind,
    pub(crate) idx: usize,
    /// Normalized char range.
    pub(crate) s: usize,
    pub(crate) e: usize,
    pub(crate) negated: bool,
}

/// A spelling that begins or ends with an ASCII letter/digit must not run into another one
/// (so `Ra` is not found in `ERCP`), unless a space separated them in the source.
pub(crate) fn boundary_ok(v: &[NChar], s: usize, e: usize) -> bool {
    let start = s == 0
        || v[s].gap
        || !(v[s].c.is_ascii_alphanumeric() && v[s - 1].c.is_ascii_alphanumeric());
    let end = e == v.len()
        || v[e].gap
        || !(v[e - 1].c.is_ascii_alphanumeric() && v[e].c.is_ascii_alphanumeric());
    start && end
}

/// Negation markers that may follow a term (after one optional particle).
const NEGATIONS: &[&str] = &[
    "なし",
    "無し",
    "ナシ",
    "認めず",
    "認めない",
    "認められない",
    "みとめず",
    "みとめない",
    "(-)",
    "否定",
];

/// Length in chars of the negation marker right after `e`, if there is one.
fn negation_len(v: &[NChar], e: usize) -> Option<usize> {
    let rest: String = v[e..].iter().take(10).map(|n| n.c).collect();
    let rest = rest.as_str();
    let after_particle = rest.strip_prefix(['は', 'を', 'も', 'の']).unwrap_or(rest);
    let tail = ["はない", "ではない"]
        .iter()
        .find_map(|n| rest.strip_prefix(n))
        .or_else(|| NEGATIONS.iter().find_map(|n| after_particle.strip_prefix(n)))?;
    Some(rest.chars().count() - tail.chars().count())
}

/// Leftmost-longest scan over several dictionaries; on equal length the earlier dictionary
/// wins.
pub(crate) fn scan(v: &[NChar], dicts: &[(Kind, &Dict, Option<&str>)]) -> Vec<Hit> {
    let max = dicts.iter().map(|d| d.1.max_len).max().unwrap_or(0);
    let mut hits = Vec::new();
    let mut window = String::new();
    let mut offs = Vec::with_capacity(max + 1);
    let mut i = 0;
    while i < v.len() {
        window.clear();
        offs.clear();
        offs.push(0);
        for n in v.iter().skip(i).take(max) {
            window.push(n.c);
            offs.push(window.len());
        }
        let found = (1..offs.len()).rev().find_map(|len| {
            let key = &window[..offs[len]];
            dicts.iter().find_map(|&(kind, d, organ)| {
                d.get(key, organ).filter(|_| boundary_ok(v, i, i + len)).map(|idx| (kind, idx, len))
            })
        });
        match found {
            Some((kind, idx, len)) => {
                // The marker is consumed with its term so that なし is not coded on its own.
                let neg = if kind == Kind::Qualifier { None } else { negation_len(v, i + len) };
                hits.push(Hit { kind, idx, s: i, e: i + len, negated: neg.is_some() });
                i += len + neg.unwrap_or(0);
            }
            None => i += 1,
        }
    }
    hits
}
