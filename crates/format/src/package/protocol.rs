//! Protocol types for the upload API (`docs/package-format.md#upload-protocol`).

use crate::ids::{FacilityId, PackageId, Sha256Hex};
use serde::{Deserialize, Serialize};

/// Path prefix of object uploads: `PUT {OBJECTS}/{sha256}`.
pub const OBJECTS: &str = "/v1/objects";
/// Path prefix of manifest uploads: `PUT {PACKAGES}/{package_id}`.
pub const PACKAGES: &str = "/v1/packages";

/// Whether an upload added something or the hub already had it (both are success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Stored by this request.
    New,
    /// Already stored; nothing changed.
    Duplicate,
}

/// The hub's acknowledgement: after this, the gateway may delete the raw input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The package acknowledged.
    pub package_id: PackageId,
    /// New or duplicate.
    pub stored: Stored,
    /// The facility the hub filed the package under (the caller's).
    pub facility_id: FacilityId,
}

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, naming ids and paths, never values.
    pub error: String,
}

/// Body of a 409 on a manifest PUT: the objects the hub does not have yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingObjects {
    /// What went wrong.
    pub error: String,
    /// The objects to upload before the manifest.
    pub missing: Vec<Sha256Hex>,
}

/// Body of a successful (200) `PUT /v1/objects/{sha256}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAck {
    /// The object acknowledged.
    pub sha256: Sha256Hex,
    /// New or duplicate.
    pub stored: Stored,
}

/// One row of `GET /v1/facilities/{facility}/dicom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DicomListing {
    /// Remapped Study Instance UID.
    pub study_uid: String,
    /// Remapped Series Instance UID.
    pub series_uid: Option<String>,
    /// Remapped SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID as sent.
    pub sop_class: String,
    /// The exam the object joins, when its accession number is the exam id.
    pub exam_pid: Option<String>,
    /// The package holding the object's current version.
    pub package_id: PackageId,
    /// When the hub received it (RFC 3339, UTC).
    pub received_at: String,
}

/// One row of `GET /v1/facilities/{facility}/exams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamListing {
    /// The exam's keyed pseudonym.
    pub exam_pid: String,
    /// The current (highest) revision.
    pub revision: u32,
    /// The package of that revision.
    pub package_id: PackageId,
    /// When the hub received it (RFC 3339, UTC).
    pub received_at: String,
    /// Files in the package.
    pub files: u32,
    /// Images kept on the box.
    pub images_withheld: u32,
    /// Report packages (HL7) received for this exam.
    pub reports: u32,
    /// DICOM objects received whose Accession Number maps to this exam.
    #[serde(default)]
    pub dicom_objects: u32,
}
