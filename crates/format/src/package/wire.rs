//! The manifest's wire layout. Package ids are the SHA-256 of these bytes, so the layout is
//! the one manifests have always had: `kind` plus one optional field per record kind.

use super::{
    Body, DeidInfo, DicomRecord, ExamRecord, FileEntry, Kind, Manifest, PackageError, ReportRecord,
};
use crate::ids::FacilityId;
use serde::{Deserialize, Serialize};

/// The manifest as serialized, field for field in the order the bytes have always had:
/// `exam` and `report` are written as `null` when absent, `dicom` is omitted when absent
/// (it was added later; exam and report ids stay what they were).
#[derive(Serialize)]
struct WireRef<'a> {
    format: &'a str,
    format_version: u32,
    facility_id: &'a FacilityId,
    kind: Kind,
    exam: Option<&'a ExamRecord>,
    report: Option<&'a ReportRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dicom: Option<&'a DicomRecord>,
    files: &'a [FileEntry],
    deid: &'a DeidInfo,
}

/// The owned twin of [`WireRef`], for parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Wire {
    pub(super) format: String,
    pub(super) format_version: u32,
    facility_id: FacilityId,
    kind: Kind,
    exam: Option<ExamRecord>,
    report: Option<ReportRecord>,
    #[serde(default)]
    dicom: Option<DicomRecord>,
    files: Vec<FileEntry>,
    deid: DeidInfo,
}

impl Serialize for Manifest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (exam, report, dicom) = match &self.body {
            Body::Exam(e) => (Some(e), None, None),
            Body::Report(r) => (None, Some(r), None),
            Body::Dicom(d) => (None, None, Some(d)),
        };
        WireRef {
            format: &self.format,
            format_version: self.format_version,
            facility_id: &self.facility_id,
            kind: self.body.kind(),
            exam,
            report,
            dicom,
            files: &self.files,
            deid: &self.deid,
        }
        .serialize(serializer)
    }
}

impl TryFrom<Wire> for Manifest {
    type Error = PackageError;

    /// Exactly the record of `kind` must be present; a DICOM package holds one file.
    fn try_from(w: Wire) -> Result<Manifest, PackageError> {
        let body = match (w.kind, w.exam, w.report, w.dicom) {
            (Kind::Exam, Some(e), None, None) => Body::Exam(e),
            (Kind::Report, None, Some(r), None) => Body::Report(r),
            (Kind::Dicom, None, None, Some(d)) if w.files.len() == 1 => Body::Dicom(d),
            (kind, ..) => return Err(PackageError::KindMismatch { kind }),
        };
        Ok(Manifest {
            format: w.format,
            format_version: w.format_version,
            facility_id: w.facility_id,
            body,
            files: w.files,
            deid: w.deid,
        })
    }
}
