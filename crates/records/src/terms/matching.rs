//! Term columns → codes: whole-text lookup, every known term inside an item, and the split
//! of a column into items.

use super::normalize::{norm_chars, normalize};
use super::scan::{boundary_ok, scan, Kind};
use super::{unmapped, TermCategory, TermList};
use fgw_format::package::TermRef;

impl TermList {
    /// Whole-text mapping: the term, or an unmapped reference carrying `text` (already
    /// scrubbed by the caller) as its label.
    pub fn map(&self, cat: TermCategory, text: &str) -> TermRef {
        match self.lookup(cat, text) {
            Some(t) => t.to_ref(),
            None => unmapped(text.trim()),
        }
    }

    /// Every known term inside one item, leftmost-longest, in order; meaningful text left over
    /// becomes one trailing unmapped reference. An item with no known term is one unmapped
    /// reference. Empty items give nothing.
    pub fn map_all(&self, cat: TermCategory, item: &str) -> Vec<TermRef> {
        self.map_all_in(cat, item, None)
    }

    /// [`TermList::map_all`] with an organ context (e.g. `colon` for a lower-GI exam), so that
    /// organ-specific spellings such as 腺腫 map.
    pub fn map_all_in(&self, cat: TermCategory, item: &str, organ: Option<&str>) -> Vec<TermRef> {
        let v = norm_chars(item);
        let hits = scan(&v, &[(Kind::Term, &self.dicts[cat.index()], organ)]);
        let d = &self.dicts[cat.index()];
        let mut out = Vec::new();
        let mut rest = Vec::new();
        let mut pos = 0;
        for h in hits.iter().filter(|h| !h.negated) {
            let (start, end) = (v[h.s].start, v[h.e - 1].end);
            if start > pos {
                rest.push(&item[pos..start]);
            }
            out.push(d.terms[h.idx].to_ref());
            pos = pos.max(end);
        }
        rest.push(&item[pos..]);
        if out.is_empty() {
            let t = item.trim();
            return if t.is_empty() { Vec::new() } else { vec![unmapped(t)] };
        }
        let rest: Vec<&str> = rest
            .into_iter()
            .map(|p| p.trim_matches(|c: char| c.is_whitespace() || is_separator_punct(c)))
            .filter(|p| meaningful(p))
            .collect();
        if !rest.is_empty() {
            out.push(unmapped(&rest.join(" ")));
        }
        out
    }

    /// Splits a term column into items and maps each with [`TermList::map_all`].
    pub fn map_list(&self, cat: TermCategory, text: &str) -> Vec<TermRef> {
        self.split_terms(text).into_iter().flat_map(|i| self.map_all(cat, i)).collect()
    }

    /// Splits a term list on `;` `；` `、` `,` `，` `/` `／` and newlines, trimmed, empty items
    /// dropped. A '/' inside a known spelling (`SSA/P`) does not split; `+` never splits, so
    /// `0-Ⅱa+Ⅱc` stays one item.
    pub fn split_terms<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let v = norm_chars(text);
        let mut protected: Vec<(usize, usize)> = Vec::new();
        for key in &self.slash_keys {
            if key.len() > v.len() {
                continue;
            }
            for i in 0..=(v.len() - key.len()) {
                if v[i..i + key.len()].iter().zip(key).all(|(n, k)| n.c == *k)
                    && boundary_ok(&v, i, i + key.len())
                {
                    protected.push((v[i].start, v[i + key.len() - 1].end));
                }
            }
        }
        let mut out = Vec::new();
        let mut from = 0;
        for (i, c) in text.char_indices() {
            let split = match c {
                ';' | '；' | '、' | ',' | '，' | '\n' | '\r' => true,
                '/' | '／' => !protected.iter().any(|&(s, e)| s <= i && i < e),
                _ => false,
            };
            if split {
                out.push(&text[from..i]);
                from = i + c.len_utf8();
            }
        }
        out.push(&text[from..]);
        out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
    }
}

fn is_separator_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c, '、' | '。' | '，' | '．' | '・' | '（' | '）' | '「' | '」' | '：' | '；')
}

/// Leftovers that carry no information of their own once the terms are coded.
const FILLER: &[&str] = &[
    "に",
    "を",
    "の",
    "と",
    "で",
    "は",
    "が",
    "および",
    "及び",
    "あり",
    "有り",
    "施行",
    "実施",
    "を施行",
    "施行した",
    "にて",
    "型",
    "病変",
];

fn meaningful(piece: &str) -> bool {
    let n: String = normalize(piece).chars().filter(|c| c.is_alphanumeric()).collect();
    !n.is_empty() && !FILLER.contains(&n.as_str())
}
