//! The de-identified package format, shared by the gateway and the hub
//! (`docs/package-format.md`, schema `docs/package-manifest.schema.json`).
//!
//! A package is a manifest (JSON) plus files. The package id is the SHA-256 of the manifest
//! bytes; each file is named in the manifest by its SHA-256. Everything here is de-identified
//! by construction: only `deid` builds manifests, the hub only parses them.

use crate::ids::{FacilityId, PackageId, Sha256Hex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "fgw-package";
/// Version 2: canonical record (terms, findings, image references) and report packages.
/// Version 1 was never released.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("manifest is not valid package JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest format '{found}' version {version} is not supported (expected {FORMAT} v{FORMAT_VERSION})")]
    Version { found: String, version: u32 },
    #[error("manifest lists file '{path}' twice")]
    DuplicatePath { path: String },
    #[error("manifest kind does not match its content (kind {kind:?})")]
    KindMismatch { kind: Kind },
    #[error("file path '{path}' in manifest is not a plain relative path")]
    BadPath { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub facility_id: FacilityId,
    pub kind: Kind,
    /// Present exactly when `kind` is `exam`.
    pub exam: Option<ExamRecord>,
    /// Present exactly when `kind` is `report`.
    pub report: Option<ReportRecord>,
    /// Present exactly when `kind` is `dicom`. Omitted otherwise, so exam and report manifests
    /// (and their package ids) are the same as before this kind was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomRecord>,
    pub files: Vec<FileEntry>,
    pub deid: DeidInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path inside the package, e.g. `images/003.jpg` (never an original file name).
    pub path: String,
    pub sha256: Sha256Hex,
    pub size: u64,
    pub media_type: String,
}

/// Age at exam: exact years below 90, bucketed at 90 and above (HIPAA Safe Harbor style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Age {
    Years(u8),
    Bucket(AgeBucket),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgeBucket {
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
    pub site: Option<TermRef>,
    pub terms: Vec<TermRef>,
    pub text: String,
}

/// Background items JED records for every exam.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Background {
    pub antithrombotic: Option<String>,
    pub h_pylori: Option<String>,
    pub sedation: Option<String>,
    pub asa: Option<u8>,
}

/// An image of the exam: in the package (`path`), or kept on the box (`withheld` = reason
/// code). The registry knows every image exists either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub index: u32,
    pub path: Option<String>,
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
    pub age_at_exam: Option<Age>,
    pub sex: Option<String>,
    /// `YYYY-MM-DD` (keep or shift) or `YYYY-MM` (year-month); see `date_policy`.
    pub exam_date: Option<String>,
    /// `keep`, `shift` (per-patient offset from the box's key) or `year-month`.
    pub date_policy: String,
    pub exam_start_time: Option<String>,
    pub exam_type: Option<String>,
    /// In- or outpatient.
    pub in_out: Option<String>,
    pub background: Background,
    /// Keyed pseudonyms of the operator and the referring doctor (`d-` + 24 hex).
    pub operator_pid: Option<String>,
    pub referring_pid: Option<String>,
    pub findings: Vec<Finding>,
    pub diagnoses: Vec<TermRef>,
    pub treatments: Vec<TermRef>,
    pub adverse_events: Vec<TermRef>,
    /// Scrubbed free-text findings as written (all sentences).
    pub findings_text: Option<String>,
    pub comment: Option<String>,
    pub report: Option<String>,
    /// Extra columns the policy keeps (by header name); empty by default.
    pub extra: BTreeMap<String, String>,
    /// Values the gateway could not accept, by column key, e.g. `{"asa": "not_in_vocabulary"}`.
    /// The offending value itself never appears.
    pub flags: BTreeMap<String, String>,
    pub images: Vec<ImageRef>,
}

impl ExamRecord {
    pub fn images_withheld(&self) -> u32 {
        self.images.iter().filter(|i| i.withheld.is_some()).count() as u32
    }
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
    pub exam_pid: String,
    pub patient_pid: Option<String>,
    /// HL7 result status: `final`, `corrected`, `preliminary`, …
    pub status: String,
    /// Observation date per the date policy.
    pub observed_date: Option<String>,
    pub date_policy: String,
    pub terms_version: String,
    pub text: String,
    pub findings: Vec<Finding>,
    pub diagnoses: Vec<TermRef>,
    pub flags: BTreeMap<String, String>,
}

/// One de-identified DICOM object (its Part-10 file is the package's only file). Every value
/// is made by the gate: remapped UIDs (`2.25.` form, keyed), keyed pseudonyms, and codes.
/// The hub groups objects by `study_uid`/`series_uid` and joins them to their exam by
/// `exam_pid` where the department uses its exam id as the Accession Number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomRecord {
    pub study_uid: String,
    pub series_uid: Option<String>,
    pub sop_instance_uid: String,
    /// SOP Class UID as sent (it names a class, not a patient).
    pub sop_class: String,
    pub transfer_syntax: String,
    pub modality: Option<String>,
    /// Keyed pseudonym of Patient ID (`p-` + 24 hex), the same as the exam record's.
    pub patient_pid: Option<String>,
    /// Keyed pseudonym of Accession Number (`e-` + 24 hex), the same as the exam record's
    /// `exam_pid` when the department's exam id is the accession number.
    pub exam_pid: Option<String>,
    /// `none` (no pixel data) or `cleaned` (through the burned-in text stage).
    pub pixels: String,
}

/// What a package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exam,
    Report,
    /// One DICOM object (added in version 2 as an additive kind; exam and report manifests
    /// are unchanged).
    Dicom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeidInfo {
    /// Value for DICOM De-identification Method style reporting.
    pub method: String,
    pub tool_version: String,
    pub policy_id: String,
    pub policy_version: u32,
    /// Machine-readable list of what was done, e.g. `patient_id:pseudonymized`.
    pub actions: Vec<String>,
}

impl Manifest {
    /// Canonical bytes: serde_json of the struct (field order fixed by the struct), no
    /// whitespace. Deterministic, so the same de-identified exam yields the same package id.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// The exam this package belongs to (empty for a DICOM object without one).
    pub fn exam_pid(&self) -> &str {
        match (&self.exam, &self.report, &self.dicom) {
            (Some(e), _, _) => &e.exam_pid,
            (None, Some(r), _) => &r.exam_pid,
            (None, None, Some(d)) => d.exam_pid.as_deref().unwrap_or(""),
            (None, None, None) => "",
        }
    }

    pub fn id_of(bytes: &[u8]) -> PackageId {
        Sha256Hex::of(bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest, PackageError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        if m.format != FORMAT || m.format_version != FORMAT_VERSION {
            return Err(PackageError::Version { found: m.format, version: m.format_version });
        }
        let present = (m.exam.is_some(), m.report.is_some(), m.dicom.is_some());
        let ok = match m.kind {
            Kind::Exam => present == (true, false, false),
            Kind::Report => present == (false, true, false),
            Kind::Dicom => present == (false, false, true) && m.files.len() == 1,
        };
        if !ok {
            return Err(PackageError::KindMismatch { kind: m.kind });
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &m.files {
            if !is_plain_rel_path(&f.path) {
                return Err(PackageError::BadPath { path: f.path.clone() });
            }
            if !seen.insert(f.path.as_str()) {
                return Err(PackageError::DuplicatePath { path: f.path.clone() });
            }
        }
        Ok(m)
    }
}

/// `images/001.jpg`-style: ASCII, no `..`, no leading `/`.
pub fn is_plain_rel_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && !p.starts_with('/')
        && p.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'))
}

/// Protocol types for the upload API (`docs/package-format.md#upload-protocol`).
pub mod protocol {
    use super::*;

    pub const OBJECTS: &str = "/v1/objects";
    pub const PACKAGES: &str = "/v1/packages";

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Stored {
        New,
        Duplicate,
    }

    /// The hub's acknowledgement: after this, the gateway may delete the raw input.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Ack {
        pub package_id: PackageId,
        pub stored: Stored,
        pub facility_id: FacilityId,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiError {
        pub error: String,
    }

    /// Body of a 409 on a manifest PUT: the objects the hub does not have yet.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MissingObjects {
        pub error: String,
        pub missing: Vec<Sha256Hex>,
    }

    /// Body of a successful (200) `PUT /v1/objects/{sha256}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ObjectAck {
        pub sha256: Sha256Hex,
        pub stored: Stored,
    }

    /// One row of `GET /v1/facilities/{facility}/dicom`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DicomListing {
        pub study_uid: String,
        pub series_uid: Option<String>,
        pub sop_instance_uid: String,
        pub sop_class: String,
        pub exam_pid: Option<String>,
        pub package_id: PackageId,
        pub received_at: String,
    }

    /// One row of `GET /v1/facilities/{facility}/exams`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExamListing {
        pub exam_pid: String,
        pub revision: u32,
        pub package_id: PackageId,
        pub received_at: String,
        pub files: u32,
        pub images_withheld: u32,
        /// Report packages (HL7) received for this exam.
        pub reports: u32,
        /// DICOM objects received whose Accession Number maps to this exam.
        #[serde(default)]
        pub dicom_objects: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rel_paths() {
        assert!(is_plain_rel_path("images/001.jpg"));
        assert!(!is_plain_rel_path("../x"));
        assert!(!is_plain_rel_path("/etc/passwd"));
        assert!(!is_plain_rel_path("images//a"));
        assert!(!is_plain_rel_path("画像.jpg"));
    }

    #[test]
    fn kind_must_match_content() {
        let m = Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            facility_id: FacilityId::new("F1").unwrap(),
            kind: Kind::Dicom,
            exam: None,
            report: None,
            dicom: Some(DicomRecord::default()),
            files: vec![FileEntry {
                path: "dicom/object.dcm".into(),
                sha256: Sha256Hex::of(b"x"),
                size: 1,
                media_type: "application/dicom".into(),
            }],
            deid: DeidInfo {
                method: "t".into(),
                tool_version: "t".into(),
                policy_id: "t".into(),
                policy_version: 1,
                actions: vec![],
            },
        };
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        let mut two = m.clone();
        two.files.push(FileEntry { path: "dicom/b.dcm".into(), ..m.files[0].clone() });
        assert!(matches!(Manifest::parse(&two.to_bytes()), Err(PackageError::KindMismatch { .. })));
        let mut exam = m.clone();
        exam.kind = Kind::Exam;
        assert!(matches!(
            Manifest::parse(&exam.to_bytes()),
            Err(PackageError::KindMismatch { .. })
        ));
        // Exam and report manifests do not carry the field at all (ids unchanged).
        let mut e = m.clone();
        (e.kind, e.dicom, e.exam) = (Kind::Exam, None, Some(ExamRecord::default()));
        assert!(!String::from_utf8(e.to_bytes()).unwrap().contains("\"dicom\":"));
    }
}
