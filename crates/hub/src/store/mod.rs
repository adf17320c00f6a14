//! Storage behind the hub API, as two narrow traits so PostgreSQL / S3 backends can replace
//! the embedded defaults ([`fs::FsObjectStore`], [`sqlite::SqliteMetaStore`]) without
//! touching the protocol. Both are synchronous: the API calls them from `spawn_blocking`.

pub mod fs;
pub mod sqlite;

use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{DicomListing, ExamListing, Stored};
use fgw_format::package::Manifest;
use std::path::PathBuf;

pub use fs::FsObjectStore;
pub use sqlite::SqliteMetaStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("metadata store {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("metadata store {path}: schema version {found} is newer than this hub ({supported})")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("metadata store {path}: row {what} is malformed")]
    Corrupt { path: PathBuf, what: String },
    /// The bytes offered for an object do not hash to its name.
    #[error("object {expected}: content hashes to a different sha-256")]
    HashMismatch { expected: Sha256Hex },
    #[error("device {device} is registered to facility {registered}, not {requested}")]
    DeviceFacilityConflict { device: DeviceId, registered: FacilityId, requested: FacilityId },
    #[error("certificate {fingerprint} is already registered to device {device}")]
    FingerprintTaken { fingerprint: Sha256Hex, device: DeviceId },
    #[error("store lock poisoned")]
    Poisoned,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Content-addressed file storage. Objects are immutable and named by their SHA-256.
pub trait ObjectStore: Send + Sync {
    /// Size of a stored object, `None` if absent.
    fn size(&self, sha: &Sha256Hex) -> Result<Option<u64>>;

    fn has(&self, sha: &Sha256Hex) -> Result<bool> {
        Ok(self.size(sha)?.is_some())
    }

    /// Store `bytes` under `sha`. Verifies the hash first ([`StoreError::HashMismatch`]);
    /// idempotent: storing an existing object returns [`Stored::Duplicate`] and keeps one copy.
    fn put(&self, sha: &Sha256Hex, bytes: &[u8]) -> Result<Stored>;

    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>>;
}

/// A registered client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub fingerprint: Sha256Hex,
    pub device: DeviceId,
    pub facility: FacilityId,
    pub role: Role,
    pub registered_at: String,
}

/// Device registry and package index.
pub trait MetaStore: Send + Sync {
    /// Register a certificate fingerprint. Re-registering the same fingerprint with the same
    /// device is a no-op (so a retried `issue-device` is harmless); a device id stays bound
    /// to one facility.
    fn register_device(
        &self,
        fingerprint: &Sha256Hex,
        device: &DeviceId,
        facility: &FacilityId,
        role: Role,
    ) -> Result<()>;

    fn device_by_fingerprint(&self, fingerprint: &Sha256Hex) -> Result<Option<DeviceRecord>>;

    /// Record an accepted package. Idempotent by package id ([`Stored::Duplicate`]). Keeps,
    /// per (facility, exam_pid), the highest revision as the current one; on equal revisions
    /// the later arrival wins (a re-export after a policy change).
    fn record_package(
        &self,
        facility: &FacilityId,
        device: &DeviceId,
        package_id: &PackageId,
        manifest: &Manifest,
    ) -> Result<Stored>;

    /// Current package of every exam of a facility, ordered by exam pseudonym.
    fn list_exams(&self, facility: &FacilityId) -> Result<Vec<ExamListing>>;

    /// Current package of every DICOM object of a facility, by study, series, instance.
    fn list_dicom(&self, facility: &FacilityId) -> Result<Vec<DicomListing>>;

    /// Number of distinct packages received (all facilities).
    fn package_count(&self) -> Result<u64>;
}
