//! The gateway's state: one SQLite database (WAL) with an explicit state machine per item.
//!
//! ```text
//! received ──▶ normalized ──▶ deidentified ──▶ acked
//!     │             │               │
//!     └─────────────┴───────────────┴──▶ quarantined (reason)      superseded (re-exported)
//! ```
//!
//! Every transition is one transaction guarded by the expected current state, so a stage
//! that lost a race (or a restart that replays work) cannot move an item twice.
//!
//! `PRAGMA synchronous = FULL`: WAL with NORMAL may lose the last commits on power loss. We
//! delete raw data right after committing `acked`; if that commit could roll back, the box
//! would believe a package is pending whose outbox copy is gone. FULL costs one fsync per
//! commit, a few milliseconds at a few hundred exams a day.
//!
//! Columns holding a closed set of values (states, kinds, origins, meta keys, reasons) are
//! read into enums; a value this gateway does not know is [`StateError::Corrupt`], never a
//! default.

mod audit;
mod batches;
mod dicom;
mod items;
mod meta;
mod quarantine;
mod reason;
mod row;
mod schema;
mod values;

pub use audit::{AuditAction, AuditEntry};
pub use batches::BatchLabel;
pub use dicom::{dicom_content_digest, DicomInsert, DicomSeen};
pub use fgw_ingest::dicom_pull::PullMark;
pub use items::{Item, NewItem, Update};
pub use quarantine::{PurgeCandidate, PurgeReport, Redrive, RedriveReport};
pub use reason::{ItemReason, RedriveTo};
pub use values::{BatchState, ExamKey, ItemKind, ItemState, Lane, MetaKey, Origin};

use fgw_format::ids::QueueId;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a state database operation failed. Context names paths, tables, columns and row ids,
/// never a stored value.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database file could not be opened or migrated.
    #[error("state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database file's permissions could not be set to owner-only.
    #[error("state database {path}: cannot make it owner-only (0600): {source}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A statement failed.
    #[error("state database: {op}: {source}")]
    Sql {
        /// What was being done.
        op: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored value this gateway cannot read (unknown enum text, malformed id or date).
    #[error("state database: table {table}, row {rowid}: column {column} holds a value this gateway does not know")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// SQLite's rowid of the row.
        rowid: i64,
    },
    /// A transition found the item in another state than expected (a lost race, a replay).
    #[error("item {id}: expected state {expected}, found {found}")]
    WrongState {
        /// The item.
        id: QueueId,
        /// The state the transition starts from.
        expected: ItemState,
        /// The state the item is in.
        found: ItemState,
    },
    /// No item with this id.
    #[error("item {id} not found")]
    NotFound {
        /// The item looked for.
        id: QueueId,
    },
    /// The database was migrated by a newer gateway.
    #[error(
        "state database {path} has schema version {found}, newer than this gateway ({supported})"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this gateway knows.
        supported: i64,
    },
}

impl StateError {
    /// Whether SQLite found no room for the write (SQLITE_FULL): the disk is full, and the
    /// same statement may succeed once space returns.
    pub fn is_disk_full(&self) -> bool {
        let source = match self {
            StateError::Open { source, .. } | StateError::Sql { source, .. } => source,
            _ => return false,
        };
        matches!(
            source,
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// Handle to the state database; cheap to clone, safe to share between stages.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Open (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, StateError> {
        let conn = schema::open(path)?;
        Ok(Db { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Copy the write-ahead log into the database file and truncate the log. SQLite does
    /// this by itself once the log reaches 1000 pages (about 4 MiB); on a disk that fills
    /// up first the log could never get there, and every write would fail for good.
    /// Returns whether the log was truncated (not when a reader held it).
    pub fn checkpoint(&self) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
                .map(|busy| busy == 0)
                .map_err(sql("checkpoint"))
        })
    }

    /// A database in memory only, gone with the process.
    pub fn in_memory() -> Result<Db, StateError> {
        let conn = schema::open_in_memory()?;
        Ok(Db { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Whether the database at `path` holds anything made with the box's key (items, DICOM
    /// instance keys, pulled studies), without creating or migrating it: `Some(table)` names
    /// the first table found with rows. A missing file holds nothing.
    pub fn holds_keyed_data(path: &Path) -> Result<Option<&'static str>, StateError> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            return Ok(None);
        }
        let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(open_err)?;
        c.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
        for table in ["items", "dicom_instances", "dicom_pull_studies"] {
            let exists: bool = c
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                    [table],
                    |r| r.get(0),
                )
                .map_err(sql("probe state"))?;
            if !exists {
                continue;
            }
            let rows: bool = c
                .query_row(&format!("SELECT EXISTS(SELECT 1 FROM {table})"), [], |r| r.get(0))
                .map_err(sql("probe state"))?;
            if rows {
                return Ok(Some(table));
            }
        }
        Ok(None)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }
}

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Sql { op, source }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
