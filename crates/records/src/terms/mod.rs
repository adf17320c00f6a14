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

mod findings;
mod matching;
mod normalize;
mod parse;
mod scan;
#[cfg(test)]
mod tests;

pub use normalize::normalize;

use crate::Column;
use fgw_format::package::TermRef;
use parse::Dict;
use std::fmt;
use std::sync::OnceLock;

const EMBEDDED: &str = include_str!("../../../../data/terms/jed-terms.toml");

/// The embedded term lists' TOML, as shipped (a policy bundle carries it).
pub fn embedded_source() -> &'static str {
    EMBEDDED
}

/// Why a term list was refused.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
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

/// The coded categories of the term list (each a table of the term file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermCategory {
    /// 検査種別.
    ExamType,
    /// Anatomical sites (of findings).
    Site,
    /// 診断, and the diagnosis terms of findings.
    Diagnosis,
    /// 処置.
    Treatment,
    /// 偶発症.
    AdverseEvent,
}

impl TermCategory {
    /// Every category, in file order.
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

    pub(crate) fn index(self) -> usize {
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
    /// The stable code that goes into packages.
    pub code: String,
    /// The preferred spelling.
    pub label: String,
    /// Other spellings that mean this term.
    pub synonyms: Vec<String>,
    /// Organ group (sites: the organ the site belongs to; others: where the term applies).
    pub organ: Option<String>,
    /// Spellings that mean this term only when the context organ is `organ`.
    pub organ_synonyms: Vec<String>,
}

impl Term {
    /// A mapped reference to this term.
    pub fn to_ref(&self) -> TermRef {
        TermRef { code: Some(self.code.clone()), label: self.label.clone(), unmapped: false }
    }
}

pub(crate) fn unmapped(label: &str) -> TermRef {
    TermRef { code: None, label: label.to_string(), unmapped: true }
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

impl TermList {
    /// The term list shipped in the binary, parsed once.
    pub fn embedded() -> &'static TermList {
        static LIST: OnceLock<TermList> = OnceLock::new();
        LIST.get_or_init(|| {
            // The unit test `embedded_list_parses` keeps this from ever failing at run time.
            TermList::from_toml(EMBEDDED).expect("embedded term list is valid")
        })
    }

    /// The list's `version` (recorded in packages).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The list's `note`.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The terms of one category, in file order.
    pub fn terms(&self, cat: TermCategory) -> &[Term] {
        &self.dicts[cat.index()].terms
    }

    /// The site qualifiers (小弯, 前壁…), in file order.
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
}

/// [`TermList::split_terms`] with the embedded list.
pub fn split_terms(text: &str) -> Vec<&str> {
    TermList::embedded().split_terms(text)
}
