//! The schema and its migrations: opening a database brings it to the newest version.

use super::StateError;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

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
    // v3: dedupe by instance and content (a second object under the same SOP Instance UID with
    // other bytes is no longer dropped: it is kept, quarantined as a conflict). Rows from v2
    // have an empty digest (content unknown). `raw_purged_at`: when the retention purge
    // deleted an item's raw data. `audit`: operator actions on raw data (ids, reason codes,
    // counts), never values.
    "CREATE TABLE dicom_instances_v3 (
        key TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        item TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (key, content_sha256)
    );
    INSERT INTO dicom_instances_v3 (key, content_sha256, item, created_at)
        SELECT key, '', item, created_at FROM dicom_instances;
    DROP TABLE dicom_instances;
    ALTER TABLE dicom_instances_v3 RENAME TO dicom_instances;
    ALTER TABLE items ADD COLUMN raw_purged_at TEXT;
    CREATE TABLE audit (
        at TEXT NOT NULL,
        action TEXT NOT NULL,
        items INTEGER NOT NULL,
        detail TEXT NOT NULL
    );",
    // v4: upload lanes (issue 11). `current` items (today's work) go before `backlog` ones
    // (history: DICOM pull catch-up, old exports); rows from before are current.
    "ALTER TABLE items ADD COLUMN lane TEXT NOT NULL DEFAULT 'current' CHECK (lane IN ('current','backlog'));",
];

/// Owner read/write only: the database holds local locators and keyed pseudonyms.
const DB_MODE: u32 = 0o600;

/// Makes the database file, and its `-wal` and `-shm` companions if present, owner-only.
/// SQLite creates the companions with the database file's mode, so a new file is created
/// 0600 before SQLite opens it, and existing ones (older boxes) are tightened.
fn restrict(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let perm = |p: &Path, source| StateError::Permissions { path: p.to_path_buf(), source };
    if let Err(e) =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(DB_MODE).open(path)
    {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(perm(path, e));
        }
    }
    for p in with_companions(path) {
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o777 != DB_MODE => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(DB_MODE))
                    .map_err(|e| perm(&p, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(perm(&p, e)),
        }
    }
    Ok(())
}

/// The database file and its WAL-mode companions.
pub(super) fn with_companions(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

/// Open the connection, set its pragmas and run the migrations it has not seen.
pub(super) fn open(path: &Path) -> Result<Connection, StateError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    restrict(path)?;
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
    // The -wal and -shm files exist now; an older box may have made them world-readable.
    restrict(path)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// A database in memory, gone with the process (`gateway deid` with an ephemeral key: there
/// is no box whose state it could join).
pub(super) fn open_in_memory() -> Result<Connection, StateError> {
    let path = Path::new(":memory:");
    let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
    let mut conn = Connection::open_in_memory().map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Runs the migrations `conn` has not seen; `path` names it in errors.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open { path: path.to_path_buf(), source };
    let current: i64 =
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
    if current == MIGRATIONS.len() as i64 {
        return Ok(());
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn database_and_its_wal_files_are_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state.sqlite");
        let conn = open(&path).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", []).unwrap();
        for p in with_companions(&path) {
            assert!(p.exists(), "{} (WAL mode keeps it while open)", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(conn);
        // A database an older gateway left world-readable is tightened on open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _conn = open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
