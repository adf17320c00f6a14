//! Signed releases over TUF (issue 13).
//!
//! The hub publishes a TUF repository (root, targets, snapshot, timestamp roles) whose targets
//! are OS update bundles and policy bundles ([`publish`]). The box verifies it with `tough`
//! against a root baked into its image ([`verify`]): expired, rolled-back, mixed, tampered,
//! endless and under-signed metadata or targets are refused, each as its own
//! [`VerifyError`] class.
//!
//! Key files are Ed25519 PKCS#8 (DER), one per role ([`keys`]); which are kept offline and
//! how they are rotated: `provisioning/release-keys.md`.

pub mod bundle;
pub mod keys;
mod publish;
mod target;
mod verify;

pub use publish::{Expiry, PublishError, Repository, Thresholds};
pub use target::{ReleaseKind, ReleaseTarget, ReleaseVersion, VersionError};
pub use tough::Limits;
pub use verify::{default_limits, Trusted, Verifier, VerifyError};

/// The transport a verifier fetches through (re-exported: the box implements it over its
/// uplink, tests over files).
pub mod transport {
    pub use tough::{
        async_trait, FilesystemTransport, Transport, TransportError, TransportErrorKind,
        TransportStream,
    };
}

/// The repository's metadata folder inside its directory.
pub const METADATA_DIR: &str = "metadata";
/// The repository's targets folder inside its directory.
pub const TARGETS_DIR: &str = "targets";
