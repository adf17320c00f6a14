//! Room on the state directory's filesystem: a floor of free space, a byte quota per spool
//! stage, and the reason codes the daemon pauses with and `gateway status` shows.
//!
//! The policy, in order of who gives way first:
//! - new input (export rows, HL7 reports, DICOM objects) is admitted only while the free
//!   space stays at or above `storage.min_free_bytes` after it, and no stage is at its quota;
//!   a refused input is answered "retry later" (DICOM 0xA700, HL7 AE) or left in the export
//!   folder, so nothing is accepted that the box cannot keep;
//! - the stages after ingest (the outbox) may write down to half the floor: what the box has
//!   accepted can still be de-identified and uploaded, and the uploads free the space;
//! - the state database has the rest. A write that still fails for lack of space (ENOSPC,
//!   EDQUOT, SQLITE_FULL) is retried with a back-off, never the end of the daemon.
//!
//! The per-stage byte counts are file lengths (not blocks), computed once by walking the
//! stage's directory and kept up to date on each write and removal.

use crate::config::{GatewayConfig, StorageConfig};
use crate::state::{Db, MetaKey, StateError};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A directory of the state that holds one stage's files and has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    /// `spool/`: raw inputs accepted and not yet acknowledged (encrypted).
    Spool,
    /// `outbox/`: de-identified packages waiting for upload.
    Outbox,
    /// `quarantine/`: raw inputs kept on the box (encrypted).
    Quarantine,
}

impl Store {
    /// Every store, in the order of [`Levels::used`].
    pub const ALL: [Store; 3] = [Store::Spool, Store::Outbox, Store::Quarantine];

    /// The directory's name, as status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Store::Spool => "spool",
            Store::Outbox => "outbox",
            Store::Quarantine => "quarantine",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Its quota in bytes; 0 = none.
    pub fn quota(self, cfg: &StorageConfig) -> u64 {
        match self {
            Store::Spool => cfg.spool_quota_bytes,
            Store::Outbox => cfg.outbox_quota_bytes,
            Store::Quarantine => cfg.quarantine_quota_bytes,
        }
    }

    /// The reason given when its quota is reached.
    pub fn quota_reason(self) -> PauseReason {
        match self {
            Store::Spool => PauseReason::SpoolQuota,
            Store::Outbox => PauseReason::OutboxQuota,
            Store::Quarantine => PauseReason::QuarantineQuota,
        }
    }
}

/// Why ingest is paused (or a stage waits for room): the code logs and `gateway status` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PauseReason {
    /// Free space under `storage.min_free_bytes` (or too few free inodes), or a write failed
    /// for lack of space (ENOSPC, EDQUOT, SQLITE_FULL).
    DiskFull,
    /// `spool/` reached `storage.spool_quota_bytes`.
    SpoolQuota,
    /// `outbox/` reached `storage.outbox_quota_bytes`.
    OutboxQuota,
    /// `quarantine/` reached `storage.quarantine_quota_bytes`.
    QuarantineQuota,
}

impl PauseReason {
    /// Every reason.
    pub const ALL: [PauseReason; 4] = [
        PauseReason::DiskFull,
        PauseReason::SpoolQuota,
        PauseReason::OutboxQuota,
        PauseReason::QuarantineQuota,
    ];

    /// The reason code.
    pub fn code(self) -> &'static str {
        match self {
            PauseReason::DiskFull => "disk-full",
            PauseReason::SpoolQuota => "spool-quota",
            PauseReason::OutboxQuota => "outbox-quota",
            PauseReason::QuarantineQuota => "quarantine-quota",
        }
    }

    /// The reason with this code.
    pub fn parse(code: &str) -> Option<PauseReason> {
        PauseReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// What a listener's refusal carries (fixed text: it reaches the sender's log).
    pub fn refusal(self) -> &'static str {
        match self {
            PauseReason::DiskFull => "storage paused: disk-full",
            PauseReason::SpoolQuota => "storage paused: spool-quota",
            PauseReason::OutboxQuota => "storage paused: outbox-quota",
            PauseReason::QuarantineQuota => "storage paused: quarantine-quota",
        }
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Free inodes under which the filesystem counts as full: a file per input is needed.
const MIN_FREE_INODES: u64 = 64;

/// Free space of a filesystem, as an unprivileged process may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes available.
    pub bytes: u64,
    /// Size of the filesystem in bytes (the heartbeat reports it beside `bytes`).
    pub total_bytes: u64,
    /// Inodes available; `None` where the filesystem does not count them.
    pub inodes: Option<u64>,
}

impl FreeSpace {
    /// Whether `incoming` more bytes leave at least `floor` bytes (and some inodes) free.
    fn leaves(&self, floor: u64, incoming: u64) -> bool {
        self.bytes >= floor.saturating_add(incoming)
            && self.inodes.is_none_or(|n| n >= MIN_FREE_INODES)
    }
}

/// statvfs(3) of the filesystem holding `dir`.
// The statvfs fields are 32-bit on some targets (the board), 64-bit here.
#[allow(clippy::useless_conversion)]
pub fn free_space(dir: &Path) -> std::io::Result<FreeSpace> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let bytes = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    let total_bytes = u64::from(st.blocks()).saturating_mul(u64::from(st.fragment_size()));
    // Filesystems without an inode table report 0 total inodes.
    let inodes = (u64::from(st.files()) > 0).then(|| u64::from(st.files_available()));
    Ok(FreeSpace { bytes, total_bytes, inodes })
}

/// What the stores hold and what is free: the input of every decision below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// The filesystem's free space.
    pub free: FreeSpace,
    /// Bytes in each store, in the order of [`Store::ALL`].
    pub used: [u64; 3],
}

impl Levels {
    /// Bytes in `store`.
    pub fn used(&self, store: Store) -> u64 {
        self.used[store.index()]
    }
}

/// Whether `incoming` more bytes fit `store`'s quota (a store at its quota takes nothing
/// more). An input larger than the whole quota is let into an empty store, so a quota set
/// too small cannot hold the box forever.
fn fits_quota(cfg: &StorageConfig, levels: &Levels, store: Store, incoming: u64) -> bool {
    let quota = store.quota(cfg);
    let used = levels.used(store);
    quota == 0 || used == 0 || (used < quota && used.saturating_add(incoming) <= quota)
}

/// Why a new input of `incoming` bytes is refused now (every reason that applies, disk-full
/// first); empty when it is admitted. Ingest also pauses while the outbox or the quarantine
/// is at its quota: what it would accept could not go on.
pub fn input_refusals(cfg: &StorageConfig, levels: &Levels, incoming: u64) -> Vec<PauseReason> {
    let mut out = Vec::new();
    if !levels.free.leaves(cfg.min_free_bytes, incoming) {
        out.push(PauseReason::DiskFull);
    }
    if !fits_quota(cfg, levels, Store::Spool, incoming) {
        out.push(PauseReason::SpoolQuota);
    }
    for store in [Store::Outbox, Store::Quarantine] {
        let quota = store.quota(cfg);
        if quota > 0 && levels.used(store) >= quota {
            out.push(store.quota_reason());
        }
    }
    out
}

/// Why a stage after ingest must wait before writing `incoming` bytes into `store`: its
/// quota, or less than half the floor left. The other half of the floor is the state
/// database's.
pub fn stage_refusal(
    cfg: &StorageConfig,
    levels: &Levels,
    store: Store,
    incoming: u64,
) -> Option<PauseReason> {
    if !levels.free.leaves(cfg.min_free_bytes / 2, incoming) {
        return Some(PauseReason::DiskFull);
    }
    (!fits_quota(cfg, levels, store, incoming)).then(|| store.quota_reason())
}

/// Whether an I/O error means "no room": ENOSPC or EDQUOT.
pub fn io_is_full(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(e.raw_os_error(), Some(n) if n == Errno::ENOSPC as i32 || n == Errno::EDQUOT as i32)
}

/// Bytes held by one store: set by walking its directory, then kept by its writers.
#[derive(Debug, Default)]
pub struct ByteCounter(AtomicU64);

impl ByteCounter {
    /// A counter starting at `bytes`.
    pub fn new(bytes: u64) -> ByteCounter {
        ByteCounter(AtomicU64::new(bytes))
    }
    /// The bytes counted.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// `n` bytes written.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// `n` bytes removed (never below zero: a file removed by another process was never
    /// counted).
    pub fn sub(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
    }
    /// A fresh count (after a walk).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Bytes of the regular files under `dir`, recursively; a missing directory holds none.
/// Links are not followed.
pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0u64;
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed while we walked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            total = total.saturating_add(dir_bytes(&entry.path())?);
        } else if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// The length of the file at `path`, 0 if there is none.
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0)
}

/// First wait after a write found no room; doubled up to [`RETRY_MAX`].
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between two tries: how long a stage may lag once room returns.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);
/// Waits are sliced so a shutdown ends them promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The daemon's parts that wait for room, each with its reason, and the flag that ends every
/// wait at shutdown.
#[derive(Debug, Default)]
pub(crate) struct Pauses {
    parts: Mutex<BTreeMap<&'static str, PauseReason>>,
    stopping: AtomicBool,
    /// Held while the reasons in force are written down, so two writers cannot leave an
    /// older set last.
    record: Mutex<()>,
    /// When the state database's log was last checkpointed for room.
    last_checkpoint: Mutex<Option<std::time::Instant>>,
}

/// What a pause or resume changed: the reasons now in force, when they changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed {
    /// Whether this part's state changed (worth a log line).
    pub(crate) part: bool,
    /// The set of reasons in force, when it changed (worth recording).
    pub(crate) reasons: Option<Vec<PauseReason>>,
}

impl Pauses {
    fn reasons_of(parts: &BTreeMap<&'static str, PauseReason>) -> Vec<PauseReason> {
        let mut r: Vec<PauseReason> = parts.values().copied().collect();
        r.sort();
        r.dedup();
        r
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<&'static str, PauseReason>) -> bool) -> Changed {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let before = Self::reasons_of(&parts);
        let part = f(&mut parts);
        let after = Self::reasons_of(&parts);
        Changed { part, reasons: (before != after).then_some(after) }
    }

    /// `part` waits for room because of `reason`.
    pub(crate) fn pause(&self, part: &'static str, reason: PauseReason) -> Changed {
        self.change(|p| p.insert(part, reason) != Some(reason))
    }

    /// `part` goes on.
    pub(crate) fn resume(&self, part: &'static str) -> Changed {
        self.change(|p| p.remove(part).is_some())
    }

    /// The reasons in force (each once, disk-full first).
    pub(crate) fn current(&self) -> Vec<PauseReason> {
        Self::reasons_of(&self.parts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Held while the reasons in force are written down.
    pub(crate) fn recording(&self) -> std::sync::MutexGuard<'_, ()> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `every` has passed since the last call that returned true (rate limit of the
    /// database checkpoints made for room).
    pub(crate) fn checkpoint_due(&self, every: Duration) -> bool {
        let mut last = self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Why `part` waits, if it does.
    pub(crate) fn reason(&self, part: &'static str) -> Option<PauseReason> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner()).get(part).copied()
    }

    /// End every wait: the daemon stops.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the daemon stops.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Sleep `d` on a blocking thread; true when the daemon stops meanwhile.
    pub(crate) fn wait_blocking(&self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(WAIT_SLICE));
        }
        true
    }

    /// Sleep `d` in a task; true when the daemon stops meanwhile.
    pub(crate) async fn wait(&self, d: Duration) -> bool {
        let end = tokio::time::Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            tokio::time::sleep(left.min(WAIT_SLICE)).await;
        }
        true
    }
}

/// One store's line in `gateway status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// The store.
    pub store: Store,
    /// Bytes in it.
    pub bytes: u64,
    /// Its quota; 0 = none.
    pub quota_bytes: u64,
}

/// What `gateway status` shows of the state directory's room, measured now (the daemon's
/// own record of a pause is read from the state database beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageReport {
    /// Free space of the state directory's filesystem.
    pub free: FreeSpace,
    /// `storage.min_free_bytes`.
    pub min_free_bytes: u64,
    /// Each store's bytes and quota.
    pub stores: Vec<StoreUsage>,
    /// Why new input would be refused now; empty when it is admitted.
    pub reasons: Vec<PauseReason>,
}

/// Measure the box of `cfg`: statvfs of the state directory and a walk of each store.
pub fn report(cfg: &GatewayConfig) -> std::io::Result<StorageReport> {
    let free = free_space(&cfg.state_dir)?;
    let dirs = [cfg.spool_dir(), cfg.outbox_dir(), cfg.quarantine_dir()];
    let mut used = [0u64; 3];
    for (slot, dir) in used.iter_mut().zip(&dirs) {
        *slot = dir_bytes(dir)?;
    }
    let levels = Levels { free, used };
    let stores = Store::ALL
        .into_iter()
        .map(|s| StoreUsage { store: s, bytes: levels.used(s), quota_bytes: s.quota(&cfg.storage) })
        .collect();
    Ok(StorageReport {
        free,
        min_free_bytes: cfg.storage.min_free_bytes,
        stores,
        reasons: input_refusals(&cfg.storage, &levels, 0),
    })
}

/// Why `gateway status` could not look at the room.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The state directory's filesystem or a store could not be measured.
    #[error("storage {path}: {source}")]
    Measure {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon's record of a pause could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// `gateway status`'s view of the room: measured now, plus what the daemon recorded (a
/// write it saw fail, which a measurement may no longer show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageStatus {
    /// Measured now.
    pub report: StorageReport,
    /// The daemon's record: since when, and its reasons.
    pub recorded: Option<(String, Vec<PauseReason>)>,
}

/// Measure the box of `cfg` and read the daemon's record from `db`.
pub fn status(cfg: &GatewayConfig, db: &Db) -> Result<StorageStatus, StorageError> {
    let report = report(cfg)
        .map_err(|source| StorageError::Measure { path: cfg.state_dir.clone(), source })?;
    let recorded = db.meta(MetaKey::StoragePaused)?.map(|v| {
        let (since, codes) = v.split_once(' ').unwrap_or((v.as_str(), ""));
        let reasons = codes.split(',').filter_map(PauseReason::parse).collect();
        (since.to_string(), reasons)
    });
    Ok(StorageStatus { report, recorded })
}

impl StorageStatus {
    /// Every reason in force, measured or recorded, each once (disk-full first).
    pub fn reasons(&self) -> Vec<PauseReason> {
        let mut r = self.report.reasons.clone();
        if let Some((_, rec)) = &self.recorded {
            r.extend(rec);
        }
        r.sort();
        r.dedup();
        r
    }

    /// The `storage` object of `gateway status --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let reasons: Vec<&str> = self.reasons().into_iter().map(PauseReason::code).collect();
        let stores: serde_json::Map<String, serde_json::Value> = self
            .report
            .stores
            .iter()
            .map(|u| {
                let v = serde_json::json!({ "bytes": u.bytes, "quota_bytes": u.quota_bytes });
                (u.store.as_str().to_string(), v)
            })
            .collect();
        serde_json::json!({
            "state": if reasons.is_empty() { "running" } else { "paused" },
            "reasons": reasons,
            "since": self.recorded.as_ref().map(|(since, _)| since),
            "free_bytes": self.report.free.bytes,
            "min_free_bytes": self.report.min_free_bytes,
            "stores": stores,
        })
    }

    /// The lines of plain `gateway status`.
    pub fn text_lines(&self) -> Vec<String> {
        let r = &self.report;
        let room =
            format!("{} free, floor {}", human_bytes(r.free.bytes), human_bytes(r.min_free_bytes));
        let reasons: Vec<&str> = self.reasons().into_iter().map(PauseReason::code).collect();
        let head = if reasons.is_empty() {
            format!("  storage       running: {room}")
        } else {
            let since = match &self.recorded {
                Some((since, _)) => format!(" since {since}"),
                None => String::new(),
            };
            format!(
                "  storage       PAUSED ({}){since}: {room}; new input is refused (senders retry, \
                 export files stay) and resumes by itself when room returns",
                reasons.join(", ")
            )
        };
        let stores: Vec<String> = r
            .stores
            .iter()
            .map(|u| match u.quota_bytes {
                0 => format!("{} {}", u.store.as_str(), human_bytes(u.bytes)),
                q => format!("{} {} of {}", u.store.as_str(), human_bytes(u.bytes), human_bytes(q)),
            })
            .collect();
        vec![head, format!("  stores        {}", stores.join(", "))]
    }
}

pub use fgw_format::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn cfg(min_free: u64, spool: u64, outbox: u64, quarantine: u64) -> StorageConfig {
        StorageConfig {
            min_free_bytes: min_free,
            spool_quota_bytes: spool,
            outbox_quota_bytes: outbox,
            quarantine_quota_bytes: quarantine,
        }
    }

    fn levels(free: u64, used: [u64; 3]) -> Levels {
        Levels { free: FreeSpace { bytes: free, total_bytes: free, inodes: Some(1000) }, used }
    }

    #[test]
    fn input_needs_the_floor_after_it() {
        let c = cfg(10 * MIB, 0, 0, 0);
        assert!(input_refusals(&c, &levels(11 * MIB, [0; 3]), MIB).is_empty());
        assert_eq!(input_refusals(&c, &levels(11 * MIB, [0; 3]), MIB + 1), [PauseReason::DiskFull]);
        assert_eq!(input_refusals(&c, &levels(9 * MIB, [0; 3]), 0), [PauseReason::DiskFull]);
        // Inodes count too; a filesystem without an inode count is judged by bytes.
        let mut l = levels(100 * MIB, [0; 3]);
        l.free.inodes = Some(3);
        assert_eq!(input_refusals(&c, &l, 0), [PauseReason::DiskFull]);
        l.free.inodes = None;
        assert!(input_refusals(&c, &l, 0).is_empty());
    }

    #[test]
    fn each_quota_has_its_reason_and_zero_means_none() {
        let free = 1024 * MIB;
        let c = cfg(MIB, 10 * MIB, 20 * MIB, 30 * MIB);
        let ok = levels(free, [9 * MIB, 19 * MIB, 29 * MIB]);
        assert!(input_refusals(&c, &ok, MIB).is_empty());
        assert_eq!(input_refusals(&c, &ok, MIB + 1), [PauseReason::SpoolQuota]);
        let all = levels(free, [10 * MIB, 20 * MIB, 30 * MIB]);
        assert_eq!(
            input_refusals(&c, &all, 0),
            [PauseReason::SpoolQuota, PauseReason::OutboxQuota, PauseReason::QuarantineQuota]
        );
        let none = cfg(MIB, 0, 0, 0);
        assert!(input_refusals(&none, &levels(free, [500 * MIB; 3]), 100 * MIB).is_empty());
        // Disk first, then the quotas, in one answer.
        let tight = levels(0, [10 * MIB, 0, 0]);
        assert_eq!(input_refusals(&c, &tight, 0), [PauseReason::DiskFull, PauseReason::SpoolQuota]);
    }

    #[test]
    fn an_input_larger_than_the_quota_enters_an_empty_store_only() {
        let c = cfg(0, MIB, MIB, 0);
        assert!(input_refusals(&c, &levels(100 * MIB, [0; 3]), 5 * MIB).is_empty());
        assert_eq!(
            input_refusals(&c, &levels(100 * MIB, [1, 0, 0]), 5 * MIB),
            [PauseReason::SpoolQuota]
        );
        assert_eq!(stage_refusal(&c, &levels(100 * MIB, [0; 3]), Store::Outbox, 5 * MIB), None);
        assert_eq!(
            stage_refusal(&c, &levels(100 * MIB, [0, 1, 0]), Store::Outbox, 5 * MIB),
            Some(PauseReason::OutboxQuota)
        );
    }

    #[test]
    fn stages_after_ingest_may_use_half_the_floor() {
        let c = cfg(10 * MIB, 0, 0, 0);
        let l = levels(7 * MIB, [0; 3]);
        // Ingest is paused here, the outbox may still take 2 MiB.
        assert_eq!(input_refusals(&c, &l, 0), [PauseReason::DiskFull]);
        assert_eq!(stage_refusal(&c, &l, Store::Outbox, 2 * MIB), None);
        assert_eq!(stage_refusal(&c, &l, Store::Outbox, 2 * MIB + 1), Some(PauseReason::DiskFull));
    }

    #[test]
    fn counters_never_go_below_zero() {
        let n = ByteCounter::new(10);
        n.add(5);
        n.sub(3);
        assert_eq!(n.get(), 12);
        n.sub(100);
        assert_eq!(n.get(), 0);
        n.set(7);
        assert_eq!(n.get(), 7);
    }

    #[test]
    fn dir_bytes_walks_subdirectories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir_all(d.path().join("x/y")).unwrap();
        std::fs::write(d.path().join("x/y/b"), [0u8; 23]).unwrap();
        assert_eq!(dir_bytes(d.path()).unwrap(), 123);
        assert_eq!(dir_bytes(&d.path().join("missing")).unwrap(), 0);
        assert!(free_space(d.path()).unwrap().bytes > 0);
    }

    #[test]
    fn pauses_report_changes_once() {
        let p = Pauses::default();
        let c = p.pause("ingest", PauseReason::DiskFull);
        assert_eq!(c, Changed { part: true, reasons: Some(vec![PauseReason::DiskFull]) });
        assert_eq!(
            p.pause("ingest", PauseReason::DiskFull),
            Changed { part: false, reasons: None }
        );
        let c = p.pause("deid", PauseReason::OutboxQuota);
        assert_eq!(c.reasons, Some(vec![PauseReason::DiskFull, PauseReason::OutboxQuota]));
        assert_eq!(p.resume("ingest").reasons, Some(vec![PauseReason::OutboxQuota]));
        assert_eq!(p.resume("ingest"), Changed { part: false, reasons: None });
        assert_eq!(p.reason("deid"), Some(PauseReason::OutboxQuota));
        assert_eq!(p.resume("deid").reasons, Some(vec![]));
    }

    #[test]
    fn codes_round_trip_and_io_errors_are_classified() {
        for r in PauseReason::ALL {
            assert_eq!(PauseReason::parse(r.code()), Some(r));
            assert!(r.refusal().ends_with(r.code()));
        }
        assert!(io_is_full(&std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32)));
        assert!(io_is_full(&std::io::Error::from_raw_os_error(nix::errno::Errno::EDQUOT as i32)));
        assert!(!io_is_full(&std::io::Error::from_raw_os_error(nix::errno::Errno::EIO as i32)));
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * MIB + MIB / 2), "3.5 MiB");
    }
}
