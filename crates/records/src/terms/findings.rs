//! Free-text findings → one [`Finding`] per sentence: its site (qualifiers post-coordinated)
//! and its diagnosis terms, with the organ context carried from sentence to sentence.

use super::normalize::norm_chars;
use super::scan::{scan, Hit, Kind};
use super::{TermCategory, TermList};
use fgw_format::package::{Finding, TermRef};
use std::collections::HashSet;

impl TermList {
    /// Findings from scrubbed free text: one per sentence (split on 。, newline, ；/;), with the
    /// sentence's site (longest site match, qualifiers post-coordinated) and its diagnosis and
    /// macroscopic terms (deduplicated, in order). Sentences without site or term are kept.
    pub fn extract_findings(&self, text: &str) -> Vec<Finding> {
        let site_d = &self.dicts[TermCategory::Site.index()];
        let dx_d = &self.dicts[TermCategory::Diagnosis.index()];
        let mut organ: Option<String> = None;
        let mut out = Vec::new();
        for sentence in text.split(['。', '\n', '\r', '；', ';']) {
            let sentence = sentence.trim();
            if !sentence.chars().any(char::is_alphanumeric) {
                continue;
            }
            let v = norm_chars(sentence);
            let dicts = |o: Option<&str>| {
                scan(
                    &v,
                    &[
                        (Kind::Term, dx_d, o),
                        (Kind::Site, site_d, None),
                        (Kind::Qualifier, &self.qualifiers, None),
                    ],
                )
            };
            // Sites and terms compete in one scan so 胃 is not taken out of 早期胃癌.
            let mut hits = dicts(organ.as_deref());
            if let Some(h) = best_site(&hits) {
                let o = site_d.terms[h.idx].organ.clone();
                if o != organ {
                    organ = o;
                    hits = dicts(organ.as_deref());
                }
            }
            let site = best_site(&hits).map(|sh| {
                let t = &site_d.terms[sh.idx];
                let next_site = hits
                    .iter()
                    .filter(|h| h.kind == Kind::Site && h.s > sh.s)
                    .map(|h| h.s)
                    .min()
                    .unwrap_or(usize::MAX);
                let mut code = t.code.clone();
                let mut label = t.label.clone();
                let mut seen = HashSet::new();
                for q in hits.iter().filter(|h| {
                    h.kind == Kind::Qualifier && !h.negated && h.s > sh.s && h.s < next_site
                }) {
                    let qt = &self.qualifiers.terms[q.idx];
                    if seen.insert(q.idx) {
                        code.push('/');
                        code.push_str(&qt.code);
                        label.push_str(&qt.label);
                    }
                }
                TermRef { code: Some(code), label, unmapped: false }
            });
            let mut seen = HashSet::new();
            let terms = hits
                .iter()
                .filter(|h| h.kind == Kind::Term && !h.negated && seen.insert(h.idx))
                .map(|h| dx_d.terms[h.idx].to_ref())
                .collect();
            out.push(Finding { site, terms, text: sentence.to_string() });
        }
        out
    }
}

fn best_site(hits: &[Hit]) -> Option<&Hit> {
    // Longest wins; on a tie the first (max_by_key would keep the last).
    hits.iter().filter(|h| h.kind == Kind::Site).fold(None, |best: Option<&Hit>, h| match best {
        Some(b) if b.e - b.s >= h.e - h.s => Some(b),
        _ => Some(h),
    })
}
