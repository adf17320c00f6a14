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

use fgw_format::ids::QueueId;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use fgw_format::durable::fsync_dir;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("state database: {op}: {source}")]
    Sql { op: &'static str, source: rusqlite::Error },
    #[error("item {id}: expected state {expected}, found {found}")]
    WrongState { id: QueueId, expected: &'static str, found: String },
    #[error("item {id} not found")]
    NotFound { id: QueueId },
    #[error(
        "state database {path} has schema version {found}, newer than this gateway ({supported})"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Received,
    Normalized,
    Deidentified,
    Acked,
    Quarantined,
    Superseded,
}

impl ItemState {
    pub const ALL: [ItemState; 6] = [
        ItemState::Received,
        ItemState::Normalized,
        ItemState::Deidentified,
        ItemState::Acked,
        ItemState::Quarantined,
        ItemState::Superseded,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Received => "received",
            ItemState::Normalized => "normalized",
            ItemState::Deidentified => "deidentified",
            ItemState::Acked => "acked",
            ItemState::Quarantined => "quarantined",
            ItemState::Superseded => "superseded",
        }
    }
    fn parse(s: &str) -> Option<ItemState> {
        ItemState::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, ItemState::Acked | ItemState::Quarantined | ItemState::Superseded)
    }
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// One exam row with its images and report.
    Exam,
    /// A row of exams.csv that could not be read.
    Row,
    /// One image withheld from an exam's package.
    Image,
    /// A DICOM file.
    Dicom,
    /// A report received over HL7 (joined to its exam at the hub).
    Report,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Exam => "exam",
            ItemKind::Row => "row",
            ItemKind::Image => "image",
            ItemKind::Dicom => "dicom",
            ItemKind::Report => "report",
        }
    }
    fn parse(s: &str) -> ItemKind {
        match s {
            "row" => ItemKind::Row,
            "image" => ItemKind::Image,
            "dicom" => ItemKind::Dicom,
            "report" => ItemKind::Report,
            _ => ItemKind::Exam,
        }
    }
}

/// Where an item was accepted: by the daemon, or by a one-shot `gateway deid` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Daemon,
    Offline,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Daemon => "daemon",
            Origin::Offline => "offline",
        }
    }
}

/// One row of the items table. `source` is a local locator (batch, file, row; for offline
/// runs an input path): shown by `gateway quarantine show`, never reported or uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: QueueId,
    pub kind: ItemKind,
    pub origin: Origin,
    pub source: String,
    pub batch: Option<String>,
    pub row_no: Option<u64>,
    pub exam_key: Option<String>,
    pub revision: u32,
    pub parent: Option<QueueId>,
    pub image_index: Option<u32>,
    pub state: ItemState,
    pub package_id: Option<String>,
    pub reason: Option<String>,
    pub images_in: u32,
    pub images_withheld: u32,
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
}

/// A new item to record.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: QueueId,
    pub kind: ItemKind,
    pub origin: Origin,
    pub source: String,
    pub batch: Option<String>,
    pub row_no: Option<u64>,
    pub parent: Option<QueueId>,
    pub image_index: Option<u32>,
    pub images_in: u32,
    pub state: ItemState,
    pub reason: Option<String>,
}

impl NewItem {
    /// An item accepted straight into quarantine (unreadable row, withheld image, …).
    pub fn quarantined(
        kind: ItemKind,
        origin: Origin,
        source: impl Into<String>,
        reason: String,
    ) -> NewItem {
        NewItem {
            state: ItemState::Quarantined,
            reason: Some(reason),
            ..NewItem::new(kind, origin, source)
        }
    }

    pub fn new(kind: ItemKind, origin: Origin, source: impl Into<String>) -> NewItem {
        NewItem {
            id: QueueId::random(),
            kind,
            origin,
            source: source.into(),
            batch: None,
            row_no: None,
            parent: None,
            image_index: None,
            images_in: 0,
            state: ItemState::Received,
            reason: None,
        }
    }
}

const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE items (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        origin TEXT NOT NULL,
        source TEXT NOT NULL,
        batch TEXT,
        row_no INTEGER,
        exam_key TEXT,
        revision INTEGER NOT NULL DEFAULT 1,
        parent TEXT REFERENCES items(id),
        image_index INTEGER,
        state TEXT NOT NULL CHECK (state IN ('received','normalized','deidentified','acked','quarantined','superseded')),
        package_id TEXT,
        reason TEXT,
        images_in INTEGER NOT NULL DEFAULT 0,
        images_withheld INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX items_state ON items(state);
    CREATE INDEX items_exam_key ON items(exam_key);
    CREATE UNIQUE INDEX items_daemon_row ON items(batch, row_no, kind) WHERE origin = 'daemon' AND kind IN ('exam','row');
    CREATE TABLE batches (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('ingesting','ingested','finished')),
        rows INTEGER NOT NULL DEFAULT 0,
        row_errors INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // v2: DICOM. `dicom_instances` makes a re-sent object (a C-MOVE retried after a crash, a
    // modality sending twice) a no-op; its key is the keyed pseudonym of the SOP Instance
    // UID, never the UID itself. `dicom_pull` is the pull watermark per archive (last date
    // whose studies were all retrieved); `dicom_pull_studies` the studies already moved in
    // windows not yet complete, so a retried window or today's re-query skips them.
    "CREATE TABLE dicom_instances (
        key TEXT PRIMARY KEY,
        item TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE dicom_pull (
        archive TEXT PRIMARY KEY,
        start_date TEXT NOT NULL,
        watermark TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE dicom_pull_studies (
        archive TEXT NOT NULL,
        study_key TEXT NOT NULL,
        study_date TEXT NOT NULL,
        instances INTEGER,
        moved_at TEXT NOT NULL,
        PRIMARY KEY (archive, study_key)
    );",
];

pub use fgw_ingest::dicom_pull::PullMark;

/// The pull loop's watermark store is this database.
impl fgw_ingest::dicom_pull::PullStore for Db {
    fn pull_mark(&self, archive: &str) -> Result<Option<PullMark>, PullStoreError> {
        Db::pull_mark(self, archive).map_err(pull_store_error)
    }
    fn set_pull_mark(&self, archive: &str, mark: PullMark) -> Result<(), PullStoreError> {
        Db::set_pull_mark(self, archive, mark).map_err(pull_store_error)
    }
    fn pulled_study(
        &self,
        archive: &str,
        study_key: &str,
    ) -> Result<Option<Option<u32>>, PullStoreError> {
        Db::pulled_study(self, archive, study_key).map_err(pull_store_error)
    }
    fn record_pulled_study(
        &self,
        archive: &str,
        study_key: &str,
        study_date: NaiveDate,
        instances: Option<u32>,
    ) -> Result<(), PullStoreError> {
        Db::record_pulled_study(self, archive, study_key, study_date, instances)
            .map_err(pull_store_error)
    }
}

use fgw_ingest::dicom_pull::StoreError as PullStoreError;

fn pull_store_error(e: StateError) -> PullStoreError {
    PullStoreError(Box::new(e))
}

fn parse_date(s: String) -> rusqlite::Result<NaiveDate> {
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Handle to the state database; cheap to clone, safe to share between stages.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Sql { op, source }
}

impl Db {
    pub fn open(path: &Path) -> Result<Db, StateError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // Busy timeout first: the daemon and operator commands share the file.
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
        // Switching the journal mode needs an exclusive lock; only do it on a new database.
        let mode: String =
            conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        let current: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
        if current == MIGRATIONS.len() as i64 {
            return Ok(Db { conn: Arc::new(Mutex::new(conn)) });
        }
        // Migrate under the write lock (BEGIN IMMEDIATE) and read the version inside it: the
        // daemon and an operator command may open a new database at the same moment.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(open_err)?;
        let version: i64 =
            tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StateError::TooNew { path: path.to_path_buf(), found: version, supported });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m).map_err(open_err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(open_err)?;
        }
        tx.commit().map_err(open_err)?;
        Ok(Db { conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    pub fn insert(&self, item: &NewItem) -> Result<(), StateError> {
        self.with(|c| insert_tx(c, item))
    }

    /// Was this row of this batch already accepted by the daemon (resume after a crash
    /// in the middle of ingesting a batch)?
    pub fn row_seen(&self, batch: &str, row_no: u64) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM items WHERE origin='daemon' AND batch=?1 AND row_no=?2 AND kind IN ('exam','row')",
                params![batch, row_no as i64],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("row seen"))
        })
    }

    pub fn get(&self, id: &QueueId) -> Result<Item, StateError> {
        self.with(|c| {
            c.query_row("SELECT * FROM items WHERE id = ?1", params![id.as_str()], row_to_item)
                .optional()
                .map_err(sql("get item"))?
                .ok_or_else(|| StateError::NotFound { id: id.clone() })
        })
    }

    pub fn ids_in_state(
        &self,
        state: ItemState,
        kind: ItemKind,
    ) -> Result<Vec<QueueId>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT id FROM items WHERE state = ?1 AND kind = ?2 AND origin = 'daemon' ORDER BY created_at, id")
                .map_err(sql("list by state"))?;
            let rows = st
                .query_map(params![state.as_str(), kind.as_str()], |r| r.get::<_, String>(0))
                .map_err(sql("list by state"))?;
            Ok(rows.filter_map(|r| r.ok()).filter_map(|s| QueueId::new(s).ok()).collect())
        })
    }

    /// Move an item from `from` to `to` in one transaction; `set` adds column updates.
    pub fn transition(
        &self,
        id: &QueueId,
        from: ItemState,
        to: ItemState,
        set: Update,
    ) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            transition_tx(&tx, id, from, to, &set)?;
            tx.commit().map_err(sql("commit"))
        })
    }

    /// Normalization: give the exam its key and revision, and supersede any older export of
    /// the same exam that has not been uploaded yet, all in one transaction.
    pub fn normalize(&self, id: &QueueId, exam_key: &str) -> Result<u32, StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let revision: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(revision), 0) + 1 FROM items WHERE exam_key = ?1 AND id != ?2 AND kind = 'exam'",
                    params![exam_key, id.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql("revision"))?;
            tx.execute(
                "UPDATE items SET state = 'superseded', reason = 'superseded-by-re-export', updated_at = ?2
                 WHERE exam_key = ?1 AND kind = 'exam' AND state IN ('received','normalized','deidentified')",
                params![exam_key, now()],
            )
            .map_err(sql("supersede"))?;
            transition_tx(
                &tx,
                id,
                ItemState::Received,
                ItemState::Normalized,
                &Update { exam_key: Some(exam_key.to_string()), revision: Some(revision), ..Default::default() },
            )?;
            tx.commit().map_err(sql("commit"))?;
            Ok(revision)
        })
    }

    pub fn bump_attempts(&self, id: &QueueId) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE items SET attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
                params![id.as_str(), now()],
            )
            .map_err(sql("attempts"))?;
            Ok(())
        })
    }

    pub fn counts(&self, origin: Origin) -> Result<BTreeMap<ItemState, u64>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT state, COUNT(*) FROM items WHERE origin = ?1 GROUP BY state")
                .map_err(sql("counts"))?;
            let rows = st
                .query_map(params![origin.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(sql("counts"))?;
            let mut out: BTreeMap<ItemState, u64> =
                ItemState::ALL.iter().map(|s| (*s, 0)).collect();
            for (s, n) in rows.flatten() {
                if let Some(s) = ItemState::parse(&s) {
                    out.insert(s, n as u64);
                }
            }
            Ok(out)
        })
    }

    pub fn quarantined(&self) -> Result<Vec<Item>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT * FROM items WHERE state = 'quarantined' ORDER BY created_at, id")
                .map_err(sql("quarantine list"))?;
            let rows = st.query_map([], row_to_item).map_err(sql("quarantine list"))?;
            Ok(rows.filter_map(Result::ok).collect())
        })
    }

    pub fn batch_state(&self, name: &str) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_row("SELECT state FROM batches WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(sql("batch state"))
        })
    }

    pub fn set_batch(
        &self,
        name: &str,
        state: &str,
        rows: u64,
        row_errors: u64,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO batches (name, state, rows, row_errors, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state, rows = excluded.rows,
                   row_errors = excluded.row_errors, updated_at = excluded.updated_at",
                params![name, state, rows as i64, row_errors as i64, now()],
            )
            .map_err(sql("set batch"))?;
            Ok(())
        })
    }

    /// Batches that are fully ingested and whose items are all in a terminal state.
    pub fn finished_batches(&self) -> Result<Vec<String>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT name FROM batches b WHERE state = 'ingested' AND NOT EXISTS
                       (SELECT 1 FROM items i WHERE i.batch = b.name AND i.origin = 'daemon'
                          AND i.state IN ('received','normalized','deidentified'))",
                )
                .map_err(sql("finished batches"))?;
            let rows =
                st.query_map([], |r| r.get::<_, String>(0)).map_err(sql("finished batches"))?;
            Ok(rows.filter_map(Result::ok).collect())
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(sql("set meta"))?;
            Ok(())
        })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
                .optional()
                .map_err(sql("get meta"))
        })
    }

    /// Whether a DICOM object with this instance key was already accepted.
    pub fn dicom_seen(&self, instance_key: &str) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM dicom_instances WHERE key = ?1",
                params![instance_key],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(sql("dicom instance seen"))
        })
    }

    /// Records a received DICOM object's item and its instance key in one transaction.
    /// Returns false, inserting nothing, when the key is already there (a duplicate that
    /// raced past [`Db::dicom_seen`]).
    pub fn insert_dicom(&self, item: &NewItem, instance_key: &str) -> Result<bool, StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let new = tx
                .execute(
                    "INSERT OR IGNORE INTO dicom_instances (key, item, created_at) VALUES (?1, ?2, ?3)",
                    params![instance_key, item.id.as_str(), now()],
                )
                .map_err(sql("insert dicom instance"))?;
            if new == 0 {
                return Ok(false);
            }
            insert_tx(&tx, item)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(true)
        })
    }

    pub fn pull_mark(&self, archive: &str) -> Result<Option<PullMark>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT start_date, watermark FROM dicom_pull WHERE archive = ?1",
                params![archive],
                |r| {
                    let start = parse_date(r.get(0)?)?;
                    let watermark = r.get::<_, Option<String>>(1)?.map(parse_date).transpose()?;
                    Ok(PullMark { start, watermark })
                },
            )
            .optional()
            .map_err(sql("get pull watermark"))
        })
    }

    /// Sets the pull watermark and forgets the moved studies it now covers, in one
    /// transaction.
    pub fn set_pull_mark(&self, archive: &str, mark: PullMark) -> Result<(), StateError> {
        let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            tx.execute(
                "INSERT INTO dicom_pull (archive, start_date, watermark, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(archive) DO UPDATE SET start_date = excluded.start_date,
                    watermark = excluded.watermark, updated_at = excluded.updated_at",
                params![archive, day(mark.start), mark.watermark.map(day), now()],
            )
            .map_err(sql("set pull watermark"))?;
            if let Some(w) = mark.watermark {
                tx.execute(
                    "DELETE FROM dicom_pull_studies WHERE archive = ?1 AND study_date <= ?2",
                    params![archive, day(w)],
                )
                .map_err(sql("prune pulled studies"))?;
            }
            tx.commit().map_err(sql("commit"))?;
            Ok(())
        })
    }

    /// `Some(instances)` (the count recorded when it was moved, if the archive gave one) for
    /// a study already moved and not yet under the watermark; `None` if not moved.
    pub fn pulled_study(
        &self,
        archive: &str,
        study_key: &str,
    ) -> Result<Option<Option<u32>>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT instances FROM dicom_pull_studies WHERE archive = ?1 AND study_key = ?2",
                params![archive, study_key],
                |r| r.get::<_, Option<u32>>(0),
            )
            .optional()
            .map_err(sql("get pulled study"))
        })
    }

    pub fn record_pulled_study(
        &self,
        archive: &str,
        study_key: &str,
        study_date: NaiveDate,
        instances: Option<u32>,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO dicom_pull_studies (archive, study_key, study_date, instances, moved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(archive, study_key) DO UPDATE SET study_date = excluded.study_date,
                    instances = excluded.instances, moved_at = excluded.moved_at",
                params![archive, study_key, study_date.format("%Y-%m-%d").to_string(), instances, now()],
            )
            .map_err(sql("record pulled study"))?;
            Ok(())
        })
    }
}

/// Optional column updates that travel with a transition.
#[derive(Debug, Default, Clone)]
pub struct Update {
    pub exam_key: Option<String>,
    pub revision: Option<u32>,
    pub package_id: Option<String>,
    pub reason: Option<String>,
    pub images_withheld: Option<u32>,
}

fn insert_tx(c: &Connection, item: &NewItem) -> Result<(), StateError> {
    let t = now();
    c.execute(
        "INSERT INTO items (id, kind, origin, source, batch, row_no, parent, image_index,
                    images_in, state, reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        params![
            item.id.as_str(),
            item.kind.as_str(),
            item.origin.as_str(),
            item.source,
            item.batch,
            item.row_no.map(|r| r as i64),
            item.parent.as_ref().map(|p| p.as_str().to_string()),
            item.image_index,
            item.images_in,
            item.state.as_str(),
            item.reason,
            t
        ],
    )
    .map_err(sql("insert item"))?;
    Ok(())
}

fn transition_tx(
    tx: &rusqlite::Transaction<'_>,
    id: &QueueId,
    from: ItemState,
    to: ItemState,
    set: &Update,
) -> Result<(), StateError> {
    let found: Option<String> = tx
        .query_row("SELECT state FROM items WHERE id = ?1", params![id.as_str()], |r| r.get(0))
        .optional()
        .map_err(sql("read state"))?;
    match found {
        None => return Err(StateError::NotFound { id: id.clone() }),
        Some(f) if f != from.as_str() => {
            return Err(StateError::WrongState {
                id: id.clone(),
                expected: from.as_str(),
                found: f,
            })
        }
        _ => {}
    }
    tx.execute(
        "UPDATE items SET state = ?2, updated_at = ?3,
            exam_key = COALESCE(?4, exam_key), revision = COALESCE(?5, revision),
            package_id = COALESCE(?6, package_id), reason = COALESCE(?7, reason),
            images_withheld = COALESCE(?8, images_withheld)
         WHERE id = ?1",
        params![
            id.as_str(),
            to.as_str(),
            now(),
            set.exam_key,
            set.revision,
            set.package_id,
            set.reason,
            set.images_withheld
        ],
    )
    .map_err(sql("transition"))?;
    Ok(())
}

fn row_to_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let id: String = r.get("id")?;
    let parent: Option<String> = r.get("parent")?;
    let state: String = r.get("state")?;
    Ok(Item {
        id: QueueId::new(id).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
        kind: ItemKind::parse(&r.get::<_, String>("kind")?),
        origin: if r.get::<_, String>("origin")? == "offline" {
            Origin::Offline
        } else {
            Origin::Daemon
        },
        source: r.get("source")?,
        batch: r.get("batch")?,
        row_no: r.get::<_, Option<i64>>("row_no")?.map(|v| v as u64),
        exam_key: r.get("exam_key")?,
        revision: r.get("revision")?,
        parent: parent.and_then(|p| QueueId::new(p).ok()),
        image_index: r.get("image_index")?,
        state: ItemState::parse(&state).unwrap_or(ItemState::Quarantined),
        package_id: r.get("package_id")?,
        reason: r.get("reason")?,
        images_in: r.get("images_in")?,
        images_withheld: r.get("images_withheld")?,
        attempts: r.get("attempts")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_guarded_and_reexports_supersede() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let mut a = NewItem::new(ItemKind::Exam, Origin::Daemon, "b1/exams.csv row 1");
        a.batch = Some("b1".into());
        a.row_no = Some(1);
        db.insert(&a).unwrap();
        assert_eq!(db.normalize(&a.id, "e-1").unwrap(), 1);
        // Wrong expected state is refused.
        assert!(matches!(
            db.transition(&a.id, ItemState::Received, ItemState::Normalized, Update::default()),
            Err(StateError::WrongState { .. })
        ));
        let mut b = NewItem::new(ItemKind::Exam, Origin::Daemon, "b2/exams.csv row 1");
        b.batch = Some("b2".into());
        b.row_no = Some(1);
        db.insert(&b).unwrap();
        assert_eq!(db.normalize(&b.id, "e-1").unwrap(), 2);
        assert_eq!(db.get(&a.id).unwrap().state, ItemState::Superseded);
        assert_eq!(db.get(&b.id).unwrap().state, ItemState::Normalized);
        assert!(db.row_seen("b1", 1).unwrap());
        assert!(!db.row_seen("b1", 2).unwrap());
        // Reopening keeps data and does not re-run migrations.
        drop(db);
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        assert_eq!(db.counts(Origin::Daemon).unwrap()[&ItemState::Superseded], 1);
    }

    #[test]
    fn dicom_dedupe_and_pull_watermark() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let a = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert!(!db.dicom_seen("2.25.1").unwrap());
        assert!(db.insert_dicom(&a, "2.25.1").unwrap());
        assert!(db.dicom_seen("2.25.1").unwrap());
        let b = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert!(!db.insert_dicom(&b, "2.25.1").unwrap(), "same instance twice");
        assert!(matches!(db.get(&b.id), Err(StateError::NotFound { .. })));

        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(db.pull_mark("PACS").unwrap(), None);
        let start = PullMark { start: day("2024-01-01"), watermark: None };
        db.set_pull_mark("PACS", start).unwrap();
        db.record_pulled_study("PACS", "k1", day("2024-01-01"), Some(3)).unwrap();
        db.record_pulled_study("PACS", "k2", day("2024-01-02"), None).unwrap();
        assert_eq!(db.pulled_study("PACS", "k1").unwrap(), Some(Some(3)));
        assert_eq!(db.pulled_study("PACS", "k2").unwrap(), Some(None));
        assert_eq!(db.pulled_study("OTHER", "k1").unwrap(), None);
        let mark = PullMark { watermark: Some(day("2024-01-01")), ..start };
        db.set_pull_mark("PACS", mark).unwrap();
        // Studies under the watermark are forgotten; later ones stay.
        assert_eq!(db.pulled_study("PACS", "k1").unwrap(), None);
        assert_eq!(db.pulled_study("PACS", "k2").unwrap(), Some(None));
        drop(db);
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        assert_eq!(db.pull_mark("PACS").unwrap(), Some(mark));
        assert_eq!(db.pull_mark("OTHER").unwrap(), None);
    }
}
