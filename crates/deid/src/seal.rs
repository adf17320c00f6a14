//! The seal: [`DeidPackage`] is defined here, with private fields, and its one constructor
//! takes a [`Verified`] record by value. Only `verify` makes a `Verified`, and only when its
//! check found nothing, so no code path, in this crate or outside, can package an unverified
//! record.
//!
//! Outside the crate a package cannot be built at all:
//!
//! ```compile_fail
//! let p = fgw_deid::DeidPackage {
//!     manifest: unimplemented!(),
//!     manifest_bytes: Vec::new(),
//!     id: unimplemented!(),
//!     files: Vec::new(),
//! };
//! ```
//!
//! ```compile_fail
//! fn make(m: fgw_format::package::Manifest) -> fgw_deid::DeidPackage {
//!     fgw_deid::DeidPackage::seal(m, Vec::new())
//! }
//! ```

use crate::actions::Action;
use crate::verify::Verified;
use crate::{DeidContext, TOOL_VERSION};
use fgw_format::ids::PackageId;
use fgw_format::package::{DeidInfo, FileEntry, Manifest};

/// A verified, de-identified package: the manifest, its bytes and id, and the files it names.
pub struct DeidPackage {
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    id: PackageId,
    files: Vec<(FileEntry, Vec<u8>)>,
}

impl DeidPackage {
    /// Seal a verified record with the de-identification block (`actions`: what was done)
    /// and its files.
    pub(crate) fn seal(
        verified: Verified,
        ctx: &DeidContext,
        actions: Vec<Action>,
        files: Vec<(FileEntry, Vec<u8>)>,
    ) -> DeidPackage {
        let manifest = Manifest {
            format: fgw_format::package::FORMAT.to_string(),
            format_version: fgw_format::package::FORMAT_VERSION,
            facility_id: ctx.facility.clone(),
            body: verified.into_body(),
            files: files.iter().map(|(e, _)| e.clone()).collect(),
            deid: DeidInfo {
                method: "fgw-deid".into(),
                tool_version: TOOL_VERSION.into(),
                policy_id: ctx.policy.id.clone(),
                policy_version: ctx.policy.version,
                actions: actions.iter().map(Action::to_string).collect(),
            },
        };
        let manifest_bytes = manifest.to_bytes();
        let id = Manifest::id_of(&manifest_bytes);
        DeidPackage { manifest, manifest_bytes, id, files }
    }

    /// The package id (hash of the manifest bytes).
    pub fn id(&self) -> &PackageId {
        &self.id
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest as uploaded (the bytes the id is the hash of).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The files the manifest names, with their bytes.
    pub fn files(&self) -> &[(FileEntry, Vec<u8>)] {
        &self.files
    }
}

impl std::fmt::Debug for DeidPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeidPackage({}, {} files)", self.id, self.files.len())
    }
}
