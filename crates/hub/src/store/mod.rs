//! Storage behind the hub API, as two narrow traits so PostgreSQL / S3 backends can replace
//! the embedded defaults ([`FsObjectStore`], [`SqliteMetaStore`]) without
//! touching the protocol. Both are synchronous: the API calls them from `spawn_blocking`.
//!
//! The [`ObjectStore`] is one content-addressed blob store. Which facility holds which object
//! is the [`MetaStore`]'s (its holdings): a device sees, and its manifests may name, only
//! objects its own facility uploaded. Holdings no manifest of the facility references, and
//! blobs no facility holds, are deleted after a grace period ([`crate::gc`]).

mod fs;
mod sqlite;

use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{DicomListing, ExamListing, Stored};
use fgw_format::package::Manifest;
use std::path::PathBuf;
use std::time::SystemTime;

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
    /// A manifest names objects its facility does not hold (not uploaded by it, or collected).
    #[error("facility {facility}: {} object(s) named by the manifest are not held", missing.len())]
    ObjectsNotHeld {
        /// The manifest's facility.
        facility: FacilityId,
        /// The objects it lacks, sorted, each once.
        missing: Vec<Sha256Hex>,
    },
    /// A manifest gives a held object another size than the stored one.
    #[error("file {path}: object {sha256} is stored with another size")]
    ObjectSize {
        /// The manifest's file path.
        path: String,
        /// The object.
        sha256: Sha256Hex,
    },
    /// Holding one more object would take a facility over its quota.
    #[error("facility {facility} is over its storage quota of {quota} bytes")]
    QuotaExceeded {
        /// The facility.
        facility: FacilityId,
        /// Its quota (`facility_quota_bytes`).
        quota: u64,
    },
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored object, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Its name.
    pub sha256: Sha256Hex,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written or re-uploaded.
    pub modified: SystemTime,
}

/// An object being written: bytes go to temporary storage as they arrive, hashed on the way.
/// Dropped without [`ObjectWriter::finish`], it leaves nothing behind.
pub trait ObjectWriter: Send {
    /// Append a chunk of the body.
    fn write(&mut self, chunk: &[u8]) -> Result<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Check the hash of everything written ([`StoreError::HashMismatch`]), make it durable
    /// and put it in place. [`Stored::Duplicate`] if the store already had the object (its
    /// age is reset, so a collection does not take it from under this upload).
    fn finish(self: Box<Self>) -> Result<Stored>;
}

/// Content-addressed file storage. Objects are immutable and named by their SHA-256.
pub trait ObjectStore: Send + Sync {
    /// Size of a stored object, `None` if absent.
    fn size(&self, sha: &Sha256Hex) -> Result<Option<u64>>;

    /// Whether the object is stored.
    fn has(&self, sha: &Sha256Hex) -> Result<bool> {
        Ok(self.size(sha)?.is_some())
    }

    /// Start writing the object `sha` (streaming: nothing is held in memory).
    fn writer(&self, sha: &Sha256Hex) -> Result<Box<dyn ObjectWriter>>;

    /// Store `bytes` under `sha`: [`ObjectStore::writer`] with one chunk. Verifies the hash
    /// ([`StoreError::HashMismatch`]); idempotent: storing an existing object returns
    /// [`Stored::Duplicate`] and keeps one copy.
    fn put(&self, sha: &Sha256Hex, bytes: &[u8]) -> Result<Stored> {
        let mut w = self.writer(sha)?;
        w.write(bytes)?;
        w.finish()
    }

    /// The object's bytes, `None` if absent.
    fn get(&self, sha: &Sha256Hex) -> Result<Option<Vec<u8>>>;

    /// Delete an object; `false` if it was not there.
    fn remove(&self, sha: &Sha256Hex) -> Result<bool>;

    /// Call `f` with every stored object (in no particular order). `f` may remove the object
    /// it is given.
    fn for_each(&self, f: &mut dyn FnMut(ObjectEntry) -> Result<()>) -> Result<()>;

    /// Delete temporary files of uploads last written before `cutoff` (left by a crash or a
    /// killed process); returns how many.
    fn remove_stale_temp(&self, cutoff: SystemTime) -> Result<u64>;
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

    /// Record an accepted package: `raw` are the exact bytes received (they hash to
    /// `package_id`), `manifest` their parse. Idempotent by package id
    /// ([`Stored::Duplicate`]). Every file must be an object `facility` holds, with the size
    /// the manifest gives ([`StoreError::ObjectsNotHeld`], [`StoreError::ObjectSize`]).
    ///
    /// The current package of an exam is ranked by a revision the hub derives,
    /// `min(revision, highest derived so far + 1)`, then by the manifest's revision, then by
    /// arrival (a re-export after a policy change wins): a client cannot pin an exam with a
    /// huge revision (`docs/package-format.md#revisions`).
    fn record_package(
        &self,
        facility: &FacilityId,
        device: &DeviceId,
        package_id: &PackageId,
        manifest: &Manifest,
        raw: &[u8],
    ) -> Result<Stored>;

    /// Record that `facility` holds object `sha` of `size` bytes (it uploaded the bytes).
    /// [`Stored::Duplicate`] if it already did (its age is reset); a new holding that would
    /// take the facility over `quota` bytes is [`StoreError::QuotaExceeded`].
    fn hold_object(
        &self,
        facility: &FacilityId,
        sha: &Sha256Hex,
        size: u64,
        quota: u64,
    ) -> Result<Stored>;

    /// The size of an object `facility` holds, `None` if it holds none by that name.
    fn held_size(&self, facility: &FacilityId, sha: &Sha256Hex) -> Result<Option<u64>>;

    /// Bytes of objects `facility` holds.
    fn facility_usage(&self, facility: &FacilityId) -> Result<u64>;

    /// Whether any facility holds `sha`.
    fn object_held(&self, sha: &Sha256Hex) -> Result<bool>;

    /// Drop holdings that no manifest of their facility references and that were last
    /// uploaded before `cutoff`; returns how many.
    fn release_unreferenced(&self, cutoff: SystemTime) -> Result<u64>;

    /// Current package of every exam of a facility, ordered by exam pseudonym.
    fn list_exams(&self, facility: &FacilityId) -> Result<Vec<ExamListing>>;

    /// Current package of every DICOM object of a facility, by study, series, instance.
    fn list_dicom(&self, facility: &FacilityId) -> Result<Vec<DicomListing>>;

    /// Number of distinct packages received (all facilities).
    fn package_count(&self) -> Result<u64>;
}
