//! The records a package carries: exam, report, DICOM object, and their parts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Age at exam: exact years below 90, bucketed at 90 and above (HIPAA Safe Harbor style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Age {
    /// Whole years, below 90.
    Years(u8),
    /// 90 and above.
    Bucket(AgeBucket),
}

/// The age bucket ages at the top are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgeBucket {
    /// `90+`.
    #[serde(rename = "90+")]
    NinetyPlus,
}

/// A term from the society's term list (`terms_version`), or flagged free text when the
/// source spelling did not map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermRef {
    /// Code in the term list; `None` when unmapped.
    pub code: Option<String>,
    /// Canonical label from the term list, or the scrubbed source text when unmapped.
    pub label: String,
    /// The source spelling did not map; `label` is scrubbed free text. Counted in reports.
    pub unmapped: bool,
}

/// One finding: where, what, and the (scrubbed) sentence it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The anatomical site, when one was named.
    pub site: Option<TermRef>,
    /// The finding terms at that site.
    pub terms: Vec<TermRef>,
    /// The scrubbed sentence.
    pub text: String,
}

/// Background items JED records for every exam.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Background {
    /// Antithrombotic medication, as a vocabulary code.
    pub antithrombotic: Option<String>,
    /// H. pylori status, as a vocabulary code.
    pub h_pylori: Option<String>,
    /// Sedation, as a vocabulary code.
    pub sedation: Option<String>,
    /// ASA physical status class.
    pub asa: Option<u8>,
}

/// An image of the exam: in the package (`path`), or kept on the box (`withheld` = reason
/// code). The registry knows every image exists either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// Position of the image in the exam, from 0.
    pub index: u32,
    /// Path of the image in the package, when it travels.
    pub path: Option<String>,
    /// Reason code, when the image stays on the box.
    pub withheld: Option<String>,
}

/// The canonical de-identified exam record (JSON Schema: `docs/package-manifest.schema.json`,
/// `$defs/exam`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamRecord {
    /// Keyed pseudonym of the department's exam id (`e-` + 24 hex).
    pub exam_pid: String,
    /// Re-export counter for this exam on this box; higher wins at the hub.
    pub revision: u32,
    /// Vendor mapping profile the exam was read with (e.g. `reference`).
    pub profile: String,
    /// Version of the term lists used for `exam_type`, findings, diagnoses, treatments, AEs.
    pub terms_version: String,
    /// Keyed pseudonym of the hospital patient id (`p-` + 24 hex).
    pub patient_pid: Option<String>,
    /// Age on the exam date.
    pub age_at_exam: Option<Age>,
    /// `M` or `F`.
    pub sex: Option<String>,
    /// `YYYY-MM-DD` (keep or shift) or `YYYY-MM` (year-month); see `date_policy`.
    pub exam_date: Option<String>,
    /// `keep`, `shift` (per-patient offset from the box's key) or `year-month`.
    pub date_policy: String,
    /// `HH:MM`, when the policy keeps it.
    pub exam_start_time: Option<String>,
    /// Exam type code from the term list (e.g. `upper_gi`).
    pub exam_type: Option<String>,
    /// In- or outpatient.
    pub in_out: Option<String>,
    /// Background items.
    pub background: Background,
    /// Keyed pseudonyms of the operator and the referring doctor (`d-` + 24 hex).
    pub operator_pid: Option<String>,
    /// See `operator_pid`.
    pub referring_pid: Option<String>,
    /// Findings by site.
    pub findings: Vec<Finding>,
    /// Diagnoses.
    pub diagnoses: Vec<TermRef>,
    /// Treatments.
    pub treatments: Vec<TermRef>,
    /// Adverse events.
    pub adverse_events: Vec<TermRef>,
    /// Scrubbed free-text findings as written (all sentences).
    pub findings_text: Option<String>,
    /// Scrubbed free-text comment.
    pub comment: Option<String>,
    /// Scrubbed free-text report.
    pub report: Option<String>,
    /// Extra columns the policy keeps (by header name); empty by default.
    pub extra: BTreeMap<String, String>,
    /// Values the gateway could not accept, by column key, e.g. `{"asa": "not_in_vocabulary"}`.
    /// The offending value itself never appears.
    pub flags: BTreeMap<String, String>,
    /// Every image of the exam, sent or withheld.
    pub images: Vec<ImageRef>,
}

impl ExamRecord {
    /// Images kept on the box.
    pub fn images_withheld(&self) -> u32 {
        self.images.iter().filter(|i| i.withheld.is_some()).count() as u32
    }
    /// Terms that did not map to the term list, findings included.
    pub fn unmapped_terms(&self) -> u32 {
        let terms = self.diagnoses.iter().chain(&self.treatments).chain(&self.adverse_events);
        let in_findings = self.findings.iter().flat_map(|f| f.site.iter().chain(&f.terms));
        terms.chain(in_findings).filter(|t| t.unmapped).count() as u32
    }
}

/// A de-identified report that arrived on its own (HL7 v2 ORU^R01), joined to its exam at the
/// hub by `exam_pid` (same keyed pseudonym as the exam's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRecord {
    /// Keyed pseudonym of the exam the report belongs to (`e-` + 24 hex).
    pub exam_pid: String,
    /// Keyed pseudonym of the hospital patient id (`p-` + 24 hex).
    pub patient_pid: Option<String>,
    /// HL7 result status: `final`, `corrected`, `preliminary`, …
    pub status: String,
    /// Observation date per the date policy.
    pub observed_date: Option<String>,
    /// `keep`, `shift` or `year-month`, as for exams.
    pub date_policy: String,
    /// Version of the term lists used for findings and diagnoses.
    pub terms_version: String,
    /// The scrubbed report text.
    pub text: String,
    /// Findings by site.
    pub findings: Vec<Finding>,
    /// Diagnoses.
    pub diagnoses: Vec<TermRef>,
    /// Values the gateway could not accept, by key (never the value).
    pub flags: BTreeMap<String, String>,
}

/// One de-identified DICOM object (its Part-10 file is the package's only file). Every value
/// is made by the gate: remapped UIDs (`2.25.` form, keyed), keyed pseudonyms, and codes.
/// The hub groups objects by `study_uid`/`series_uid` and joins them to their exam by
/// `exam_pid` where the department uses its exam id as the Accession Number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomRecord {
    /// Remapped Study Instance UID.
    pub study_uid: String,
    /// Remapped Series Instance UID.
    pub series_uid: Option<String>,
    /// Remapped SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID as sent (it names a class, not a patient).
    pub sop_class: String,
    /// Transfer Syntax UID of the package's file.
    pub transfer_syntax: String,
    /// Modality code (e.g. `ES`).
    pub modality: Option<String>,
    /// Keyed pseudonym of Patient ID (`p-` + 24 hex), the same as the exam record's.
    pub patient_pid: Option<String>,
    /// Keyed pseudonym of Accession Number (`e-` + 24 hex), the same as the exam record's
    /// `exam_pid` when the department's exam id is the accession number.
    pub exam_pid: Option<String>,
    /// `none` (no pixel data) or `cleaned` (through the burned-in text stage).
    pub pixels: String,
}
