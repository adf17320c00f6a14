//! Storage behind the hub API, as two narrow traits so PostgreSQL / S3 backends can replace
//! the embedded defaults ([`FsObjectStore`], [`SqliteMetaStore`]) without
//! touching the protocol. Both are synchronous: the API calls them from `spawn_blocking`.

mod fs;
mod sqlite;

use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{DicomListing, ExamListing, Stored};
use fgw_format::package::Manifest;
use std::path::PathBuf;

pub use fs::FsObjectStore;
pub use sqlite::SqliteMetaStore;

/// A store operation that failed; named by path, object or device, never by content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store could not be used.
    #[error("store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("metadata store {path}: {source}")]
    Sql {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was migrated by a newer hub.
    #[error("metadata store {path}: schema version {found} is newer than this hub ({supported})")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this hub knows.
        supported: i64,
    },
    /// A row that this hub did not write that way.
    #[error("metadata store {path}: row {what} is malformed")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Table and column.
        what: String,
    },
    /// The bytes offered for an object do not hash to its name.
    #[error("object {expected}: content hashes to a different sha-256")]
    HashMismatch {
        /// The name the object was offered under.
        expected: Sha256Hex,
    },
    /// A device id is bound to one facility for good.
    #[error("device {device} is registered to facility {registered}, not {requested}")]
    DeviceFacilityConflict {
        /// The device.
        device: DeviceId,
        /// Its facility.
        registered: FacilityId,
        /// The facility asked for.
        requested: FacilityId,
    },
    /// The certificate is registered to another device.
    #[error("certificate {fingerprint} is already registered to device {device}")]
    FingerprintTaken {
        /// The certificate.
        fingerprint: Sha256Hex,
        /// The device it belongs to.
        device: DeviceId,
    },
    /// A thread panicked holding the store's lock.
    #[error("store lock poisoned")]
    Poisoned,
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Content-addressed file storage. Objects are immutable and named by their SHA-256.
pub trait ObjectStore: Send + Sync {
    /// Size of a stored object, `None` if absent.
    fn size(&self, sha: &Sha256Hex) -> Result<Option<u64>>;

    /// Whether the object is stored.
    fn has(&self, sha: &Sha256Hex) -> Result<bool> {
        Ok(self.size(sha)?.is_some())
    }

    /// Store `bytes` under `sha`. Verifies the hash first ([`StoreError::HashMismatch`]);
    /// idempotent: storing an existing object returns [`Stored::Duplicate`] and keeps one copy.
    fn put(&self, sha: &Sha256Hex, bytes: &[u8]) -> Result<Stored>;

    /// The object's bytes, `None` if absent.
    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>>;
}

/// A registered client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// SHA-256 of the certificate (DER).
    pub fingerprint: Sha256Hex,
    /// The device it names.
    pub device: DeviceId,
    /// The device's facility.
    pub facility: FacilityId,
    /// What it may do.
    pub role: Role,
    /// When it was registered (RFC 3339, UTC).
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

    /// The registration of a certificate, `None` if unknown.
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
