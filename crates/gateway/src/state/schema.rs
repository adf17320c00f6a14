//! The schema and its migrations: opening a database brings it to the newest version.

use super::StateError;
use rusqlite::Connection;
use std::path::Path;

/// One entry per schema version; `PRAGMA user_version` is the number applied. Never edit an
/// entry: boxes in the field have run it. Add a new one.
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

/// Open the connection, set its pragmas and run the migrations it has not seen.
pub(super) fn open(path: &Path) -> Result<Connection, StateError> {
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
        return Ok(conn);
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
    Ok(conn)
}
