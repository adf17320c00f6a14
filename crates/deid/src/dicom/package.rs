//! A de-identified DICOM object as a package: the Part-10 file is the package's one file
//! (`dicom/object.dcm`, `application/dicom`), the manifest's `dicom` record names it by remapped
//! UIDs and keyed pseudonyms. One package per object, like the SCP receives them: a study
//! that arrives over hours is never held back for its last image, and a re-sent object makes
//! the same package id (the hub stores it once).

use super::{deidentify_dicom, DicomPolicy};
use crate::actions::Action;
use crate::{outcome, verify, DeidContext, DeidOutcome};
use fgw_format::ids::Sha256Hex;
use fgw_format::package::FileEntry;

/// Path of the object inside its package.
pub(crate) const OBJECT_PATH: &str = "dicom/object.dcm";

/// De-identify one DICOM Part-10 file and seal it as a package, or say why it stays on the
/// box. `file` names it in errors (never the original file name, which may carry a name).
pub fn deidentify_dicom_package(
    file: &str,
    bytes: &[u8],
    ctx: &DeidContext,
    dicom: &DicomPolicy,
) -> DeidOutcome {
    let res = match deidentify_dicom(file, bytes, ctx, dicom) {
        Ok(r) => r,
        Err(e) => return DeidOutcome::Quarantined { reason: e.quarantine_reason() },
    };
    if let Some(reason) = res.quarantine_reason() {
        return DeidOutcome::Quarantined { reason };
    }
    let mut actions = vec![Action::DicomBasicProfile];
    actions.extend(dicom.selected().into_iter().map(Action::DicomOption));
    actions.push(Action::DicomUidsRemapped);
    if res.pixels_cleaned {
        actions.push(Action::DicomPixelsCleaned);
    }
    let entry = FileEntry {
        path: OBJECT_PATH.into(),
        sha256: Sha256Hex::of(&res.bytes),
        size: res.bytes.len() as u64,
        media_type: "application/dicom".into(),
    };
    // The record is checked by shape, not searched: every value in it is made by the gate,
    // and the object itself was searched for its identifiers by `deidentify_dicom`.
    let verified = verify::verify_dicom(res.record);
    outcome(verified, ctx, actions, vec![(entry, res.bytes)], Vec::new())
}
