//! Storage behind the hub API, as two narrow traits so shared backends can replace the
//! embedded defaults ([`FsObjectStore`], [`SqliteMetaStore`]) without touching the protocol:
//! [`PgMetaStore`] keeps the metadata of several hub nodes in one PostgreSQL database. Both
//! are synchronous: the API calls them from `spawn_blocking`.
//!
//! The [`ObjectStore`] is one content-addressed blob store. Which facility holds which object
//! is the [`MetaStore`]'s (its holdings): a device sees, and its manifests may name, only
//! objects its own facility uploaded. Holdings no manifest of the facility references, and
//! blobs no facility holds, are deleted after a grace period ([`crate::gc`]).
//!
//! Chunked upload sessions (issue 11) are split the same way: the session and the hash and
//! size of each chunk received are the [`MetaStore`]'s ([`UploadRecord`], [`ChunkRecord`]);
//! the chunk bytes ("parts") are the [`ObjectStore`]'s, kept beside the objects until the
//! session is committed or expires. Neither trait says how (tables, paths, multipart
//! uploads): that stays inside each implementation.
//!
//! Enrolled boxes (issue 12) are registered by serial ([`SerialRecord`]: facility, status,
//! enrollment times), and every certificate the hub issued to one, its IDevID and each
//! operational certificate, by fingerprint ([`CredentialRecord`]). A request is authorized by
//! looking its certificate up, so revoking a serial cuts every certificate of it at once.
//!
//! The operators' dashboard (issue 13) keeps its accounts (Argon2id hashes) and login
//! sessions (the SHA-256 of each session token, never the token) here too, so sessions
//! survive a restart and are shared by several hub nodes; its figures are counts by day,
//! device and facility ([`DayCount`], [`DeviceUploads`], [`FacilityCounts`]).

#[cfg(test)]
mod conformance;
mod fs;
#[cfg(test)]
mod object_conformance;
mod postgres;
mod s3;
mod sqlite;

use crate::dashboard::OperatorName;
use crate::enroll::Serial;
use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{DicomListing, ExamListing, Stored};
use fgw_format::package::Manifest;
use std::path::PathBuf;
use std::time::SystemTime;

pub use fs::FsObjectStore;
pub use postgres::PgMetaStore;
pub use s3::S3ObjectStore;
pub use sqlite::SqliteMetaStore;

use crate::config::{HubConfig, MetaBackend, ObjectBackend};
use std::sync::Arc;

/// The metadata store `[store] meta` names: SQLite in the data directory, or PostgreSQL.
pub fn open_meta(cfg: &HubConfig) -> Result<Arc<dyn MetaStore>> {
    match &cfg.store.meta {
        MetaBackend::Sqlite => Ok(Arc::new(SqliteMetaStore::open(&cfg.db_path())?)),
        MetaBackend::Postgres(url) => Ok(Arc::new(PgMetaStore::open(url, cfg.store.pool_size)?)),
    }
}

/// The object store `[store] objects` names: files in the data directory, or an S3 bucket.
pub fn open_objects(cfg: &HubConfig) -> Result<Arc<dyn ObjectStore>> {
    match cfg.store.objects {
        ObjectBackend::Fs => Ok(Arc::new(FsObjectStore::open(&cfg.objects_dir())?)),
        ObjectBackend::S3 => match &cfg.store.s3 {
            Some(s3) => Ok(Arc::new(S3ObjectStore::open(s3)?)),
            // `StoreSettings::check` refuses this when the configuration is loaded.
            None => Err(StoreError::S3 {
                bucket: String::new(),
                key: String::new(),
                source: "objects = \"s3\" without a [store.s3] table".into(),
            }),
        },
    }
}

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
    /// The serial is registered with another facility or another IDevID key.
    #[error("serial {serial} is already registered (another facility or another key)")]
    SerialTaken {
        /// The serial.
        serial: Serial,
    },
    /// A WireGuard key another box already uses (two boxes cannot share a tunnel peer).
    #[error("serial {serial}: its WireGuard key is another box's")]
    TunnelKeyTaken {
        /// The serial that sent it.
        serial: Serial,
    },
    /// The serial has been revoked; it is never used again.
    #[error("serial {serial} is revoked")]
    SerialRevoked {
        /// The serial.
        serial: Serial,
    },
    /// No box with this serial is registered.
    #[error("serial {serial} is not registered")]
    UnknownSerial {
        /// The serial.
        serial: Serial,
    },
    /// The certificate is registered to another device.
    #[error("certificate {fingerprint} is already registered to device {device}")]
    FingerprintTaken {
        /// The certificate.
        fingerprint: Sha256Hex,
        /// The device it belongs to.
        device: DeviceId,
    },
    /// PostgreSQL failed (`[store] meta = "postgres://…"`).
    #[error("metadata store {database}: {source}")]
    Postgres {
        /// Host, port and database (never the password).
        database: String,
        /// The driver's or pool's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The S3-compatible store failed (`[store] objects = "s3"`).
    #[error("object store s3://{bucket}/{key}: {source}")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The key (an object's hash or an upload session's id, never content).
        key: String,
        /// The client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
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
    /// A facility already has as many open upload sessions as it may.
    #[error("facility {facility} already has {limit} open upload session(s)")]
    TooManyOpenUploads {
        /// The facility.
        facility: FacilityId,
        /// `max_open_uploads_per_facility`.
        limit: u32,
    },
    /// The bytes offered for a chunk do not hash to the hash sent with them.
    #[error("upload {upload}: chunk {index} hashes to a different sha-256")]
    ChunkHashMismatch {
        /// The session.
        upload: UploadId,
        /// The chunk.
        index: u32,
    },
    /// A chunk's bytes are absent, or shorter or longer than recorded, when assembling.
    #[error("upload {upload}: chunk {index} is not stored whole")]
    PartMissing {
        /// The session.
        upload: UploadId,
        /// The chunk.
        index: u32,
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

/// The chunk bytes ("parts") of one upload session, as garbage collection sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsEntry {
    /// The session they belong to.
    pub upload: UploadId,
    /// When a part was last added.
    pub modified: SystemTime,
}

/// A chunk of an upload session being written, hashed on the way. [`PartWriter::finish`]
/// checks the hash and puts the chunk in place (replacing an earlier copy of that chunk);
/// dropped without it, it leaves nothing behind.
pub trait PartWriter: Send {
    /// Append bytes of the chunk.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Check the hash ([`StoreError::ChunkHashMismatch`]), make the chunk durable and put it
    /// in place.
    fn finish(self: Box<Self>) -> Result<()>;
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

    /// Start writing chunk `index` of session `upload`, which begins `offset` bytes into the
    /// object and whose bytes must hash to `sha` (streaming: nothing is held in memory). A
    /// store may write the chunk in place, so the caller must not start a writer for a chunk
    /// it has recorded as received, nor two writers for one chunk at once.
    fn part_writer(
        &self,
        upload: &UploadId,
        index: u32,
        offset: u64,
        sha: &Sha256Hex,
    ) -> Result<Box<dyn PartWriter>>;

    /// Size of a stored chunk, `None` if absent.
    fn part_size(&self, upload: &UploadId, index: u32) -> Result<Option<u64>>;

    /// Delete every chunk of a session; `false` if it had none.
    fn remove_parts(&self, upload: &UploadId) -> Result<bool>;

    /// Call `f` with the parts of every session that has some (in no particular order). `f`
    /// may remove the parts it is given.
    fn for_each_parts(&self, f: &mut dyn FnMut(PartsEntry) -> Result<()>) -> Result<()>;

    /// Store object `sha` from the chunks of `upload`, in order, chunk `i` being
    /// `lengths[i]` bytes, checking the whole object's hash ([`StoreError::HashMismatch`])
    /// unless `whole` says the caller did.
    /// A chunk absent or not of its length is [`StoreError::PartMissing`]. The parts stay
    /// (the caller removes them once the object is recorded). Stores assemble without
    /// copying where they can: the embedded store renames its session file, an S3 store
    /// completes a multipart upload.
    fn assemble(
        &self,
        upload: &UploadId,
        sha: &Sha256Hex,
        lengths: &[u64],
        whole: WholeHash,
    ) -> Result<Stored>;
}

/// Who checks that an upload session's chunks make the object named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeHash {
    /// The store hashes the assembled bytes (the default when in doubt).
    Check,
    /// The caller hashed, in order, exactly the bytes it handed the store for each chunk,
    /// and they hash to the name: the store does not read them back.
    Checked,
    /// The caller's hash of the chunks is not the name: nothing is stored.
    Mismatch,
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

/// Where a registered box is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialStatus {
    /// `hub device add` signed its IDevID and bound it to a facility; not enrolled yet.
    Assigned,
    /// It has enrolled at least once (it holds an operational certificate).
    Enrolled,
    /// `hub device revoke`: every certificate of it is refused, for good.
    Revoked,
}

impl SerialStatus {
    /// The name stored in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            SerialStatus::Assigned => "assigned",
            SerialStatus::Enrolled => "enrolled",
            SerialStatus::Revoked => "revoked",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<SerialStatus> {
        match s {
            "assigned" => Some(SerialStatus::Assigned),
            "enrolled" => Some(SerialStatus::Enrolled),
            "revoked" => Some(SerialStatus::Revoked),
            _ => None,
        }
    }
}

/// A box's place in the hub's WireGuard tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRecord {
    /// The box.
    pub serial: Serial,
    /// Its WireGuard public key (base64).
    pub wg_public_key: String,
    /// Its host index: its tunnel address is the hub's plus this.
    pub host_index: u32,
}

/// Which certificate of a box a fingerprint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Its IDevID (manufacturing CA): may only enroll.
    Idevid,
    /// An operational certificate (society CA): the box's API identity.
    Operational,
}

impl CredentialKind {
    /// The name stored in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Idevid => "idevid",
            CredentialKind::Operational => "operational",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<CredentialKind> {
        match s {
            "idevid" => Some(CredentialKind::Idevid),
            "operational" => Some(CredentialKind::Operational),
            _ => None,
        }
    }
}

/// A registered box.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SerialRecord {
    /// Its serial.
    pub serial: Serial,
    /// The facility it serves.
    #[serde(rename = "facility_id")]
    pub facility: FacilityId,
    /// Where it is in its life.
    pub status: SerialStatus,
    /// When `hub device add` registered it (RFC 3339, UTC).
    pub added_at: String,
    /// When it last enrolled with its IDevID (RFC 3339, UTC).
    pub enrolled_at: Option<String>,
    /// Expiry of the newest operational certificate issued to it (RFC 3339, UTC).
    pub operational_not_after: Option<String>,
    /// When it was revoked (RFC 3339, UTC).
    pub revoked_at: Option<String>,
}

/// A box to register ([`MetaStore::add_serial`]) with the IDevID just signed for it.
#[derive(Debug, Clone)]
pub struct NewSerial {
    /// Its serial.
    pub serial: Serial,
    /// The facility it is assigned to.
    pub facility: FacilityId,
    /// SHA-256 of the IDevID key's SubjectPublicKeyInfo (DER): a repeated `device add` with
    /// the same key is answered with the same certificate.
    pub idevid_key: Sha256Hex,
    /// SHA-256 of the IDevID certificate (DER).
    pub idevid_fingerprint: Sha256Hex,
    /// The IDevID certificate (PEM; public).
    pub idevid_pem: String,
    /// Its expiry (RFC 3339, UTC).
    pub idevid_not_after: String,
}

/// How [`MetaStore::add_serial`] found the serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialAdded {
    /// Registered by this call, with the IDevID offered.
    New,
    /// Already registered to the same facility with the same key: the IDevID issued then
    /// (PEM), which the caller hands out again instead of the one it offered.
    Existing {
        /// The IDevID certificate registered first.
        idevid_pem: String,
    },
}

/// A certificate the hub issued to a registered box, with the box's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// SHA-256 of the certificate (DER).
    pub fingerprint: Sha256Hex,
    /// Which certificate it is.
    pub kind: CredentialKind,
    /// The box.
    pub serial: Serial,
    /// Its facility (from the registry, never from the certificate).
    pub facility: FacilityId,
    /// Its status now.
    pub status: SerialStatus,
}

/// Which enrollment [`MetaStore::record_operational`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    /// `simpleenroll`, with the IDevID: sets `enrolled_at`.
    Initial,
    /// `simplereenroll`, with an operational certificate.
    Renewal,
}

/// What [`MetaStore::revoke_serial`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// The serial's status before (`None`: no box with that serial is registered).
    pub previous: Option<SerialStatus>,
    /// Certificates of `hub issue-device` registered under that id, removed.
    pub device_certificates_removed: u64,
}

/// A chunked upload session (issue 11): `facility` sends object `sha256` of `size` bytes in
/// chunks of `chunk_bytes` (the last one the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// The session id, [`UploadId::derive`] of facility and object.
    pub upload_id: UploadId,
    /// The facility it belongs to (only its devices see it).
    pub facility: FacilityId,
    /// The object.
    pub sha256: Sha256Hex,
    /// Its size.
    pub size: u64,
    /// The chunk size.
    pub chunk_bytes: u64,
    /// The device that opened it.
    pub opened_by: DeviceId,
}

impl UploadRecord {
    /// Number of chunks: `ceil(size / chunk_bytes)`, at least 1 (an empty object is one
    /// empty chunk). Saturates at `u32::MAX` (the config keeps it far below).
    pub fn chunks(&self) -> u32 {
        let n = self.size.div_ceil(self.chunk_bytes.max(1)).max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The length chunk `index` must have, `None` past the last chunk.
    pub fn chunk_len(&self, index: u32) -> Option<u64> {
        let chunks = self.chunks();
        if index >= chunks {
            return None;
        }
        let start = u64::from(index) * self.chunk_bytes;
        Some(if index + 1 == chunks { self.size - start } else { self.chunk_bytes })
    }

    /// The length of every chunk, in order.
    pub fn chunk_lengths(&self) -> Vec<u64> {
        (0..self.chunks()).filter_map(|i| self.chunk_len(i)).collect()
    }
}

/// A chunk the metadata store recorded as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Its index.
    pub index: u32,
    /// Its SHA-256.
    pub sha256: Sha256Hex,
    /// Its size.
    pub size: u64,
}

/// A session and the chunks received so far (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// The session.
    pub record: UploadRecord,
    /// The chunks received, sorted by index.
    pub received: Vec<ChunkRecord>,
}

/// What [`MetaStore::open_upload`] lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadAdmission {
    /// Open sessions one facility may have (`max_open_uploads_per_facility`).
    pub max_open: u32,
    /// Bytes the facility may hold (`facility_quota_bytes`).
    pub quota: u64,
}

/// How [`MetaStore::open_upload`] found the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Created by this call.
    New,
    /// Already open for this object; returned as it is.
    Existing,
    /// Open for this object with another size: replaced by a new one, its chunks dropped.
    Replaced,
}

/// What expiring sessions removed ([`MetaStore::expire_uploads`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiredUploads {
    /// Open sessions dropped: their parts are to be deleted.
    pub sessions: Vec<UploadId>,
    /// Records of committed sessions dropped.
    pub commits: u64,
}

/// A published release (issue 13): what the TUF targets list, as the hub recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseRecord {
    /// `policy` or `os`.
    pub kind: String,
    /// Its version.
    pub version: String,
    /// Its target file name.
    pub target: String,
    /// SHA-256 of the target (hex).
    pub sha256: String,
    /// Its length.
    pub length: u64,
    /// When it was published (RFC 3339).
    pub published_at: String,
}

/// One wave of a rollout: the share of the fleet it reaches, from when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wave {
    /// Boxes whose seed bucket (0..100) is below this are in it (cumulative: 10, 50, 100).
    pub percent: u8,
    /// When it starts (RFC 3339).
    pub starts_at: String,
}

/// A rollout's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Waves start on time.
    Active,
    /// An operator paused it: no box is newly offered the release.
    Paused,
    /// Failed health checks passed the threshold: no box is newly offered it.
    Halted,
    /// An operator rolled it back: boxes are offered the previous release.
    RolledBack,
    /// A newer rollout of the same kind replaced it.
    Superseded,
}

impl RolloutState {
    /// Its name in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::Halted => "halted",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Superseded => "superseded",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<RolloutState> {
        [
            RolloutState::Active,
            RolloutState::Paused,
            RolloutState::Halted,
            RolloutState::RolledBack,
            RolloutState::Superseded,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A rollout to create ([`MetaStore::create_rollout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollout {
    /// `policy` or `os`.
    pub kind: String,
    /// The release it rolls out.
    pub version: String,
    /// The release of the kind's previous rollout (what a roll-back offers), if any.
    pub previous: Option<String>,
    /// Its waves, in order.
    pub waves: Vec<Wave>,
    /// Halt when failed boxes are at least this percentage of those that reported.
    pub halt_percent: u8,
    /// … and at least this many.
    pub halt_min: u32,
    /// Install outside the maintenance window and with today's exams waiting.
    pub force: bool,
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RolloutRecord {
    /// Its id.
    pub id: i64,
    /// `policy` or `os`.
    pub kind: String,
    /// The release.
    pub version: String,
    /// The previous release of the kind.
    pub previous: Option<String>,
    /// Its waves.
    pub waves: Vec<Wave>,
    /// Its state.
    pub state: RolloutState,
    /// Halt threshold (percent of reporting boxes).
    pub halt_percent: u8,
    /// Halt threshold (count).
    pub halt_min: u32,
    /// Forced installs.
    pub force: bool,
    /// Why it halted, or who paused it (a code).
    pub reason: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its state last changed (RFC 3339).
    pub updated_at: String,
}

/// A dashboard login session as stored: the token itself never is, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The operator it belongs to.
    pub operator: OperatorName,
    /// When it was made (login), ms since the Unix epoch.
    pub created_ms: i64,
    /// When it was last used, ms since the Unix epoch.
    pub last_seen_ms: i64,
}

/// Packages received on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Packages (exam, report and DICOM) received that day.
    pub count: u64,
}

/// What one device has uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUploads {
    /// The device.
    pub device: String,
    /// Its facility.
    pub facility: FacilityId,
    /// Packages received from it.
    pub packages: u64,
    /// When the newest of them was received (RFC 3339, UTC).
    pub last_received: String,
}

/// What the hub holds for one facility.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacilityCounts {
    /// Exams (their current packages).
    pub exams: u64,
    /// Exam and report packages received (every revision).
    pub packages: u64,
    /// DICOM objects (current).
    pub dicom_objects: u64,
    /// Bytes of objects the facility holds.
    pub bytes_held: u64,
}

/// One release being rolled out to the fleet, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSummary {
    /// The release (version).
    pub release: String,
    /// What is rolled out (e.g. `os`, `policy`).
    pub kind: String,
    /// Its waves: percent of the fleet, start (RFC 3339), state.
    pub waves: Vec<(u8, String, String)>,
    /// The rollout's state.
    pub state: String,
    /// Boxes updated so far.
    pub updated: u64,
    /// Boxes whose update failed.
    pub failed: u64,
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

    /// Register a box with its IDevID, status [`SerialStatus::Assigned`]. A serial already
    /// registered to the same facility with the same IDevID key (and not revoked) is
    /// [`SerialAdded::Existing`]; with another facility or key, [`StoreError::SerialTaken`];
    /// revoked, [`StoreError::SerialRevoked`]. A serial is also a device id: one bound to
    /// another facility by `issue-device` is [`StoreError::DeviceFacilityConflict`].
    fn add_serial(&self, new: &NewSerial) -> Result<SerialAdded>;

    /// A registered box, `None` if unknown.
    fn serial(&self, serial: &Serial) -> Result<Option<SerialRecord>>;

    /// The box certificate (IDevID or operational) with this fingerprint, with the box's
    /// status now, `None` if the hub issued no such certificate to a registered box.
    fn credential_by_fingerprint(
        &self,
        fingerprint: &Sha256Hex,
    ) -> Result<Option<CredentialRecord>>;

    /// Register an operational certificate just issued to `serial`, valid until `not_after`
    /// (RFC 3339, UTC), mark the box [`SerialStatus::Enrolled`] and keep `not_after` as its
    /// `operational_not_after`. Refused for a revoked serial ([`StoreError::SerialRevoked`]:
    /// a revocation racing the enrollment wins) or an unknown one. Operational certificates
    /// of the box already expired are forgotten.
    fn record_operational(
        &self,
        serial: &Serial,
        fingerprint: &Sha256Hex,
        not_after: &str,
        enrollment: Enrollment,
    ) -> Result<()>;

    /// Mark a box revoked (idempotent), and remove `issue-device` registrations of the same
    /// id: from the next request on, every certificate of it gets 403.
    fn revoke_serial(&self, serial: &Serial) -> Result<Revocation>;

    /// Record `key` (base64) as the WireGuard key of `serial`, replacing an earlier one, and
    /// return the box's host index in the tunnel: the one it had, or the next unused one
    /// (1, 2, …). Refused for a revoked or unknown serial, and for a key another box uses
    /// ([`StoreError::TunnelKeyTaken`]).
    fn set_tunnel_key(&self, serial: &Serial, key: &str) -> Result<u32>;

    /// The tunnels of every box that is not revoked: what the hub's interface should have as
    /// peers.
    fn active_tunnels(&self) -> Result<Vec<TunnelRecord>>;

    /// Keep `heartbeat` (already checked, `crate::fleet::parse`) as the newest of `device`;
    /// returns when it was received (RFC 3339, UTC).
    fn record_heartbeat(
        &self,
        device: &DeviceId,
        facility: &FacilityId,
        heartbeat: &fgw_format::package::protocol::Heartbeat,
    ) -> Result<String>;

    /// The newest heartbeat of every device, by facility and device.
    fn fleet(&self) -> Result<Vec<fgw_format::package::protocol::FleetRow>>;

    /// Record a published release. The same release again is a no-op.
    fn record_release(&self, release: &ReleaseRecord) -> Result<()>;

    /// Every published release, oldest first.
    fn releases(&self) -> Result<Vec<ReleaseRecord>>;

    /// Create a rollout; the kind's rollouts that are not rolled back become superseded.
    fn create_rollout(&self, rollout: &NewRollout) -> Result<i64>;

    /// Every rollout, newest first.
    fn rollouts(&self) -> Result<Vec<RolloutRecord>>;

    /// Set a rollout's state (and reason code); false if no such rollout.
    fn set_rollout_state(&self, id: i64, state: RolloutState, reason: Option<&str>)
        -> Result<bool>;

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

    /// Open the session `upload.upload_id`, or return the one already open for that
    /// facility and object (touched; kept as it is, with its chunk size). A session open for
    /// the same object with another size is replaced ([`Opened::Replaced`]). A new session
    /// is refused when the facility already has `admit.max_open` open
    /// ([`StoreError::TooManyOpenUploads`]), or when the object (unless the facility holds
    /// it already) with the facility's holdings and its other open sessions would exceed
    /// `admit.quota` ([`StoreError::QuotaExceeded`]).
    fn open_upload(
        &self,
        upload: &UploadRecord,
        admit: UploadAdmission,
    ) -> Result<(UploadState, Opened)>;

    /// The open session `upload` of `facility` and its chunks, `None` if there is none
    /// (another facility's session is none).
    fn upload_state(&self, facility: &FacilityId, upload: &UploadId)
        -> Result<Option<UploadState>>;

    /// Like [`MetaStore::upload_state`] without the chunks, and marks the session as in use
    /// now (so it does not expire while chunks arrive).
    fn touch_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadRecord>>;

    /// Record chunk `chunk` of session `upload` as received (replacing an earlier record of
    /// that index) and touch the session; `false` if the session is gone.
    fn record_chunk(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
        chunk: &ChunkRecord,
    ) -> Result<bool>;

    /// Delete an open session and its chunk records (without a record of a commit);
    /// `false` if there was none.
    fn drop_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<bool>;

    /// Delete a committed session and its chunk records, and keep a record of the commit
    /// (session id, facility, object) until the session would have expired, so a retried
    /// commit is answered ([`MetaStore::committed_upload`]).
    fn finish_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<()>;

    /// The object of a session of `facility` committed within the session lifetime, `None`
    /// if there is no such record.
    fn committed_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<Sha256Hex>>;

    /// Whether any facility has an open session `upload`.
    fn upload_open(&self, upload: &UploadId) -> Result<bool>;

    /// Delete open sessions last touched before `cutoff`, and records of commits made
    /// before it.
    fn expire_uploads(&self, cutoff: SystemTime) -> Result<ExpiredUploads>;

    /// Set the dashboard password of operator `name` (an Argon2id PHC string), adding the
    /// account if there is none; `true` if it was added. Setting a new password ends the
    /// operator's sessions.
    fn set_operator(&self, name: &OperatorName, password_phc: &str) -> Result<bool>;

    /// Remove an operator account and its sessions; `false` if there was none.
    fn remove_operator(&self, name: &OperatorName) -> Result<bool>;

    /// The PHC string of an operator's password, `None` if there is no such account.
    fn operator_password(&self, name: &OperatorName) -> Result<Option<String>>;

    /// Record a new login session of `operator`, keyed by the SHA-256 of its token, made
    /// and last used at `now_ms`.
    fn insert_session(
        &self,
        token_sha256: &Sha256Hex,
        operator: &OperatorName,
        now_ms: i64,
    ) -> Result<()>;

    /// The session keyed by `token_sha256`, `None` if there is none (never made, logged out,
    /// expired, or its operator removed).
    fn session(&self, token_sha256: &Sha256Hex) -> Result<Option<SessionRecord>>;

    /// Mark a session as used at `now_ms`.
    fn touch_session(&self, token_sha256: &Sha256Hex, now_ms: i64) -> Result<()>;

    /// End a session (logout); `false` if there was none.
    fn delete_session(&self, token_sha256: &Sha256Hex) -> Result<bool>;

    /// Delete sessions last used before `idle_cutoff_ms` or made before `created_cutoff_ms`;
    /// returns how many.
    fn expire_sessions(&self, idle_cutoff_ms: i64, created_cutoff_ms: i64) -> Result<u64>;

    /// Packages received per day (UTC) from day `since` (`YYYY-MM-DD`) on, of `facility` or
    /// of every facility; days without packages are left out, the rest in order.
    fn uploads_per_day(&self, facility: Option<&FacilityId>, since: &str) -> Result<Vec<DayCount>>;

    /// Per device that uploaded anything: how many packages, and when the newest arrived.
    fn device_uploads(&self) -> Result<Vec<DeviceUploads>>;

    /// Exams, packages, DICOM objects and bytes held of one facility.
    fn facility_counts(&self, facility: &FacilityId) -> Result<FacilityCounts>;

    // Researchers' export (issue 15).

    /// The manifest stored for `package` (an exam, report or DICOM package of `facility`),
    /// exactly as received; `None` if `facility` has no such package.
    fn package_manifest(
        &self,
        facility: &FacilityId,
        package: &PackageId,
    ) -> Result<Option<String>>;

    /// Add an export to the access log; its id.
    fn record_export(&self, export: &ExportRecord) -> Result<i64>;

    /// The access log, oldest first; only `researcher`'s exports when given.
    fn exports(&self, researcher: Option<&str>) -> Result<Vec<ExportRecord>>;
}

/// One researchers' export, as the access log keeps it: who took which facility's data,
/// for which dates, in which form, where to, and how many rows. Never the data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportRecord {
    /// Its id in the log (0 before it is recorded).
    pub id: i64,
    /// Who ran it (`hub export --researcher`, by default the account that ran the command).
    pub researcher: String,
    /// The facility exported.
    pub facility: FacilityId,
    /// First date of the range, `YYYY-MM-DD`.
    pub date_from: String,
    /// Last date of the range, `YYYY-MM-DD`.
    pub date_to: String,
    /// `parquet` or `dicom`.
    pub format: String,
    /// The output folder, or the DICOM node the objects were sent to (never a password).
    pub destination: String,
    /// Rows (exams) or DICOM objects exported.
    pub rows: u64,
    /// `complete` or `failed`.
    pub outcome: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended (RFC 3339, UTC).
    pub finished_at: String,
}
