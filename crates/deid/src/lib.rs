//! The gate. Turns an identifiable [`RawExam`] into a [`DeidPackage`] or a quarantine
//! decision. Depends on no networking code; the only way a package is made is
//! [`deidentify_exam`], which runs the verification before constructing it.

pub mod dates;
pub mod dicom;
pub mod identifiers;
pub mod image_meta;
pub mod pixels;
pub mod policy;
pub mod pseudonym;
pub mod report;
pub mod text;
pub mod text_ja;
pub mod verify;

mod exam;
mod exam_images;

use fgw_format::ids::{FacilityId, PackageId};
use fgw_format::package::{DeidInfo, DicomRecord, ExamRecord, FileEntry, Kind, Manifest, ReportRecord};

pub use dicom::package::deidentify_dicom_package;
pub use exam::deidentify_exam;
pub use policy::Policy;
pub use pseudonym::Pseudonymizer;
pub use report::deidentify_report;

/// Everything the gate needs besides the exam itself.
pub struct DeidContext<'a> {
    pub facility: &'a FacilityId,
    pub pseudonymizer: &'a Pseudonymizer,
    pub policy: &'a Policy,
    /// Id of the vendor mapping profile the input was read with (recorded in the record).
    pub profile: &'a str,
    /// Re-export counter of this exam (1 for the first export).
    pub revision: u32,
    /// The burned-in text stage (holds the OCR engines; one per process).
    pub pixels: &'a pixels::PixelStage,
}

/// Why something stays on the box. The text never contains a data value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "code", content = "detail")]
pub enum QuarantineReason {
    /// Pixels not cleaned: the policy withholds images (`[deid.pixels] mode = "withhold"`),
    /// or a DICOM object's pixel data is in a form the stage does not take.
    PixelsNotCleaned,
    /// No field of view found in the frame and no device layout for its size.
    FieldNotFound,
    /// An identifier of this exam was still read (OCR) in the masked image; detail names
    /// the identifier kind, never the value.
    IdentifierInPixels(String),
    /// The pixel stage could not run on this image (OCR engine, encoder); detail says what.
    PixelStageFailed(String),
    /// Image bytes could not be decoded as the format their signature claims.
    ImageUnreadable(String),
    /// Image format not supported (by signature, not name).
    ImageFormatUnsupported,
    /// An identifier of this exam was still found after de-identification; detail names the
    /// field (e.g. `findings`) and identifier kind (e.g. `patient_name`), never the value.
    IdentifierFound(String),
    /// A required column is missing or unparseable (column key).
    RequiredFieldInvalid(String),
    /// A DICOM file attached to an export row as an exam image. DICOM objects go through the
    /// DICOM gate (SCP, pull, `gateway deid` on the file), not the export's image path.
    DicomInExport,
    /// Input file could not be read or parsed (what was wrong, no values).
    InputInvalid(String),
}

impl QuarantineReason {
    pub fn code(&self) -> &'static str {
        match self {
            QuarantineReason::PixelsNotCleaned => "pixels-not-cleaned",
            QuarantineReason::FieldNotFound => "fov-not-found",
            QuarantineReason::IdentifierInPixels(_) => "identifier-in-pixels",
            QuarantineReason::PixelStageFailed(_) => "pixel-stage-failed",
            QuarantineReason::ImageUnreadable(_) => "image-unreadable",
            QuarantineReason::ImageFormatUnsupported => "image-format-unsupported",
            QuarantineReason::IdentifierFound(_) => "identifier-found",
            QuarantineReason::RequiredFieldInvalid(_) => "required-field-invalid",
            QuarantineReason::DicomInExport => "dicom-in-export",
            QuarantineReason::InputInvalid(_) => "input-invalid",
        }
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuarantineReason::ImageUnreadable(d)
            | QuarantineReason::IdentifierFound(d)
            | QuarantineReason::RequiredFieldInvalid(d)
            | QuarantineReason::InputInvalid(d)
            | QuarantineReason::IdentifierInPixels(d)
            | QuarantineReason::PixelStageFailed(d) => write!(f, "{}: {}", self.code(), d),
            _ => f.write_str(self.code()),
        }
    }
}

/// An image kept on the box while the rest of its exam goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub image_index: u32,
    pub reason: QuarantineReason,
}

// The package variant is large, but outcomes are made once per exam and moved straight into
// the outbox: boxing would only add an allocation and change every caller's pattern.
#[allow(clippy::large_enum_variant)]
pub enum DeidOutcome {
    Package { package: DeidPackage, withheld: Vec<Withheld> },
    Quarantined { reason: QuarantineReason },
}

/// A verified, de-identified package. Fields are private: only this module can make one.
pub struct DeidPackage {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    id: PackageId,
    files: Vec<(FileEntry, Vec<u8>)>,
}

/// What a package carries, before verification. Short-lived and moved once: the size
/// difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Content {
    Exam(ExamRecord),
    Report(ReportRecord),
    Dicom(DicomRecord),
}

/// The one place packages are made: verify the finished record against the input's own
/// identifiers (a hit quarantines), then seal it with the de-identification block.
fn verify_and_seal(
    content: Content,
    ids: &identifiers::IdentifierSet,
    ctx: &DeidContext,
    actions: Vec<String>,
    files: Vec<(FileEntry, Vec<u8>)>,
) -> Result<DeidPackage, QuarantineReason> {
    let found = match &content {
        Content::Exam(r) => verify::verify_record(r, ids),
        Content::Report(r) => verify::verify_record(r, ids),
        // Every value is made by the gate (UIDs, pseudonyms, codes): checked by shape. The
        // object itself was searched for its identifiers by the DICOM gate.
        Content::Dicom(r) => verify::verify_dicom_record(r),
    };
    if let Err(f) = found {
        return Err(QuarantineReason::IdentifierFound(f.to_string()));
    }
    let (kind, exam, report, dicom) = match content {
        Content::Exam(r) => (Kind::Exam, Some(r), None, None),
        Content::Report(r) => (Kind::Report, None, Some(r), None),
        Content::Dicom(r) => (Kind::Dicom, None, None, Some(r)),
    };
    let manifest = Manifest {
        format: fgw_format::package::FORMAT.to_string(),
        format_version: fgw_format::package::FORMAT_VERSION,
        facility_id: ctx.facility.clone(),
        kind,
        exam,
        report,
        dicom,
        files: files.iter().map(|(e, _)| e.clone()).collect(),
        deid: DeidInfo {
            method: "fgw-deid".into(),
            tool_version: TOOL_VERSION.into(),
            policy_id: ctx.policy.id.clone(),
            policy_version: ctx.policy.version,
            actions,
        },
    };
    Ok(DeidPackage::seal(manifest, files))
}

impl DeidPackage {
    /// Private to `deid`: called by `verify_and_seal` after verification passed.
    fn seal(manifest: Manifest, files: Vec<(FileEntry, Vec<u8>)>) -> DeidPackage {
        let manifest_bytes = manifest.to_bytes();
        let id = Manifest::id_of(&manifest_bytes);
        DeidPackage { manifest, manifest_bytes, id, files }
    }
    pub fn id(&self) -> &PackageId {
        &self.id
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }
    pub fn files(&self) -> &[(FileEntry, Vec<u8>)] {
        &self.files
    }
}

impl std::fmt::Debug for DeidPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeidPackage({}, {} files)", self.id, self.files.len())
    }
}

/// Version string written into every package's de-identification block.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
