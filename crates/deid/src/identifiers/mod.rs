//! The exam's own identifiers and the spellings they may take elsewhere in the exam, plus the
//! search normal form ([`fold`]) in which both the identifiers and the text are compared.
//!
//! Identifiers are kept only in memory for the one exam being de-identified; `Debug` shows
//! counts only.
//!
//! Searchable variants are limited to at least 2 characters (4 if all digits): a single kanji
//! surname such as 林 would otherwise match everywhere. Such names are found as part of the
//! full name, or alone only right before an honorific (正さん, see `text::find_ids`).
//!
//! The kana name also yields romaji spellings (Hepburn and its common variants), matched only
//! as whole words.
//!
//! `set` builds an exam's [`IdentifierSet`], `romaji` spells the kana name in romaji, `fold`
//! is the normal form.

mod fold;
mod romaji;
mod set;
#[cfg(test)]
mod tests;

pub use fold::{fold, fold_mapped, Folded};
pub use romaji::romaji_variants;
pub use set::IdentifierSet;

/// What an identifier is. `key()` is what reports and quarantine reasons name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdKind {
    /// The patient's name as written (kanji), whole and by part.
    PatientName,
    /// The patient's name in kana.
    PatientKana,
    /// The department's patient id (also without leading zeros).
    PatientId,
    /// Date of birth, in every written form.
    BirthDate,
    /// The patient's address, whole and split at the municipality.
    Address,
    /// The patient's phone number.
    Phone,
    /// The department's exam (accession) id.
    ExamId,
    /// Referring physician or operator (surname).
    Physician,
}

impl IdKind {
    /// Stable snake-case name of the kind (reports, quarantine reasons); never the value.
    pub fn key(self) -> &'static str {
        match self {
            IdKind::PatientName => "patient_name",
            IdKind::PatientKana => "patient_kana",
            IdKind::PatientId => "patient_id",
            IdKind::BirthDate => "birth_date",
            IdKind::Address => "address",
            IdKind::Phone => "phone",
            IdKind::ExamId => "exam_id",
            IdKind::Physician => "physician",
        }
    }

    /// Typed placeholder put where the identifier was.
    pub fn placeholder(self) -> &'static str {
        match self {
            IdKind::PatientName | IdKind::PatientKana => "[氏名]",
            IdKind::PatientId => "[患者ID]",
            IdKind::BirthDate => "[生年月日]",
            IdKind::Address => "[住所]",
            IdKind::Phone => "[電話]",
            IdKind::ExamId => "[検査ID]",
            IdKind::Physician => "[医師]",
        }
    }
}

/// Minimum folded length of a searchable variant.
pub const MIN_VARIANT_CHARS: usize = 2;
/// Minimum folded length of an all-digit searchable variant.
pub const MIN_DIGIT_VARIANT_CHARS: usize = 4;

/// True if a folded variant is specific enough to search for.
pub fn searchable(folded: &str) -> bool {
    let n = folded.chars().count();
    if folded.bytes().all(|b| b.is_ascii_digit()) {
        n >= MIN_DIGIT_VARIANT_CHARS
    } else {
        n >= MIN_VARIANT_CHARS
    }
}
