//! The gate. Turns an identifiable [`fgw_records::RawExam`] (or report, or DICOM object) into
//! a [`DeidPackage`] or a quarantine decision. Depends on no networking code.
//!
//! A package is made only by sealing a record that passed verification: the verifier
//! (`verify`) is the only maker of the token the seal (`seal`) takes, and the package's
//! fields are private to the seal. Every path (exam, report, DICOM object) goes through it.

pub mod dicom;
pub mod identifiers;
pub mod image_meta;
pub mod pixels;
pub mod text;
pub mod text_ja;

mod actions;
mod dates;
mod exam;
mod exam_images;
mod policy;
mod pseudonym;
mod quarantine;
mod report;
mod seal;
mod verify;
mod word_lists;

use fgw_format::ids::FacilityId;
use fgw_format::package::FileEntry;

pub use dates::{parse_date, DateError};
pub use dicom::package::deidentify_dicom_package;
pub use exam::deidentify_exam;
pub use policy::{ExamDatePolicy, ExamTimePolicy, FreeTextPolicy, Policy};
pub use pseudonym::{is_pseudonym, Pseudonymizer};
pub use quarantine::QuarantineReason;
pub use report::deidentify_report;
pub use seal::DeidPackage;
pub use verify::{verify_dicom_record, Finding};

/// Everything the gate needs besides the exam itself.
pub struct DeidContext<'a> {
    /// The facility the box belongs to (in every pseudonym and manifest).
    pub facility: &'a FacilityId,
    /// Keyed pseudonyms with the box's key.
    pub pseudonymizer: &'a Pseudonymizer,
    /// What the gate keeps, drops or shifts.
    pub policy: &'a Policy,
    /// Id of the vendor mapping profile the input was read with (recorded in the record).
    pub profile: &'a str,
    /// Re-export counter of this exam (1 for the first export).
    pub revision: u32,
    /// The burned-in text stage (holds the OCR engines; one per process).
    pub pixels: &'a pixels::PixelStage,
}

/// An image kept on the box while the rest of its exam goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// Index of the image in its exam.
    pub image_index: u32,
    /// Why it was kept.
    pub reason: QuarantineReason,
}

/// What the gate made of one input.
// The package variant is large, but outcomes are made once per exam and moved straight into
// the outbox: boxing would only add an allocation and change every caller's pattern.
#[allow(clippy::large_enum_variant)]
pub enum DeidOutcome {
    /// A sealed package, and the images kept on the box.
    Package {
        /// The package.
        package: DeidPackage,
        /// Images not in the package, with why.
        withheld: Vec<Withheld>,
    },
    /// Nothing leaves the box.
    Quarantined {
        /// Why.
        reason: QuarantineReason,
    },
}

/// The outcome of a verification: the sealed package, or the finding as the quarantine reason.
fn outcome(
    verified: Result<verify::Verified, verify::Finding>,
    ctx: &DeidContext,
    actions: Vec<actions::Action>,
    files: Vec<(FileEntry, Vec<u8>)>,
    withheld: Vec<Withheld>,
) -> DeidOutcome {
    match verified {
        Ok(v) => {
            DeidOutcome::Package { package: DeidPackage::seal(v, ctx, actions, files), withheld }
        }
        Err(f) => {
            DeidOutcome::Quarantined { reason: QuarantineReason::IdentifierFound(f.to_string()) }
        }
    }
}

/// Version string written into every package's de-identification block.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
