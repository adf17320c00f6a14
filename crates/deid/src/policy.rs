//! De-identification policy: which choices the box makes, as enums with documented defaults.
//! Part of the gateway configuration (`[deid]` in gateway.toml).

use serde::{Deserialize, Serialize};

/// What happens to the exam date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExamDatePolicy {
    /// Keep `YYYY-MM-DD` (default: JED needs the exam date for follow-up intervals).
    #[default]
    Keep,
    /// Keep only `YYYY-MM`.
    YearMonth,
    /// Shift by a per-patient offset (±1..182 days) derived from the box's key: intervals
    /// between one patient's exams survive, calendar dates do not. Without a patient id the
    /// exam's own key is used and `flags.exam_date = "shift_without_patient"`.
    Shift,
}

impl ExamDatePolicy {
    /// The configuration name, as written into records (`date_policy`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExamDatePolicy::Keep => "keep",
            ExamDatePolicy::YearMonth => "year-month",
            ExamDatePolicy::Shift => "shift",
        }
    }
}

/// What happens to the exam start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExamTimePolicy {
    /// Drop it (default: not needed by the registry, narrows re-identification).
    #[default]
    Drop,
    /// Keep `HH:MM`.
    Keep,
}

/// Free-text columns (所見, コメント) and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FreeTextPolicy {
    /// Replace the exam's own identifiers (name variants, ids, birth date, phone, address,
    /// physicians) and phone/postal/e-mail patterns with typed placeholders, then verify;
    /// any leftover identifier quarantines the exam (default).
    #[default]
    ScrubAndVerify,
    /// Do not carry free text at all.
    Drop,
}

/// `[deid]`: every choice the gate makes, with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Name of the policy, written into every manifest.
    pub id: String,
    /// Bumped whenever what the policy does changes.
    pub version: u32,
    /// Exam date: kept, year-month, or shifted.
    pub exam_date: ExamDatePolicy,
    /// Exam start time: dropped or kept.
    pub exam_time: ExamTimePolicy,
    /// Free text: scrubbed and verified, or dropped.
    pub free_text: FreeTextPolicy,
    /// Burned-in text stage (`[deid.pixels]`).
    pub pixels: crate::pixels::PixelSettings,
    /// Header names of extra (non-reference) columns to keep verbatim after verification.
    /// Default: none; every unknown column is dropped and its name recorded in the actions.
    pub keep_extra_columns: Vec<String>,
    /// DICOM: PS3.15 options on top of the Basic profile (`[deid.dicom]`).
    pub dicom: crate::dicom::DicomPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            id: "jed-basic".into(),
            version: 1,
            exam_date: ExamDatePolicy::default(),
            exam_time: ExamTimePolicy::default(),
            free_text: FreeTextPolicy::default(),
            pixels: Default::default(),
            keep_extra_columns: Vec::new(),
            dicom: Default::default(),
        }
    }
}
