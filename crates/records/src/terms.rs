//! JED terminology: the versioned term lists (`data/terms/jed-terms.toml`, embedded) and the
//! mapping of term columns and free-text findings to codes.
//!
//! Input is always text that the gate has already scrubbed; this module never sees raw
//! identifiers and never logs. Decisions (see also the data file's header):
//! - Spellings are compared after [`normalize`]; a term list entry matches only whole.
//! - Macroscopic types: `0-Ⅱc`, `0-IIc`, `0-2c`, `０－Ⅱｃ`, `0-Ⅱ c`, `Ⅱc型` are one key
//!   (`0-IIC`); compound types (`0-Ⅱa+Ⅱc`) give one code per part, in order.
//! - Organ context: some spellings (腺腫, 癌, 潰瘍…) mean a term only inside an organ
//!   (`organ_synonyms`); in findings the organ comes from the sentence's site, else from the
//!   last site seen earlier in the same text. Without an organ they stay unmapped.
//! - Site qualifiers (小弯, 前壁…) are post-coordinated onto the site: code
//!   `site.stomach.lower_body/lesser_curvature`, label `胃体下部小弯`. A qualifier without a
//!   site is left in the sentence text only.
//! - Negation: a term followed by なし/認めず/(-)… is not coded (it stays in the text or in
//!   the unmapped remainder), because coding "胃潰瘍なし" as 胃潰瘍 would be wrong.
//! - Findings keep every sentence, even with no site and no term, so no text is lost.

use fgw_format::package::{Finding, TermRef};
use crate::Column;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

const EMBEDDED: &str = include_str!("../../../data/terms/jed-terms.toml");

#[derive(Debug, thiserror::Error)]
pub enum TermsError {
    #[error("term list is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("term list has an empty version")]
    EmptyVersion,
    #[error("term list: {category} entry #{index} has an empty code")]
    EmptyCode { category: &'static str, index: usize },
    #[error("term list: {category} code '{code}' must be ASCII letters, digits, '.', '_' or '-'")]
    BadCode { category: &'static str, code: String },
    #[error("term list: code '{code}' is defined twice (second time in {category})")]
    DuplicateCode { category: &'static str, code: String },
    #[error("term list: {category} '{code}' has an empty label")]
    EmptyLabel { category: &'static str, code: String },
    #[error("term list: {category} '{code}' has a spelling that is empty after normalization")]
    EmptySynonym { category: &'static str, code: String },
    #[error("term list: {category} '{code}' and '{other}' share a spelling after normalization")]
    DuplicateSynonym { category: &'static str, code: String, other: String },
    #[error("term list: {category} '{code}' needs an organ")]
    MissingOrgan { category: &'static str, code: String },
    #[error("term list: {category} '{code}' names organ '{organ}', which no site has")]
    UnknownOrgan { category: &'static str, code: String, organ: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermCategory {
    ExamType,
    Site,
    Diagnosis,
    Treatment,
    AdverseEvent,
}

impl TermCategory {
    pub const ALL: [TermCategory; 5] = [
        TermCategory::ExamType,
        TermCategory::Site,
        TermCategory::Diagnosis,
        TermCategory::Treatment,
        TermCategory::AdverseEvent,
    ];

    /// Table name in the term file; also used in errors.
    pub fn key(self) -> &'static str {
        match self {
            TermCategory::ExamType => "exam_type",
            TermCategory::Site => "site",
            TermCategory::Diagnosis => "diagnosis",
            TermCategory::Treatment => "treatment",
            TermCategory::AdverseEvent => "adverse_event",
        }
    }

    /// The category an export column is coded with, if it is a coded column.
    pub fn for_column(c: Column) -> Option<TermCategory> {
        match c {
            Column::ExamType => Some(TermCategory::ExamType),
            Column::Diagnoses => Some(TermCategory::Diagnosis),
            Column::Treatments => Some(TermCategory::Treatment),
            Column::AdverseEvents => Some(TermCategory::AdverseEvent),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TermCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One entry of a term list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub code: String,
    pub label: String,
    pub synonyms: Vec<String>,
    /// Organ group (sites: the organ the site belongs to; others: where the term applies).
    pub organ: Option<String>,
    /// Spellings that mean this term only when the context organ is `organ`.
    pub organ_synonyms: Vec<String>,
}

impl Term {
    pub fn to_ref(&self) -> TermRef {
        TermRef { code: Some(self.code.clone()), label: self.label.clone(), unmapped: false }
    }
}

fn unmapped(label: &str) -> TermRef {
    TermRef { code: None, label: label.to_string(), unmapped: true }
}

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
struct Dict {
    terms: Vec<Term>,
    keys: HashMap<String, usize>,
    /// organ → normalized spelling → term.
    organ_keys: HashMap<String, HashMap<String, usize>>,
    /// Longest key, in chars (bounds the scan window).
    max_len: usize,
}

impl Dict {
    fn get(&self, key: &str, organ: Option<&str>) -> Option<usize> {
        // The organ-specific meaning wins over a general one of the same spelling.
        organ
            .and_then(|o| self.organ_keys.get(o))
            .and_then(|m| m.get(key))
            .or_else(|| self.keys.get(key))
            .copied()
    }
}

/// The parsed, validated term lists.
#[derive(Debug)]
pub struct TermList {
    version: String,
    note: String,
    dicts: [Dict; 5],
    qualifiers: Dict,
    /// Normalized spellings containing '/', which [`TermList::split_terms`] must not cut.
    slash_keys: Vec<Vec<char>>,
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
    /// The term list shipped in the binary, parsed once.
    pub fn embedded() -> &'static TermList {
        static LIST: OnceLock<TermList> = OnceLock::new();
        LIST.get_or_init(|| {
            // The unit test `embedded_list_parses` keeps this from ever failing at run time.
            TermList::from_toml(EMBEDDED).expect("embedded term list is valid")
        })
    }

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

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn note(&self) -> &str {
        &self.note
    }

    pub fn terms(&self, cat: TermCategory) -> &[Term] {
        &self.dicts[cat.index()].terms
    }

    pub fn site_qualifiers(&self) -> &[Term] {
        &self.qualifiers.terms
    }

    /// The term whose label or synonym equals `text` after normalization.
    pub fn lookup(&self, cat: TermCategory, text: &str) -> Option<&Term> {
        let d = &self.dicts[cat.index()];
        d.get(&normalize(text), None).map(|i| &d.terms[i])
    }

    /// Like [`TermList::lookup`], also accepting spellings specific to `organ`.
    pub fn lookup_in(&self, cat: TermCategory, text: &str, organ: Option<&str>) -> Option<&Term> {
        let d = &self.dicts[cat.index()];
        d.get(&normalize(text), organ).map(|i| &d.terms[i])
    }

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

/// [`TermList::split_terms`] with the embedded list.
pub fn split_terms(text: &str) -> Vec<&str> {
    TermList::embedded().split_terms(text)
}

fn best_site(hits: &[Hit]) -> Option<&Hit> {
    // Longest wins; on a tie the first (max_by_key would keep the last).
    hits.iter().filter(|h| h.kind == Kind::Site).fold(None, |best: Option<&Hit>, h| match best {
        Some(b) if b.e - b.s >= h.e - h.s => Some(b),
        _ => Some(h),
    })
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

// ── normalization ───────────────────────────────────────────────────────────────────────────

/// One normalized char and the byte range of the source text it came from.
#[derive(Debug, Clone, Copy)]
struct NChar {
    c: char,
    start: usize,
    end: usize,
    /// Whitespace or a middle dot was removed just before it (a word boundary).
    gap: bool,
}

/// The comparison key of a spelling: NFKC; whitespace, middle dots and zero-width chars
/// removed; dashes unified to '-' (ー and 一 only between ASCII letters/digits, where they
/// are typos for a dash); ASCII upper case; macroscopic types rewritten to `0-` + Roman
/// numerals + subtype letter, absorbing a trailing 型 or 病変 (`0-2c`, `Ⅱc型` → `0-IIC`).
pub fn normalize(s: &str) -> String {
    norm_chars(s).into_iter().map(|n| n.c).collect()
}

fn norm_chars(s: &str) -> Vec<NChar> {
    let mut v = Vec::with_capacity(s.len());
    let mut gap = false;
    let mut it = s.char_indices().peekable();
    let mut chunk = String::new();
    while let Some((start, c)) = it.next() {
        // NFKC per base char plus its combining marks, so each output char knows its source
        // (half-width ﾞ/ﾟ become combining marks only under NFKC, hence listed).
        chunk.clear();
        chunk.push(c);
        let mut end = start + c.len_utf8();
        while let Some(&(i, m)) = it.peek() {
            if !(is_combining_mark(m) || matches!(m, '\u{FF9E}' | '\u{FF9F}')) {
                break;
            }
            chunk.push(m);
            end = i + m.len_utf8();
            it.next();
        }
        for n in chunk.nfkc() {
            if n.is_whitespace()
                || matches!(n, '・' | '·' | '‧' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}')
            {
                gap = true;
                continue;
            }
            v.push(NChar { c: n, start, end, gap });
            gap = false;
        }
    }
    for i in 0..v.len() {
        let c = v[i].c;
        let between_ascii = i > 0
            && i + 1 < v.len()
            && v[i - 1].c.is_ascii_alphanumeric()
            && v[i + 1].c.is_ascii_alphanumeric();
        if matches!(c, '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '﹣' | '⁃')
            || (matches!(c, 'ー' | '一') && between_ascii)
        {
            v[i].c = '-';
        }
    }
    let v = rewrite_macro(&v);
    v.into_iter().map(|n| NChar { c: n.c.to_ascii_uppercase(), ..n }).collect()
}

fn rewrite_macro(v: &[NChar]) -> Vec<NChar> {
    let mut out = Vec::with_capacity(v.len() + 4);
    let mut i = 0;
    while i < v.len() {
        match macro_at(v, i) {
            Some((emit, next)) => {
                out.extend(emit);
                i = next;
            }
            None => {
                out.push(v[i]);
                i += 1;
            }
        }
    }
    out
}

/// A macroscopic type starting at `i`: the chars to emit and the index after it.
fn macro_at(v: &[NChar], i: usize) -> Option<(Vec<NChar>, usize)> {
    let at = |j: usize| v.get(j).map(|n| n.c);
    if i > 0 && !v[i].gap && v[i - 1].c.is_ascii_alphanumeric() {
        return None;
    }
    let prefix = at(i) == Some('0') && at(i + 1) == Some('-');
    let mut j = if prefix { i + 2 } else { i };
    let body_at = j;
    let n = match at(j) {
        Some(d @ '1'..='3') if prefix => {
            j += 1;
            d as usize - '0' as usize
        }
        _ => {
            let mut n = 0;
            // Lower-case roman (ⅱ → ii) only after 0-, so English "is"/"ip" stay words.
            while (at(j) == Some('I') || (prefix && at(j) == Some('i'))) && n < 4 {
                n += 1;
                j += 1;
            }
            n
        }
    };
    if n == 0 || n > 3 {
        return None;
    }
    let subtypes: &[&str] = match n {
        1 => &["sp", "ps", "p", "s"],
        2 => &["a", "b", "c"],
        _ => &[],
    };
    let free_after = |k: usize| v.get(k).is_none_or(|x| x.gap || !x.c.is_ascii_alphanumeric());
    // Without the 0- prefix only a lower-case subtype marks a macroscopic type (Ⅱc, Is), so
    // English words and upper-case abbreviations are left alone.
    let suffix = subtypes.iter().find(|sub| {
        let len = sub.len();
        v.len() >= j + len
            && v[j..j + len]
                .iter()
                .zip(sub.chars())
                .all(|(x, s)| x.c == s || (prefix && x.c == s.to_ascii_uppercase()))
            && free_after(j + len)
    });
    let suffix_len = suffix.map_or(0, |s| s.len());
    if suffix.is_none() && !(prefix && free_after(j)) {
        return None;
    }
    let mut k = j + suffix_len;
    let mut end = v[k - 1].end;
    if at(k) == Some('型') {
        end = v[k].end;
        k += 1;
    } else if at(k) == Some('病') && at(k + 1) == Some('変') {
        end = v[k + 1].end;
        k += 2;
    }
    let mk = |c: char, src: &NChar| NChar { c, start: src.start, end: src.end, gap: false };
    let mut emit = Vec::with_capacity(3 + n + suffix_len);
    if prefix {
        emit.push(mk('0', &v[i]));
        emit.push(mk('-', &v[i + 1]));
    } else {
        emit.push(mk('0', &v[body_at]));
        emit.push(mk('-', &v[body_at]));
    }
    let body_src: Vec<&NChar> = if v[body_at].c.is_ascii_digit() {
        vec![&v[body_at]; n]
    } else {
        v[body_at..j].iter().collect()
    };
    for src in body_src {
        emit.push(mk('I', src));
    }
    for x in &v[j..j + suffix_len] {
        emit.push(mk(x.c.to_ascii_uppercase(), x));
    }
    emit[0].gap = v[i].gap;
    if let Some(last) = emit.last_mut() {
        last.end = end;
    }
    Some((emit, k))
}

// ── scanning ────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Term,
    Site,
    Qualifier,
}

#[derive(Debug)]
struct Hit {
    kind: Kind,
    idx: usize,
    /// Normalized char range.
    s: usize,
    e: usize,
    negated: bool,
}

/// A spelling that begins or ends with an ASCII letter/digit must not run into another one
/// (so `Ra` is not found in `ERCP`), unless a space separated them in the source.
fn boundary_ok(v: &[NChar], s: usize, e: usize) -> bool {
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
fn scan(v: &[NChar], dicts: &[(Kind, &Dict, Option<&str>)]) -> Vec<Hit> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: &TermRef) -> &str {
        r.code.as_deref().unwrap_or("-")
    }

    #[test]
    fn embedded_list_parses() {
        let l = TermList::from_toml(EMBEDDED).unwrap();
        assert_eq!(l.version(), "fgw-jed-terms 2026.1");
        assert!(l.note().contains("NOT the official JED master"));
        assert!(l.terms(TermCategory::Diagnosis).len() >= 60);
        assert!(l.terms(TermCategory::Treatment).len() >= 25);
        assert!(l.terms(TermCategory::AdverseEvent).len() >= 12);
        let codes: Vec<&str> =
            l.terms(TermCategory::ExamType).iter().map(|t| t.code.as_str()).collect();
        assert_eq!(codes, ["upper_gi", "lower_gi", "small_bowel", "ercp", "eus"]);
    }

    #[test]
    fn normalize_macroscopic_variants() {
        for s in
            ["0-Ⅱc", "0-IIc", "0-2c", "０－Ⅱｃ", "0-Ⅱ c", "Ⅱc型", "0ーⅡc", "0‐Ⅱc病変", "0 - ii c"]
        {
            assert_eq!(normalize(s), "0-IIC", "{s}");
        }
        assert_eq!(normalize("0-Ⅱa+Ⅱc"), "0-IIA+0-IIC");
        assert_eq!(normalize("0-Ⅰsp"), "0-ISP");
        assert_eq!(normalize("0-3"), "0-III");
        // Not macroscopic: upper-case abbreviations, words, sizes.
        assert_eq!(normalize("IS"), "IS");
        assert_eq!(normalize("this"), "THIS");
        assert_eq!(normalize("2cm"), "2CM");
        assert_eq!(normalize("ポリープ"), "ポリープ");
        assert_eq!(normalize("マロリー・ワイス"), "マロリーワイス");
        assert_eq!(normalize("ｶﾞｽ"), "ガス");
    }

    #[test]
    fn norm_chars_keep_source_ranges() {
        let s = "早期胃癌 0-Ⅱc型";
        let v = norm_chars(s);
        assert_eq!(&s[v[0].start..v[3].end], "早期胃癌");
        let last = v.last().unwrap();
        assert_eq!(&s[v[4].start..last.end], "0-Ⅱc型");
    }

    #[test]
    fn ascii_boundaries() {
        let l = TermList::embedded();
        assert!(l.extract_findings("ERCP施行")[0].site.is_none());
        let f = &l.extract_findings("Raに腺腫")[0];
        assert_eq!(code(f.site.as_ref().unwrap()), "site.rectum.ra");
        assert_eq!(code(&f.terms[0]), "dx.colorectal_adenoma");
    }

    #[test]
    fn negation_is_not_coded() {
        let l = TermList::embedded();
        let f = &l.extract_findings("胃体部に潰瘍は認めない")[0];
        assert!(f.terms.is_empty());
        assert_eq!(f.text, "胃体部に潰瘍は認めない");
        let r = l.map_all(TermCategory::AdverseEvent, "出血なし");
        assert_eq!(r, vec![unmapped("出血なし")]);
    }

    #[test]
    fn organ_context_carries_forward() {
        let l = TermList::embedded();
        let f = l.extract_findings("上行結腸にポリープ。周囲に腺腫。");
        assert_eq!(code(&f[0].terms[0]), "dx.colorectal_polyp");
        assert!(f[1].site.is_none());
        assert_eq!(code(&f[1].terms[0]), "dx.colorectal_adenoma");
        let f = l.extract_findings("腺腫あり");
        assert_eq!(f[0].terms, vec![]);
    }

    #[test]
    fn bad_code_and_unknown_organ() {
        let bad = "version = \"t\"\n[[treatment]]\ncode = \"tx/a\"\nlabel = \"A\"\n";
        assert!(matches!(TermList::from_toml(bad), Err(TermsError::BadCode { .. })));
        let bad =
            "version = \"t\"\n[[diagnosis]]\ncode = \"dx.a\"\nlabel = \"A\"\norgan = \"lung\"\n";
        let e = TermList::from_toml(bad).unwrap_err();
        assert!(e.to_string().contains("dx.a") && e.to_string().contains("lung"), "{e}");
        let bad = "version = \"t\"\n[[site]]\ncode = \"s\"\nlabel = \"S\"\n";
        assert!(matches!(TermList::from_toml(bad), Err(TermsError::MissingOrgan { .. })));
        let bad = "version = \"\"\n";
        assert!(matches!(TermList::from_toml(bad), Err(TermsError::EmptyVersion)));
    }
}
