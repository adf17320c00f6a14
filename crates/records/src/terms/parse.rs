//! The term file (TOML) → validated dictionaries: codes unique and well formed, labels and
//! spellings non-empty, no spelling shared by two terms after normalization, organs known.

use super::normalize::normalize;
use super::{Term, TermList, TermsError};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDe {
    version: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    exam_type: Vec<TermDe>,
    #[serde(default)]
    site: Vec<TermDe>,
    #[serde(default)]
    site_qualifier: Vec<TermDe>,
    #[serde(default)]
    diagnosis: Vec<TermDe>,
    #[serde(default)]
    treatment: Vec<TermDe>,
    #[serde(default)]
    adverse_event: Vec<TermDe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermDe {
    code: String,
    label: String,
    #[serde(default)]
    synonyms: Vec<String>,
    #[serde(default)]
    organ: Option<String>,
    #[serde(default)]
    organ_synonyms: Vec<String>,
}

/// One category: its terms and the normalized spellings that find them.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub(crate) terms: Vec<Term>,
    pub(crate) keys: HashMap<String, usize>,
    /// organ → normalized spelling → term.
    pub(crate) organ_keys: HashMap<String, HashMap<String, usize>>,
    /// Longest key, in chars (bounds the scan window).
    pub(crate) max_len: usize,
}

impl Dict {
    pub(crate) fn get(&self, key: &str, organ: Option<&str>) -> Option<usize> {
        // The organ-specific meaning wins over a general one of the same spelling.
        organ
            .and_then(|o| self.organ_keys.get(o))
            .and_then(|m| m.get(key))
            .or_else(|| self.keys.get(key))
            .copied()
    }
}

struct Builder<'a> {
    codes: &'a mut HashSet<String>,
    organs: &'a HashSet<String>,
}

impl Builder<'_> {
    fn dict(&mut self, category: &'static str, entries: Vec<TermDe>) -> Result<Dict, TermsError> {
        let mut d = Dict::default();
        for (index, t) in entries.into_iter().enumerate() {
            let code = t.code.trim().to_string();
            if code.is_empty() {
                return Err(TermsError::EmptyCode { category, index });
            }
            if !code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(TermsError::BadCode { category, code });
            }
            if !self.codes.insert(code.clone()) {
                return Err(TermsError::DuplicateCode { category, code });
            }
            let label = t.label.trim().to_string();
            if label.is_empty() {
                return Err(TermsError::EmptyLabel { category, code });
            }
            let organ = t.organ.map(|o| o.trim().to_string()).filter(|o| !o.is_empty());
            if category == "site" && organ.is_none() {
                return Err(TermsError::MissingOrgan { category, code });
            }
            if !t.organ_synonyms.is_empty() && organ.is_none() {
                return Err(TermsError::MissingOrgan { category, code });
            }
            if let Some(o) = &organ {
                if !self.organs.contains(o) {
                    let organ = o.clone();
                    return Err(TermsError::UnknownOrgan { category, code, organ });
                }
            }
            let idx = d.terms.len();
            for s in std::iter::once(&label).chain(&t.synonyms) {
                insert_key(&mut d.keys, &d.terms, &mut d.max_len, s, idx, category, &code)?;
            }
            if let Some(o) = &organ {
                let m = d.organ_keys.entry(o.clone()).or_default();
                for s in &t.organ_synonyms {
                    insert_key(m, &d.terms, &mut d.max_len, s, idx, category, &code)?;
                }
            }
            d.terms.push(Term {
                code,
                label,
                synonyms: t.synonyms,
                organ,
                organ_synonyms: t.organ_synonyms,
            });
        }
        Ok(d)
    }
}

fn insert_key(
    keys: &mut HashMap<String, usize>,
    terms: &[Term],
    max_len: &mut usize,
    spelling: &str,
    idx: usize,
    category: &'static str,
    code: &str,
) -> Result<(), TermsError> {
    let k = normalize(spelling);
    if k.is_empty() {
        return Err(TermsError::EmptySynonym { category, code: code.to_string() });
    }
    *max_len = (*max_len).max(k.chars().count());
    match keys.get(&k) {
        // The same term listing two spellings that normalize alike is harmless redundancy.
        Some(&other) if other != idx => Err(TermsError::DuplicateSynonym {
            category,
            code: code.to_string(),
            other: terms[other].code.clone(),
        }),
        _ => {
            keys.insert(k, idx);
            Ok(())
        }
    }
}

impl TermList {
    /// Parses and validates a term file.
    pub fn from_toml(text: &str) -> Result<TermList, TermsError> {
        let f: FileDe = toml::from_str(text)?;
        let version = f.version.trim().to_string();
        if version.is_empty() {
            return Err(TermsError::EmptyVersion);
        }
        let organs: HashSet<String> = f
            .site
            .iter()
            .filter_map(|s| s.organ.as_deref())
            .map(|o| o.trim().to_string())
            .collect();
        let mut codes = HashSet::new();
        let mut b = Builder { codes: &mut codes, organs: &organs };
        let exam_type = b.dict("exam_type", f.exam_type)?;
        let site = b.dict("site", f.site)?;
        let qualifiers = b.dict("site_qualifier", f.site_qualifier)?;
        let diagnosis = b.dict("diagnosis", f.diagnosis)?;
        let treatment = b.dict("treatment", f.treatment)?;
        let adverse_event = b.dict("adverse_event", f.adverse_event)?;
        let dicts = [exam_type, site, diagnosis, treatment, adverse_event];
        let slash_keys = dicts
            .iter()
            .chain(std::iter::once(&qualifiers))
            .flat_map(|d| d.keys.keys().chain(d.organ_keys.values().flat_map(|m| m.keys())))
            .filter(|k| k.contains('/'))
            .map(|k| k.chars().collect())
            .collect();
        Ok(TermList { version, note: f.note.trim().to_string(), dicts, qualifiers, slash_keys })
    }
}
