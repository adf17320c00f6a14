//! The de-identified package format, shared by the gateway and the hub
//! (`docs/package-format.md`, schema `docs/package-manifest.schema.json`).
//!
//! A package is a manifest (JSON) plus files. The package id is the SHA-256 of the manifest
//! bytes; each file is named in the manifest by its SHA-256. Everything here is de-identified
//! by construction: only `deid` builds manifests, the hub only parses them.

pub mod protocol;
mod records;
mod wire;

pub use records::{
    Age, AgeBucket, Background, DicomRecord, ExamRecord, Finding, ImageRef, ReportRecord, TermRef,
};

use crate::ids::{FacilityId, PackageId, Sha256Hex};
use serde::{Deserialize, Serialize};
use wire::Wire;

/// The `format` every manifest names.
pub const FORMAT: &str = "fgw-package";
/// Version 2: canonical record (terms, findings, image references) and report packages.
/// Version 1 was never released.
pub const FORMAT_VERSION: u32 = 2;

/// Why manifest bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Not JSON, or not the manifest's shape (including unknown fields).
    #[error("manifest is not valid package JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Another format or version.
    #[error("manifest format '{found}' version {version} is not supported (expected {FORMAT} v{FORMAT_VERSION})")]
    Version {
        /// The `format` found.
        found: String,
        /// The `format_version` found.
        version: u32,
    },
    /// A file path listed twice.
    #[error("manifest lists file '{path}' twice")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// The record present is not the one `kind` names (or a DICOM package has other than
    /// one file).
    #[error("manifest kind does not match its content (kind {kind:?})")]
    KindMismatch {
        /// The `kind` the manifest names.
        kind: Kind,
    },
    /// A file path that is not plain and relative.
    #[error("file path '{path}' in manifest is not a plain relative path")]
    BadPath {
        /// The path.
        path: String,
    },
}

/// A package manifest. Its serialized bytes (`to_bytes`) are hashed into the package id, so
/// the wire layout is fixed (module `wire`) and must never change for an existing manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Wire")]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for manifests this build writes or accepts.
    pub format_version: u32,
    /// The facility the package comes from.
    pub facility_id: FacilityId,
    /// What the package carries; its variant is the manifest's `kind`.
    pub body: Body,
    /// The package's files, each named by its SHA-256.
    pub files: Vec<FileEntry>,
    /// How the package was de-identified.
    pub deid: DeidInfo,
}

/// The record a package carries: exactly one, of the manifest's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
// Exam records are the common case and a manifest is built once per package: not boxed.
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// A de-identified exam (`kind: exam`).
    Exam(ExamRecord),
    /// A report that arrived on its own (`kind: report`).
    Report(ReportRecord),
    /// One DICOM object (`kind: dicom`).
    Dicom(DicomRecord),
}

impl Body {
    /// The manifest `kind` this body is serialized with.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Exam(_) => Kind::Exam,
            Body::Report(_) => Kind::Report,
            Body::Dicom(_) => Kind::Dicom,
        }
    }
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path inside the package, e.g. `images/003.jpg` (never an original file name).
    pub path: String,
    /// SHA-256 of the bytes; the object's name at the hub.
    pub sha256: Sha256Hex,
    /// Size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
}

/// What a package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An exam record.
    Exam,
    /// A report record.
    Report,
    /// One DICOM object (added in version 2 as an additive kind; exam and report manifests
    /// are unchanged).
    Dicom,
}

/// How a package was de-identified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeidInfo {
    /// Value for DICOM De-identification Method style reporting.
    pub method: String,
    /// Version of the gateway that made the package.
    pub tool_version: String,
    /// The de-identification policy applied.
    pub policy_id: String,
    /// That policy's version.
    pub policy_version: u32,
    /// Machine-readable list of what was done, e.g. `patient_id:pseudonymized`.
    pub actions: Vec<String>,
}

impl Manifest {
    /// Canonical bytes: serde_json of the wire layout (field order fixed there), no
    /// whitespace. Deterministic, so the same de-identified exam yields the same package id.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// What the package carries.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The exam record, when this is an exam package.
    pub fn exam(&self) -> Option<&ExamRecord> {
        match &self.body {
            Body::Exam(e) => Some(e),
            _ => None,
        }
    }

    /// The report record, when this is a report package.
    pub fn report(&self) -> Option<&ReportRecord> {
        match &self.body {
            Body::Report(r) => Some(r),
            _ => None,
        }
    }

    /// The DICOM record, when this is a DICOM package.
    pub fn dicom(&self) -> Option<&DicomRecord> {
        match &self.body {
            Body::Dicom(d) => Some(d),
            _ => None,
        }
    }

    /// The exam this package belongs to (empty for a DICOM object without one).
    pub fn exam_pid(&self) -> &str {
        match &self.body {
            Body::Exam(e) => &e.exam_pid,
            Body::Report(r) => &r.exam_pid,
            Body::Dicom(d) => d.exam_pid.as_deref().unwrap_or(""),
        }
    }

    /// The package id of manifest bytes: their SHA-256.
    pub fn id_of(bytes: &[u8]) -> PackageId {
        Sha256Hex::of(bytes)
    }

    /// Parses and checks manifest bytes: format and version, kind against content, and the
    /// file paths (plain, relative, listed once).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, PackageError> {
        let w: Wire = serde_json::from_slice(bytes)?;
        if w.format != FORMAT || w.format_version != FORMAT_VERSION {
            return Err(PackageError::Version { found: w.format, version: w.format_version });
        }
        let m = Manifest::try_from(w)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    #[test]
    fn rel_paths() {
        assert!(is_plain_rel_path("images/001.jpg"));
        assert!(!is_plain_rel_path("../x"));
        assert!(!is_plain_rel_path("/etc/passwd"));
        assert!(!is_plain_rel_path("images//a"));
        assert!(!is_plain_rel_path("画像.jpg"));
    }

    fn deid() -> DeidInfo {
        DeidInfo {
            method: "fgw-deid".into(),
            tool_version: "0.1.0".into(),
            policy_id: "default".into(),
            policy_version: 3,
            actions: vec!["patient_id:pseudonymized".into(), "dates:shift".into()],
        }
    }

    fn file(path: &str, media_type: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: Sha256Hex::of(path.as_bytes()),
            size: 42,
            media_type: media_type.into(),
        }
    }

    fn term(code: Option<&str>, label: &str) -> TermRef {
        TermRef { code: code.map(Into::into), label: label.into(), unmapped: code.is_none() }
    }

    fn manifest(body: Body, files: Vec<FileEntry>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            facility_id: FacilityId::new("F1").unwrap(),
            body,
            files,
            deid: deid(),
        }
    }

    fn exam() -> Manifest {
        let exam = ExamRecord {
            exam_pid: "e-0123456789abcdef01234567".into(),
            revision: 2,
            profile: "reference".into(),
            terms_version: "jed-2024.1".into(),
            patient_pid: Some("p-0123456789abcdef01234567".into()),
            age_at_exam: Some(Age::Bucket(AgeBucket::NinetyPlus)),
            sex: Some("F".into()),
            exam_date: Some("2026-11".into()),
            date_policy: "year-month".into(),
            exam_start_time: None,
            exam_type: Some("upper_gi".into()),
            in_out: None,
            background: Background {
                antithrombotic: Some("none".into()),
                h_pylori: None,
                sedation: Some("midazolam".into()),
                asa: Some(2),
            },
            operator_pid: Some("d-0123456789abcdef01234567".into()),
            referring_pid: None,
            findings: vec![Finding {
                site: Some(term(Some("S01"), "胃角")),
                terms: vec![term(None, "[氏名]様")],
                text: "胃角に潰瘍".into(),
            }],
            diagnoses: vec![term(Some("D1"), "早期胃癌")],
            treatments: vec![],
            adverse_events: vec![term(Some("AE0"), "なし")],
            findings_text: Some("胃角に潰瘍".into()),
            comment: None,
            report: None,
            extra: [("部位".to_string(), "胃角".to_string())].into(),
            flags: [("asa".to_string(), "not_in_vocabulary".to_string())].into(),
            images: vec![
                ImageRef { index: 0, path: Some("images/000.jpg".into()), withheld: None },
                ImageRef { index: 1, path: None, withheld: Some("pixels-not-cleaned".into()) },
            ],
        };
        manifest(Body::Exam(exam), vec![file("images/000.jpg", "image/jpeg")])
    }

    fn report() -> Manifest {
        let report = ReportRecord {
            exam_pid: "e-0123456789abcdef01234567".into(),
            patient_pid: None,
            status: "final".into(),
            observed_date: Some("2026-11-25".into()),
            date_policy: "keep".into(),
            terms_version: "jed-2024.1".into(),
            text: "所見なし \"quoted\"\n".into(),
            findings: vec![],
            diagnoses: vec![term(Some("D2"), "胃炎")],
            flags: BTreeMap::new(),
        };
        manifest(Body::Report(report), vec![])
    }

    fn dicom() -> Manifest {
        let dicom = DicomRecord {
            study_uid: "2.25.1".into(),
            series_uid: Some("2.25.2".into()),
            sop_instance_uid: "2.25.3".into(),
            sop_class: "1.2.840.10008.5.1.4.1.1.77.1.1".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            modality: Some("ES".into()),
            patient_pid: Some("p-0123456789abcdef01234567".into()),
            exam_pid: None,
            pixels: "cleaned".into(),
        };
        manifest(Body::Dicom(dicom), vec![file("dicom/object.dcm", "application/dicom")])
    }

    /// The bytes below were written by the struct layout before `Body` (kind plus three
    /// options); package ids are their hash, so they must not change by a byte.
    #[test]
    fn bytes_are_those_of_the_old_layout() {
        const EXAM: &str = r#"{"format":"fgw-package","format_version":2,"facility_id":"F1","kind":"exam","exam":{"exam_pid":"e-0123456789abcdef01234567","revision":2,"profile":"reference","terms_version":"jed-2024.1","patient_pid":"p-0123456789abcdef01234567","age_at_exam":"90+","sex":"F","exam_date":"2026-11","date_policy":"year-month","exam_start_time":null,"exam_type":"upper_gi","in_out":null,"background":{"antithrombotic":"none","h_pylori":null,"sedation":"midazolam","asa":2},"operator_pid":"d-0123456789abcdef01234567","referring_pid":null,"findings":[{"site":{"code":"S01","label":"胃角","unmapped":false},"terms":[{"code":null,"label":"[氏名]様","unmapped":true}],"text":"胃角に潰瘍"}],"diagnoses":[{"code":"D1","label":"早期胃癌","unmapped":false}],"treatments":[],"adverse_events":[{"code":"AE0","label":"なし","unmapped":false}],"findings_text":"胃角に潰瘍","comment":null,"report":null,"extra":{"部位":"胃角"},"flags":{"asa":"not_in_vocabulary"},"images":[{"index":0,"path":"images/000.jpg","withheld":null},{"index":1,"path":null,"withheld":"pixels-not-cleaned"}]},"report":null,"files":[{"path":"images/000.jpg","sha256":"7d488a7ab8497c6c3b000eb5716fc5f241bfaf2cf86fe71b35bc26c81083b0a2","size":42,"media_type":"image/jpeg"}],"deid":{"method":"fgw-deid","tool_version":"0.1.0","policy_id":"default","policy_version":3,"actions":["patient_id:pseudonymized","dates:shift"]}}"#;
        const REPORT: &str = r#"{"format":"fgw-package","format_version":2,"facility_id":"F1","kind":"report","exam":null,"report":{"exam_pid":"e-0123456789abcdef01234567","patient_pid":null,"status":"final","observed_date":"2026-11-25","date_policy":"keep","terms_version":"jed-2024.1","text":"所見なし \"quoted\"\n","findings":[],"diagnoses":[{"code":"D2","label":"胃炎","unmapped":false}],"flags":{}},"files":[],"deid":{"method":"fgw-deid","tool_version":"0.1.0","policy_id":"default","policy_version":3,"actions":["patient_id:pseudonymized","dates:shift"]}}"#;
        const DICOM: &str = r#"{"format":"fgw-package","format_version":2,"facility_id":"F1","kind":"dicom","exam":null,"report":null,"dicom":{"study_uid":"2.25.1","series_uid":"2.25.2","sop_instance_uid":"2.25.3","sop_class":"1.2.840.10008.5.1.4.1.1.77.1.1","transfer_syntax":"1.2.840.10008.1.2.1","modality":"ES","patient_pid":"p-0123456789abcdef01234567","exam_pid":null,"pixels":"cleaned"},"files":[{"path":"dicom/object.dcm","sha256":"3945bce038515e95c39fa16f6ced2b86ef6612e8218d555efffefb0d0d644a05","size":42,"media_type":"application/dicom"}],"deid":{"method":"fgw-deid","tool_version":"0.1.0","policy_id":"default","policy_version":3,"actions":["patient_id:pseudonymized","dates:shift"]}}"#;
        for (m, expected) in [(exam(), EXAM), (report(), REPORT), (dicom(), DICOM)] {
            assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), expected);
            assert_eq!(Manifest::parse(expected.as_bytes()).unwrap(), m);
            let via_serde: Manifest = serde_json::from_str(expected).unwrap();
            assert_eq!(via_serde, m);
        }
    }

    #[test]
    fn kind_must_match_content() {
        let m = dicom();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        let mut two = m.clone();
        two.files.push(FileEntry { path: "dicom/b.dcm".into(), ..m.files[0].clone() });
        assert!(matches!(Manifest::parse(&two.to_bytes()), Err(PackageError::KindMismatch { .. })));
        let text = String::from_utf8(m.to_bytes()).unwrap();
        let exam_kind = text.replace(r#""kind":"dicom""#, r#""kind":"exam""#);
        assert!(matches!(
            Manifest::parse(exam_kind.as_bytes()),
            Err(PackageError::KindMismatch { kind: Kind::Exam })
        ));
        assert!(serde_json::from_str::<Manifest>(&exam_kind).is_err());
        // An exam manifest that also carries a report is rejected, not half-read.
        let e = String::from_utf8(exam().to_bytes()).unwrap();
        let r = String::from_utf8(report().to_bytes()).unwrap();
        let report_json = &r[r.find(r#""report":{"#).unwrap()..r.find(r#","files""#).unwrap()];
        let both = e.replace(r#""report":null,"files""#, &format!(r#"{report_json},"files""#));
        assert_ne!(both, e);
        assert!(matches!(
            Manifest::parse(both.as_bytes()),
            Err(PackageError::KindMismatch { kind: Kind::Exam })
        ));
        // Exam and report manifests do not carry the field at all (ids unchanged).
        assert!(!e.contains("\"dicom\":"));
        assert!(!r.contains("\"dicom\":"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = String::from_utf8(exam().to_bytes()).unwrap();
        let extra = text.replacen('{', r#"{"x":1,"#, 1);
        assert!(matches!(Manifest::parse(extra.as_bytes()), Err(PackageError::Json(_))));
        assert!(serde_json::from_str::<Manifest>(&extra).is_err());
    }
}
