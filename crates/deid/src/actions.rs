//! What the gate records about what it did: the manifest's `deid.actions` entries and the
//! record's `flags` values, as types. Their text is part of the package format: `Display`
//! and `as_str` give exactly the strings packages have always carried.

use crate::dicom::DicomOption;
use crate::policy::FreeTextPolicy;
use fgw_records::Column;
use std::fmt;

/// One entry of `deid.actions`. Never carries a data value, only names and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `<column>:<treatment>`: what happened to a reference column.
    Column(Column, Treatment),
    /// `terms:scrubbed_and_mapped`.
    TermsScrubbedAndMapped,
    /// `free_text:scrubbed` or `free_text:removed`.
    FreeText(FreeTextPolicy),
    /// `extra_kept:<n>`: extra columns kept (scrubbed).
    ExtraKept(usize),
    /// `extra_dropped:<n>`: extra columns dropped.
    ExtraDropped(usize),
    /// `image_metadata:stripped`.
    ImageMetadataStripped,
    /// `pixels:cleaned:<n>`: images released.
    PixelsCleaned(usize),
    /// `pixels:text_regions_masked:<n>`.
    TextRegionsMasked(usize),
    /// `pixels:withheld:<n>`: images kept on the box.
    PixelsWithheld(usize),
    /// `dicom:ps3.15-basic`.
    DicomBasicProfile,
    /// `dicom_option:<name>`.
    DicomOption(DicomOption),
    /// `dicom_uids:remapped`.
    DicomUidsRemapped,
    /// `dicom_pixels:cleaned`.
    DicomPixelsCleaned,
}

/// What happened to one reference column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Replaced by a keyed pseudonym.
    Pseudonymized,
    /// Birth date replaced by the age at the exam.
    AgeAtExam,
    /// Not carried.
    Removed,
    /// Carried as it was (formatted).
    Kept,
    /// Date cut to year and month.
    YearMonth,
    /// Date shifted by the patient's offset.
    Shifted,
}

impl Treatment {
    fn as_str(self) -> &'static str {
        match self {
            Treatment::Pseudonymized => "pseudonymized",
            Treatment::AgeAtExam => "age_at_exam",
            Treatment::Removed => "removed",
            Treatment::Kept => "kept",
            Treatment::YearMonth => "year_month",
            Treatment::Shifted => "shifted",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Column(c, t) => write!(f, "{}:{}", c.key(), t.as_str()),
            Action::TermsScrubbedAndMapped => f.write_str("terms:scrubbed_and_mapped"),
            Action::FreeText(FreeTextPolicy::ScrubAndVerify) => f.write_str("free_text:scrubbed"),
            Action::FreeText(FreeTextPolicy::Drop) => f.write_str("free_text:removed"),
            Action::ExtraKept(n) => write!(f, "extra_kept:{n}"),
            Action::ExtraDropped(n) => write!(f, "extra_dropped:{n}"),
            Action::ImageMetadataStripped => f.write_str("image_metadata:stripped"),
            Action::PixelsCleaned(n) => write!(f, "pixels:cleaned:{n}"),
            Action::TextRegionsMasked(n) => write!(f, "pixels:text_regions_masked:{n}"),
            Action::PixelsWithheld(n) => write!(f, "pixels:withheld:{n}"),
            Action::DicomBasicProfile => f.write_str("dicom:ps3.15-basic"),
            Action::DicomOption(o) => write!(f, "dicom_option:{}", o.name()),
            Action::DicomUidsRemapped => f.write_str("dicom_uids:remapped"),
            Action::DicomPixelsCleaned => f.write_str("dicom_pixels:cleaned"),
        }
    }
}

/// A value of the record's `flags` map: why a field is missing or changed. Never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    /// A categorical value outside its vocabulary.
    NotInVocabulary,
    /// A date or time that does not parse.
    Unparseable,
    /// A birth date that gives no plausible age at the exam.
    Implausible,
    /// Dates shifted with the exam's own key: the patient id was missing.
    ShiftWithoutPatient,
}

impl Flag {
    /// The text stored in the record.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Flag::NotInVocabulary => "not_in_vocabulary",
            Flag::Unparseable => "unparseable",
            Flag::Implausible => "implausible",
            Flag::ShiftWithoutPatient => "shift_without_patient",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_package_format() {
        let t = |a: Action| a.to_string();
        assert_eq!(
            t(Action::Column(Column::ExamId, Treatment::Pseudonymized)),
            "exam_id:pseudonymized"
        );
        assert_eq!(
            t(Action::Column(Column::BirthDate, Treatment::AgeAtExam)),
            "birth_date:age_at_exam"
        );
        assert_eq!(t(Action::FreeText(FreeTextPolicy::Drop)), "free_text:removed");
        assert_eq!(t(Action::TextRegionsMasked(3)), "pixels:text_regions_masked:3");
        assert_eq!(
            t(Action::DicomOption(DicomOption::CleanDescriptors)),
            "dicom_option:clean-descriptors"
        );
        assert_eq!(Flag::ShiftWithoutPatient.as_str(), "shift_without_patient");
    }
}
