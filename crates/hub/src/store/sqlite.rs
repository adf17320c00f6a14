//! Embedded metadata store: SQLite in WAL mode with `synchronous=FULL` (an acknowledged
//! package must survive a power cut: the gateway deletes its copy after the Ack).
//! Schema changes are numbered migrations tracked in `PRAGMA user_version`.
//!
//! Holds only manifest content (already de-identified) plus device / facility ids.

use super::{
    ChunkRecord, CredentialKind, CredentialRecord, DayCount, DeviceRecord, DeviceUploads,
    Enrollment, ExpiredUploads, ExportRecord, FacilityCounts, MetaStore, NewRollout, NewSerial,
    Opened, ReleaseRecord, Result, Revocation, RolloutRecord, RolloutState, SerialAdded,
    SerialRecord, SerialStatus, SessionRecord, StoreError, TunnelRecord, UploadAdmission,
    UploadRecord, UploadState,
};
use crate::dashboard::OperatorName;
use crate::enroll::Serial;
use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{DicomListing, ExamListing, FleetRow, Heartbeat, Stored};
use fgw_format::package::{Body, Manifest};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    fingerprint   TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL,
    facility_id   TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('device', 'operator')),
    registered_at TEXT NOT NULL
);
CREATE INDEX devices_by_device ON devices (device_id);

CREATE TABLE packages (
    package_id      TEXT PRIMARY KEY,
    facility_id     TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('exam', 'report')),
    exam_pid        TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    files           INTEGER NOT NULL,
    images_withheld INTEGER NOT NULL,
    received_at     TEXT NOT NULL,
    manifest        TEXT NOT NULL
);
CREATE INDEX packages_by_exam ON packages (facility_id, exam_pid);

-- The current package of each exam: highest revision, later arrival on ties.
CREATE TABLE exams (
    facility_id TEXT NOT NULL,
    exam_pid    TEXT NOT NULL,
    package_id  TEXT NOT NULL REFERENCES packages (package_id),
    revision    INTEGER NOT NULL,
    PRIMARY KEY (facility_id, exam_pid)
);
"#,
    r#"
-- DICOM objects, one package each. A re-sent instance with other bytes (a policy change)
-- replaces the earlier row: latest wins, the older package stays in the object store.
CREATE TABLE dicom_objects (
    package_id       TEXT PRIMARY KEY,
    facility_id      TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    study_uid        TEXT NOT NULL,
    series_uid       TEXT,
    sop_instance_uid TEXT NOT NULL,
    sop_class        TEXT NOT NULL,
    exam_pid         TEXT,
    patient_pid      TEXT,
    received_at      TEXT NOT NULL,
    manifest         TEXT NOT NULL,
    UNIQUE (facility_id, sop_instance_uid)
);
CREATE INDEX dicom_by_study ON dicom_objects (facility_id, study_uid);
CREATE INDEX dicom_by_exam ON dicom_objects (facility_id, exam_pid);
"#,
    r#"
-- Issue 10. The objects each facility holds: the blob store is shared and content-addressed,
-- this table is the per-facility namespace (HEAD, manifest references, quota, GC).
CREATE TABLE held_objects (
    facility_id  TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    held_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (facility_id, sha256)
);
CREATE INDEX held_objects_by_sha ON held_objects (sha256);

-- The files of every stored manifest (what garbage collection keeps).
CREATE TABLE package_files (
    package_id  TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (package_id, sha256)
);
CREATE INDEX package_files_by_object ON package_files (facility_id, sha256);

INSERT OR IGNORE INTO package_files (package_id, facility_id, sha256)
    SELECT p.package_id, p.facility_id, json_extract(f.value, '$.sha256')
    FROM packages p, json_each(p.manifest, '$.files') f;
INSERT OR IGNORE INTO package_files (package_id, facility_id, sha256)
    SELECT d.package_id, d.facility_id, json_extract(f.value, '$.sha256')
    FROM dicom_objects d, json_each(d.manifest, '$.files') f;
-- Objects of packages accepted before this migration belong to the package's facility.
INSERT OR IGNORE INTO held_objects (facility_id, sha256, size, held_at_ms)
    SELECT p.facility_id, json_extract(f.value, '$.sha256'), json_extract(f.value, '$.size'),
           CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM (SELECT facility_id, manifest FROM packages
          UNION ALL SELECT facility_id, manifest FROM dicom_objects) p,
         json_each(p.manifest, '$.files') f;

-- The revision the hub derives (ranking; see record_package). Earlier packages get the
-- manifest's revision capped at the number of packages of their exam.
ALTER TABLE packages ADD COLUMN hub_revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE exams ADD COLUMN hub_revision INTEGER NOT NULL DEFAULT 0;
UPDATE packages SET hub_revision = MIN(revision, (
    SELECT COUNT(*) FROM packages q
    WHERE q.kind = 'exam' AND q.facility_id = packages.facility_id
      AND q.exam_pid = packages.exam_pid))
WHERE kind = 'exam';
UPDATE exams SET hub_revision = (
    SELECT p.hub_revision FROM packages p WHERE p.package_id = exams.package_id);
"#,
    r#"
-- Issue 11. Chunked upload sessions: one row per open session (its id is derived from the
-- facility and the object, so one session per facility and object), one per chunk received.
-- The chunk bytes are in the object store.
CREATE TABLE upload_sessions (
    upload_id     TEXT PRIMARY KEY,
    facility_id   TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    chunk_bytes   INTEGER NOT NULL CHECK (chunk_bytes > 0),
    opened_by     TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    touched_at_ms INTEGER NOT NULL,
    UNIQUE (facility_id, sha256)
);
CREATE INDEX upload_sessions_by_touch ON upload_sessions (touched_at_ms);

CREATE TABLE upload_chunks (
    upload_id   TEXT NOT NULL REFERENCES upload_sessions (upload_id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL CHECK (chunk_index >= 0),
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    PRIMARY KEY (upload_id, chunk_index)
);

-- Sessions committed lately: a commit retried after its answer was lost is answered from
-- here. Kept as long as an open session would be.
CREATE TABLE upload_commits (
    upload_id       TEXT PRIMARY KEY,
    facility_id     TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    committed_at_ms INTEGER NOT NULL
);
CREATE INDEX upload_commits_by_time ON upload_commits (committed_at_ms);
"#,
    r#"
-- Issue 12. Boxes registered by `hub device add`: serial -> facility and status. Times are
-- RFC 3339 UTC with seconds ('...Z'), so they compare as text.
CREATE TABLE device_serials (
    serial                TEXT PRIMARY KEY,
    facility_id           TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('assigned', 'enrolled', 'revoked')),
    idevid_key_sha256     TEXT NOT NULL,
    idevid_cert           TEXT NOT NULL,
    added_at              TEXT NOT NULL,
    enrolled_at           TEXT,
    operational_not_after TEXT,
    revoked_at            TEXT
);
CREATE INDEX device_serials_by_facility ON device_serials (facility_id);

-- Every certificate issued to a registered box (its IDevID, its operational certificates),
-- by fingerprint: what a request's client certificate is looked up by.
CREATE TABLE device_credentials (
    fingerprint TEXT PRIMARY KEY,
    serial      TEXT NOT NULL REFERENCES device_serials (serial),
    kind        TEXT NOT NULL CHECK (kind IN ('idevid', 'operational')),
    not_after   TEXT NOT NULL,
    issued_at   TEXT NOT NULL
);
CREATE INDEX device_credentials_by_serial ON device_credentials (serial);
"#,
    r#"
-- Issue 12. Each box's WireGuard key and its host index n: its tunnel address is the hub's
-- plus n. An index is never given to two boxes, nor reused after a revocation.
CREATE TABLE device_tunnels (
    serial        TEXT PRIMARY KEY REFERENCES device_serials (serial),
    wg_public_key TEXT NOT NULL UNIQUE,
    host_index    INTEGER NOT NULL UNIQUE CHECK (host_index > 0),
    updated_at    TEXT NOT NULL
);
"#,
    r#"
-- Issue 13. The newest heartbeat of each device (checked codes and counts, as JSON).
CREATE TABLE device_heartbeats (
    device_id   TEXT PRIMARY KEY,
    facility_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    heartbeat   TEXT NOT NULL
);
"#,
    r#"
-- Issue 13. Published releases (the TUF targets, as recorded) and their rollouts.
CREATE TABLE releases (
    kind         TEXT NOT NULL,
    version      TEXT NOT NULL,
    target       TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    length       INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE rollouts (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    version      TEXT NOT NULL,
    previous     TEXT,
    waves        TEXT NOT NULL,
    state        TEXT NOT NULL,
    halt_percent INTEGER NOT NULL,
    halt_min     INTEGER NOT NULL,
    force        INTEGER NOT NULL,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    FOREIGN KEY (kind, version) REFERENCES releases (kind, version)
);
"#,
    r#"
-- Issue 13. The dashboard's operator accounts (Argon2id PHC strings) and their login
-- sessions, keyed by the SHA-256 of the session token (the token is only in the cookie).
CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    password   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE operator_sessions (
    token_sha256 TEXT PRIMARY KEY,
    operator     TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);
-- The dashboard's uploads per day.
CREATE INDEX packages_by_received ON packages (received_at);
CREATE INDEX dicom_by_received ON dicom_objects (received_at);
"#,
    r#"
-- Issue 15. The researchers' export access log: one row per `hub export`.
CREATE TABLE exports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    researcher  TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    date_from   TEXT NOT NULL,
    date_to     TEXT NOT NULL,
    format      TEXT NOT NULL,
    destination TEXT NOT NULL,
    rows        INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('complete', 'failed')),
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX exports_by_researcher ON exports (researcher);
"#,
];

fn now_ms() -> i64 {
    ms_of(std::time::SystemTime::now())
}

fn ms_of(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Sizes are stored in SQLite's signed integers; the config bounds them far below.
fn sql_size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The embedded [`MetaStore`]: one SQLite file (WAL, synchronous FULL).
pub struct SqliteMetaStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl SqliteMetaStore {
    /// The registry status of `serial`, `None` if it is not registered.
    fn serial_status(&self, conn: &Connection, serial: &Serial) -> Result<Option<SerialStatus>> {
        let status: Option<String> = conn
            .query_row(
                "SELECT status FROM device_serials WHERE serial = ?1",
                [serial.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        status
            .map(|s| SerialStatus::parse(&s).ok_or_else(|| self.corrupt("device_serials.status")))
            .transpose()
    }

    /// `serial` is registered and not revoked ([`StoreError::UnknownSerial`],
    /// [`StoreError::SerialRevoked`] otherwise).
    fn require_live_serial(&self, conn: &Connection, serial: &Serial) -> Result<()> {
        match self.serial_status(conn, serial)? {
            None => Err(StoreError::UnknownSerial { serial: serial.clone() }),
            Some(SerialStatus::Revoked) => {
                Err(StoreError::SerialRevoked { serial: serial.clone() })
            }
            Some(_) => Ok(()),
        }
    }

    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteMetaStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let sql = |source| StoreError::Sql { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        // `hub list` may read while `hub serve` writes; wait instead of failing at once.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        migrate(path, &mut conn)?;
        Ok(SqliteMetaStore { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql { path: self.path.clone(), source }
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what: what.to_string() }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// The open session `upload` of `facility`, inside `conn` (a transaction or not).
    fn session_row(
        &self,
        conn: &Connection,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadRecord>> {
        let row: Option<(String, i64, i64, String)> = conn
            .query_row(
                "SELECT sha256, size, chunk_bytes, opened_by FROM upload_sessions
                 WHERE upload_id = ?1 AND facility_id = ?2",
                params![upload.as_str(), facility.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((sha, size, chunk_bytes, opened_by)) = row else { return Ok(None) };
        Ok(Some(UploadRecord {
            upload_id: upload.clone(),
            facility: facility.clone(),
            sha256: Sha256Hex::new(sha).map_err(|_| self.corrupt("upload_sessions.sha256"))?,
            size: u64::try_from(size).map_err(|_| self.corrupt("upload_sessions.size"))?,
            chunk_bytes: u64::try_from(chunk_bytes)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| self.corrupt("upload_sessions.chunk_bytes"))?,
            opened_by: DeviceId::new(opened_by)
                .map_err(|_| self.corrupt("upload_sessions.opened_by"))?,
        }))
    }

    /// The chunks recorded for `upload`, by index.
    fn chunk_rows(&self, conn: &Connection, upload: &UploadId) -> Result<Vec<ChunkRecord>> {
        let sql = self.sql();
        let mut stmt = conn
            .prepare(
                "SELECT chunk_index, sha256, size FROM upload_chunks
                 WHERE upload_id = ?1 ORDER BY chunk_index",
            )
            .map_err(&sql)?;
        let rows = stmt
            .query_map([upload.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(&sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (index, sha, size) = row.map_err(&sql)?;
            out.push(ChunkRecord {
                index: u32::try_from(index)
                    .map_err(|_| self.corrupt("upload_chunks.chunk_index"))?,
                sha256: Sha256Hex::new(sha).map_err(|_| self.corrupt("upload_chunks.sha256"))?,
                size: u64::try_from(size).map_err(|_| self.corrupt("upload_chunks.size"))?,
            });
        }
        Ok(out)
    }
}

/// Delete a session and its chunk rows (explicitly: not every backend cascades).
fn delete_session(tx: &Connection, upload: &UploadId) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM upload_chunks WHERE upload_id = ?1", [upload.as_str()])?;
    tx.execute("DELETE FROM upload_sessions WHERE upload_id = ?1", [upload.as_str()])
}

fn migrate(path: &Path, conn: &mut Connection) -> Result<()> {
    let sql = |source| StoreError::Sql { path: path.to_path_buf(), source };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(sql)?;
        tx.execute_batch(step).map_err(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    Ok(())
}

impl MetaStore for SqliteMetaStore {
    fn register_device(
        &self,
        fingerprint: &Sha256Hex,
        device: &DeviceId,
        facility: &FacilityId,
        role: Role,
    ) -> Result<()> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let bound: Option<String> = tx
            .query_row(
                "SELECT facility_id FROM devices WHERE device_id = ?1 LIMIT 1",
                [device.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?;
        // A serial of `hub device add` is a device id too, bound to its facility.
        let bound = match bound {
            Some(f) => Some(f),
            None => tx
                .query_row(
                    "SELECT facility_id FROM device_serials WHERE serial = ?1",
                    [device.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&sql)?,
        };
        if let Some(registered) = bound {
            if registered != facility.as_str() {
                let registered =
                    FacilityId::new(registered).map_err(|_| self.corrupt("devices.facility_id"))?;
                return Err(StoreError::DeviceFacilityConflict {
                    device: device.clone(),
                    registered,
                    requested: facility.clone(),
                });
            }
        }
        let holder: Option<String> = tx
            .query_row(
                "SELECT device_id FROM devices WHERE fingerprint = ?1",
                [fingerprint.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?;
        match holder {
            Some(d) if d == device.as_str() => {
                tx.execute(
                    "UPDATE devices SET role = ?2 WHERE fingerprint = ?1",
                    params![fingerprint.as_str(), role.as_str()],
                )
                .map_err(&sql)?;
            }
            Some(d) => {
                let device = DeviceId::new(d).map_err(|_| self.corrupt("devices.device_id"))?;
                return Err(StoreError::FingerprintTaken {
                    fingerprint: fingerprint.clone(),
                    device,
                });
            }
            None => {
                tx.execute(
                    "INSERT INTO devices (fingerprint, device_id, facility_id, role, registered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        fingerprint.as_str(),
                        device.as_str(),
                        facility.as_str(),
                        role.as_str(),
                        now()
                    ],
                )
                .map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    fn device_by_fingerprint(&self, fingerprint: &Sha256Hex) -> Result<Option<DeviceRecord>> {
        let conn = self.lock()?;
        let row: Option<(String, String, String, String)> = conn
            .query_row(
                "SELECT device_id, facility_id, role, registered_at FROM devices
                 WHERE fingerprint = ?1",
                [fingerprint.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((device, facility, role, registered_at)) = row else {
            return Ok(None);
        };
        Ok(Some(DeviceRecord {
            fingerprint: fingerprint.clone(),
            device: DeviceId::new(device).map_err(|_| self.corrupt("devices.device_id"))?,
            facility: FacilityId::new(facility).map_err(|_| self.corrupt("devices.facility_id"))?,
            role: role.parse().map_err(|_| self.corrupt("devices.role"))?,
            registered_at,
        }))
    }

    fn add_serial(&self, new: &NewSerial) -> Result<SerialAdded> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let row: Option<(String, String, String, String)> = tx
            .query_row(
                "SELECT facility_id, status, idevid_key_sha256, idevid_cert FROM device_serials
                 WHERE serial = ?1",
                [new.serial.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(&sql)?;
        if let Some((facility, status, key, pem)) = row {
            let status = SerialStatus::parse(&status)
                .ok_or_else(|| self.corrupt("device_serials.status"))?;
            if status == SerialStatus::Revoked {
                return Err(StoreError::SerialRevoked { serial: new.serial.clone() });
            }
            if facility != new.facility.as_str() || key != new.idevid_key.as_str() {
                return Err(StoreError::SerialTaken { serial: new.serial.clone() });
            }
            return Ok(SerialAdded::Existing { idevid_pem: pem });
        }
        let bound: Option<String> = tx
            .query_row(
                "SELECT facility_id FROM devices WHERE device_id = ?1 LIMIT 1",
                [new.serial.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?;
        if let Some(registered) = bound.filter(|f| f != new.facility.as_str()) {
            return Err(StoreError::DeviceFacilityConflict {
                device: new.serial.device_id(),
                registered: FacilityId::new(registered)
                    .map_err(|_| self.corrupt("devices.facility_id"))?,
                requested: new.facility.clone(),
            });
        }
        let at = now();
        tx.execute(
            "INSERT INTO device_serials (serial, facility_id, status, idevid_key_sha256,
                                         idevid_cert, added_at)
             VALUES (?1, ?2, 'assigned', ?3, ?4, ?5)",
            params![
                new.serial.as_str(),
                new.facility.as_str(),
                new.idevid_key.as_str(),
                new.idevid_pem,
                at
            ],
        )
        .map_err(&sql)?;
        tx.execute(
            "INSERT INTO device_credentials (fingerprint, serial, kind, not_after, issued_at)
             VALUES (?1, ?2, 'idevid', ?3, ?4)",
            params![new.idevid_fingerprint.as_str(), new.serial.as_str(), new.idevid_not_after, at],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(SerialAdded::New)
    }

    fn serial(&self, serial: &Serial) -> Result<Option<SerialRecord>> {
        let conn = self.lock()?;
        type Row = (String, String, String, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = conn
            .query_row(
                "SELECT facility_id, status, added_at, enrolled_at, operational_not_after,
                        revoked_at
                 FROM device_serials WHERE serial = ?1",
                [serial.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((facility, status, added_at, enrolled_at, operational_not_after, revoked_at)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(SerialRecord {
            serial: serial.clone(),
            facility: FacilityId::new(facility)
                .map_err(|_| self.corrupt("device_serials.facility_id"))?,
            status: SerialStatus::parse(&status)
                .ok_or_else(|| self.corrupt("device_serials.status"))?,
            added_at,
            enrolled_at,
            operational_not_after,
            revoked_at,
        }))
    }

    fn credential_by_fingerprint(
        &self,
        fingerprint: &Sha256Hex,
    ) -> Result<Option<CredentialRecord>> {
        let conn = self.lock()?;
        let row: Option<(String, String, String, String)> = conn
            .query_row(
                "SELECT c.kind, c.serial, s.facility_id, s.status
                 FROM device_credentials c JOIN device_serials s ON s.serial = c.serial
                 WHERE c.fingerprint = ?1",
                [fingerprint.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((kind, serial, facility, status)) = row else { return Ok(None) };
        Ok(Some(CredentialRecord {
            fingerprint: fingerprint.clone(),
            kind: CredentialKind::parse(&kind)
                .ok_or_else(|| self.corrupt("device_credentials.kind"))?,
            serial: Serial::new(serial).map_err(|_| self.corrupt("device_credentials.serial"))?,
            facility: FacilityId::new(facility)
                .map_err(|_| self.corrupt("device_serials.facility_id"))?,
            status: SerialStatus::parse(&status)
                .ok_or_else(|| self.corrupt("device_serials.status"))?,
        }))
    }

    fn record_operational(
        &self,
        serial: &Serial,
        fingerprint: &Sha256Hex,
        not_after: &str,
        enrollment: Enrollment,
    ) -> Result<()> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        self.require_live_serial(&tx, serial)?;
        let at = now();
        // Expired operational certificates are refused by TLS already; their rows go.
        tx.execute(
            "DELETE FROM device_credentials
             WHERE serial = ?1 AND kind = 'operational' AND not_after < ?2",
            params![serial.as_str(), at],
        )
        .map_err(&sql)?;
        tx.execute(
            "INSERT INTO device_credentials (fingerprint, serial, kind, not_after, issued_at)
             VALUES (?1, ?2, 'operational', ?3, ?4)",
            params![fingerprint.as_str(), serial.as_str(), not_after, at],
        )
        .map_err(&sql)?;
        let enrolled_at = match enrollment {
            Enrollment::Initial => Some(at.as_str()),
            Enrollment::Renewal => None,
        };
        tx.execute(
            "UPDATE device_serials SET status = 'enrolled', operational_not_after = ?2,
                    enrolled_at = COALESCE(?3, enrolled_at)
             WHERE serial = ?1",
            params![serial.as_str(), not_after, enrolled_at],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    fn set_tunnel_key(&self, serial: &Serial, key: &str) -> Result<u32> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        self.require_live_serial(&tx, serial)?;
        let owner: Option<String> = tx
            .query_row("SELECT serial FROM device_tunnels WHERE wg_public_key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&sql)?;
        if owner.as_deref().is_some_and(|o| o != serial.as_str()) {
            return Err(StoreError::TunnelKeyTaken { serial: serial.clone() });
        }
        let existing: Option<i64> = tx
            .query_row(
                "SELECT host_index FROM device_tunnels WHERE serial = ?1",
                [serial.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?;
        let index = match existing {
            Some(i) => {
                tx.execute(
                    "UPDATE device_tunnels SET wg_public_key = ?2, updated_at = ?3
                     WHERE serial = ?1",
                    params![serial.as_str(), key, now()],
                )
                .map_err(&sql)?;
                i
            }
            None => {
                let next: i64 = tx
                    .query_row(
                        "SELECT COALESCE(MAX(host_index), 0) + 1 FROM device_tunnels",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(&sql)?;
                tx.execute(
                    "INSERT INTO device_tunnels (serial, wg_public_key, host_index, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![serial.as_str(), key, next, now()],
                )
                .map_err(&sql)?;
                next
            }
        };
        tx.commit().map_err(&sql)?;
        u32::try_from(index).map_err(|_| self.corrupt("device_tunnels.host_index"))
    }

    fn record_heartbeat(
        &self,
        device: &DeviceId,
        facility: &FacilityId,
        heartbeat: &Heartbeat,
    ) -> Result<String> {
        let received_at = now();
        let json = serde_json::to_string(heartbeat).map_err(|_| self.corrupt("heartbeat"))?;
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO device_heartbeats (device_id, facility_id, received_at, heartbeat)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device_id) DO UPDATE SET facility_id = ?2, received_at = ?3,
                                                   heartbeat = ?4",
            params![device.as_str(), facility.as_str(), received_at, json],
        )
        .map_err(self.sql())?;
        Ok(received_at)
    }

    fn record_release(&self, r: &ReleaseRecord) -> Result<()> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO releases (kind, version, target, sha256, length, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kind, version) DO NOTHING",
            params![r.kind, r.version, r.target, r.sha256, sql_size(r.length), r.published_at],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    fn releases(&self) -> Result<Vec<ReleaseRecord>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT kind, version, target, sha256, length, published_at FROM releases
                 ORDER BY published_at, kind, version",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ReleaseRecord {
                    kind: r.get(0)?,
                    version: r.get(1)?,
                    target: r.get(2)?,
                    sha256: r.get(3)?,
                    length: r.get::<_, i64>(4)?.max(0) as u64,
                    published_at: r.get(5)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<std::result::Result<_, _>>().map_err(self.sql())
    }

    fn create_rollout(&self, n: &NewRollout) -> Result<i64> {
        let waves = serde_json::to_string(&n.waves).map_err(|_| self.corrupt("rollout waves"))?;
        let at = now();
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(self.sql())?;
        tx.execute(
            "UPDATE rollouts SET state = 'superseded', updated_at = ?2
             WHERE kind = ?1 AND state IN ('active', 'paused', 'halted')",
            params![n.kind, at],
        )
        .map_err(self.sql())?;
        tx.execute(
            "INSERT INTO rollouts (kind, version, previous, waves, state, halt_percent, halt_min,
                                   force, reason, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, NULL, ?8, ?8)",
            params![n.kind, n.version, n.previous, waves, n.halt_percent, n.halt_min, n.force, at],
        )
        .map_err(self.sql())?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(self.sql())?;
        Ok(id)
    }

    fn rollouts(&self) -> Result<Vec<RolloutRecord>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT id, kind, version, previous, waves, state, halt_percent, halt_min, force,
                        reason, created_at, updated_at FROM rollouts ORDER BY id DESC",
            )
            .map_err(self.sql())?;
        type Row = (i64, String, String, Option<String>, String, String, i64, i64, bool);
        let rows = stmt
            .query_map([], |r| {
                let head: Row = (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                );
                Ok((head, r.get::<_, Option<String>>(9)?, r.get(10)?, r.get(11)?))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let ((id, kind, version, previous, waves, state, pct, min, force), reason, c, u) =
                row.map_err(self.sql())?;
            out.push(RolloutRecord {
                id,
                kind,
                version,
                previous,
                waves: serde_json::from_str(&waves).map_err(|_| self.corrupt("rollout waves"))?,
                state: RolloutState::parse(&state).ok_or_else(|| self.corrupt("rollout state"))?,
                halt_percent: pct.clamp(0, 100) as u8,
                halt_min: min.max(0) as u32,
                force,
                reason,
                created_at: c,
                updated_at: u,
            });
        }
        Ok(out)
    }

    fn set_rollout_state(
        &self,
        id: i64,
        state: RolloutState,
        reason: Option<&str>,
    ) -> Result<bool> {
        let conn = self.lock()?;
        let n = conn
            .execute(
                "UPDATE rollouts SET state = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, state.as_str(), reason, now()],
            )
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    fn fleet(&self) -> Result<Vec<FleetRow>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT device_id, facility_id, received_at, heartbeat FROM device_heartbeats
                 ORDER BY facility_id, device_id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (device, facility, received_at, json) = row.map_err(self.sql())?;
            let heartbeat: Heartbeat = serde_json::from_str(&json)
                .map_err(|_| self.corrupt("device_heartbeats.heartbeat"))?;
            out.push(FleetRow {
                device,
                facility: FacilityId::new(facility)
                    .map_err(|_| self.corrupt("device_heartbeats.facility_id"))?,
                last_heartbeat: received_at,
                os_version: heartbeat.os_version.clone(),
                policy_version: heartbeat.policy_version.clone(),
                queue: heartbeat.queue.clone(),
                heartbeat,
            });
        }
        Ok(out)
    }

    fn active_tunnels(&self) -> Result<Vec<TunnelRecord>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT t.serial, t.wg_public_key, t.host_index
                 FROM device_tunnels t JOIN device_serials s ON s.serial = t.serial
                 WHERE s.status != 'revoked' ORDER BY t.host_index",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (serial, key, index) = row.map_err(self.sql())?;
            out.push(TunnelRecord {
                serial: Serial::new(serial).map_err(|_| self.corrupt("device_tunnels.serial"))?,
                wg_public_key: key,
                host_index: u32::try_from(index)
                    .map_err(|_| self.corrupt("device_tunnels.host_index"))?,
            });
        }
        Ok(out)
    }

    fn revoke_serial(&self, serial: &Serial) -> Result<Revocation> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let previous = self.serial_status(&tx, serial)?;
        if matches!(previous, Some(SerialStatus::Assigned | SerialStatus::Enrolled)) {
            tx.execute(
                "UPDATE device_serials SET status = 'revoked', revoked_at = ?2 WHERE serial = ?1",
                params![serial.as_str(), now()],
            )
            .map_err(&sql)?;
        }
        let removed = tx
            .execute("DELETE FROM devices WHERE device_id = ?1", [serial.as_str()])
            .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(Revocation { previous, device_certificates_removed: removed as u64 })
    }

    fn record_package(
        &self,
        facility: &FacilityId,
        device: &DeviceId,
        package_id: &PackageId,
        manifest: &Manifest,
        raw: &[u8],
    ) -> Result<Stored> {
        let sql = self.sql();
        // What was hashed is what is kept, byte for byte: text (parsed JSON is UTF-8), or
        // the bytes as a blob should a caller pass anything else.
        let manifest_json = match std::str::from_utf8(raw) {
            Ok(text) => rusqlite::types::Value::Text(text.to_string()),
            Err(_) => rusqlite::types::Value::Blob(raw.to_vec()),
        };
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM packages WHERE package_id = ?1
                 UNION ALL SELECT 1 FROM dicom_objects WHERE package_id = ?1",
                [package_id.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map_err(&sql)?
            .is_some();
        if exists {
            return Ok(Stored::Duplicate);
        }
        // Checked in this transaction, so a collection cannot release an object between the
        // check and the package that references it.
        let mut missing = std::collections::BTreeSet::new();
        for f in &manifest.files {
            let held: Option<i64> = tx
                .query_row(
                    "SELECT size FROM held_objects WHERE facility_id = ?1 AND sha256 = ?2",
                    params![facility.as_str(), f.sha256.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&sql)?;
            match held {
                None => {
                    missing.insert(f.sha256.clone());
                }
                Some(n) if n != sql_size(f.size) => {
                    return Err(StoreError::ObjectSize {
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return Err(StoreError::ObjectsNotHeld {
                facility: facility.clone(),
                missing: missing.into_iter().collect(),
            });
        }
        for f in &manifest.files {
            tx.execute(
                "INSERT OR IGNORE INTO package_files (package_id, facility_id, sha256)
                 VALUES (?1, ?2, ?3)",
                params![package_id.as_str(), facility.as_str(), f.sha256.as_str()],
            )
            .map_err(&sql)?;
        }
        if let Body::Dicom(d) = &manifest.body {
            // A re-sent instance replaces the earlier package's row; that manifest is gone,
            // so its files no longer keep objects from collection.
            tx.execute(
                "DELETE FROM package_files WHERE package_id IN (
                    SELECT package_id FROM dicom_objects
                    WHERE facility_id = ?1 AND sop_instance_uid = ?2)",
                params![facility.as_str(), d.sop_instance_uid],
            )
            .map_err(&sql)?;
            tx.execute(
                "INSERT INTO dicom_objects (package_id, facility_id, device_id, study_uid,
                        series_uid, sop_instance_uid, sop_class, exam_pid, patient_pid,
                        received_at, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (facility_id, sop_instance_uid) DO UPDATE SET
                    package_id = excluded.package_id, device_id = excluded.device_id,
                    study_uid = excluded.study_uid, series_uid = excluded.series_uid,
                    sop_class = excluded.sop_class, exam_pid = excluded.exam_pid,
                    patient_pid = excluded.patient_pid, received_at = excluded.received_at,
                    manifest = excluded.manifest",
                params![
                    package_id.as_str(),
                    facility.as_str(),
                    device.as_str(),
                    d.study_uid,
                    d.series_uid,
                    d.sop_instance_uid,
                    d.sop_class,
                    d.exam_pid,
                    d.patient_pid,
                    now(),
                    manifest_json,
                ],
            )
            .map_err(&sql)?;
            tx.commit().map_err(&sql)?;
            return Ok(Stored::New);
        }
        let (kind, revision, withheld) = match manifest.exam() {
            Some(e) => ("exam", e.revision, e.images_withheld()),
            None => ("report", 0, 0),
        };
        // The rank the hub gives a revision: at most one above the highest so far, so a
        // revision far ahead (u32::MAX) cannot outrank every later export.
        let hub_revision = if manifest.exam().is_some() {
            let highest: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(hub_revision), 0) FROM packages
                     WHERE facility_id = ?1 AND exam_pid = ?2 AND kind = 'exam'",
                    params![facility.as_str(), manifest.exam_pid()],
                    |r| r.get(0),
                )
                .map_err(&sql)?;
            i64::from(revision).min(highest + 1)
        } else {
            0
        };
        tx.execute(
            "INSERT INTO packages (package_id, facility_id, device_id, kind, exam_pid, revision,
                                   files, images_withheld, received_at, manifest, hub_revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                package_id.as_str(),
                facility.as_str(),
                device.as_str(),
                kind,
                manifest.exam_pid(),
                revision,
                manifest.files.len() as i64,
                withheld,
                now(),
                manifest_json,
                hub_revision,
            ],
        )
        .map_err(&sql)?;
        let Some(exam) = manifest.exam() else {
            // Reports join their exam by exam_pid at listing time.
            tx.commit().map_err(&sql)?;
            return Ok(Stored::New);
        };
        tx.execute(
            "INSERT INTO exams (facility_id, exam_pid, package_id, revision, hub_revision)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (facility_id, exam_pid) DO UPDATE
                SET package_id = excluded.package_id, revision = excluded.revision,
                    hub_revision = excluded.hub_revision
                WHERE (excluded.hub_revision, excluded.revision)
                      >= (exams.hub_revision, exams.revision)",
            params![
                facility.as_str(),
                exam.exam_pid,
                package_id.as_str(),
                exam.revision,
                hub_revision
            ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(Stored::New)
    }

    fn hold_object(
        &self,
        facility: &FacilityId,
        sha: &Sha256Hex,
        size: u64,
        quota: u64,
    ) -> Result<Stored> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let refreshed = tx
            .execute(
                "UPDATE held_objects SET held_at_ms = ?3 WHERE facility_id = ?1 AND sha256 = ?2",
                params![facility.as_str(), sha.as_str(), now_ms()],
            )
            .map_err(&sql)?;
        if refreshed > 0 {
            tx.commit().map_err(&sql)?;
            return Ok(Stored::Duplicate);
        }
        let used: i64 = tx
            .query_row(
                "SELECT COALESCE(SUM(size), 0) FROM held_objects WHERE facility_id = ?1",
                [facility.as_str()],
                |r| r.get(0),
            )
            .map_err(&sql)?;
        if (used as u64).saturating_add(size) > quota {
            return Err(StoreError::QuotaExceeded { facility: facility.clone(), quota });
        }
        tx.execute(
            "INSERT INTO held_objects (facility_id, sha256, size, held_at_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![facility.as_str(), sha.as_str(), sql_size(size), now_ms()],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(Stored::New)
    }

    fn held_size(&self, facility: &FacilityId, sha: &Sha256Hex) -> Result<Option<u64>> {
        let conn = self.lock()?;
        let size: Option<i64> = conn
            .query_row(
                "SELECT size FROM held_objects WHERE facility_id = ?1 AND sha256 = ?2",
                params![facility.as_str(), sha.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        size.map(|n| u64::try_from(n).map_err(|_| self.corrupt("held_objects.size"))).transpose()
    }

    fn facility_usage(&self, facility: &FacilityId) -> Result<u64> {
        let conn = self.lock()?;
        let used: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(size), 0) FROM held_objects WHERE facility_id = ?1",
                [facility.as_str()],
                |r| r.get(0),
            )
            .map_err(self.sql())?;
        u64::try_from(used).map_err(|_| self.corrupt("held_objects.size"))
    }

    fn object_held(&self, sha: &Sha256Hex) -> Result<bool> {
        let conn = self.lock()?;
        conn.query_row("SELECT 1 FROM held_objects WHERE sha256 = ?1", [sha.as_str()], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(self.sql())
    }

    fn release_unreferenced(&self, cutoff: std::time::SystemTime) -> Result<u64> {
        let sql = self.sql();
        let conn = self.lock()?;
        let n = conn
            .execute(
                "DELETE FROM held_objects
                 WHERE held_at_ms < ?1
                   AND NOT EXISTS (SELECT 1 FROM package_files f
                                   WHERE f.facility_id = held_objects.facility_id
                                     AND f.sha256 = held_objects.sha256)",
                [ms_of(cutoff)],
            )
            .map_err(&sql)?;
        Ok(n as u64)
    }

    fn list_exams(&self, facility: &FacilityId) -> Result<Vec<ExamListing>> {
        let sql = self.sql();
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT p.exam_pid, p.revision, p.package_id, p.received_at, p.files,
                        p.images_withheld,
                        (SELECT COUNT(*) FROM packages r WHERE r.kind = 'report'
                           AND r.facility_id = e.facility_id AND r.exam_pid = e.exam_pid),
                        (SELECT COUNT(*) FROM dicom_objects d
                           WHERE d.facility_id = e.facility_id AND d.exam_pid = e.exam_pid)
                 FROM exams e JOIN packages p ON p.package_id = e.package_id
                 WHERE e.facility_id = ?1
                 ORDER BY e.exam_pid",
            )
            .map_err(&sql)?;
        let rows = stmt
            .query_map([facility.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, u32>(6)?,
                    r.get::<_, u32>(7)?,
                ))
            })
            .map_err(&sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (
                exam_pid,
                revision,
                package_id,
                received_at,
                files,
                images_withheld,
                reports,
                dicom_objects,
            ) = row.map_err(&sql)?;
            out.push(ExamListing {
                exam_pid,
                revision,
                package_id: Sha256Hex::new(package_id)
                    .map_err(|_| self.corrupt("packages.package_id"))?,
                received_at,
                files,
                images_withheld,
                reports,
                dicom_objects,
            });
        }
        Ok(out)
    }

    fn list_dicom(&self, facility: &FacilityId) -> Result<Vec<DicomListing>> {
        let sql = self.sql();
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT study_uid, series_uid, sop_instance_uid, sop_class, exam_pid, package_id,
                        received_at
                 FROM dicom_objects WHERE facility_id = ?1
                 ORDER BY study_uid, series_uid, sop_instance_uid",
            )
            .map_err(&sql)?;
        let rows = stmt
            .query_map([facility.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, String>(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(&sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (study_uid, series_uid, sop_instance_uid, sop_class, exam_pid, id, received_at) =
                row.map_err(&sql)?;
            out.push(DicomListing {
                study_uid,
                series_uid,
                sop_instance_uid,
                sop_class,
                exam_pid,
                package_id: Sha256Hex::new(id)
                    .map_err(|_| self.corrupt("dicom_objects.package_id"))?,
                received_at,
            });
        }
        Ok(out)
    }

    fn package_count(&self) -> Result<u64> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM packages) + (SELECT COUNT(*) FROM dicom_objects)",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(self.sql())
    }

    fn open_upload(
        &self,
        upload: &UploadRecord,
        admit: UploadAdmission,
    ) -> Result<(UploadState, Opened)> {
        let sql = self.sql();
        let facility = &upload.facility;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let existing = self.session_row(&tx, facility, &upload.upload_id)?;
        let opened = match existing {
            Some(rec) if rec.sha256 == upload.sha256 && rec.size == upload.size => {
                tx.execute(
                    "UPDATE upload_sessions SET touched_at_ms = ?2 WHERE upload_id = ?1",
                    params![upload.upload_id.as_str(), now_ms()],
                )
                .map_err(&sql)?;
                let received = self.chunk_rows(&tx, &upload.upload_id)?;
                tx.commit().map_err(&sql)?;
                return Ok((UploadState { record: rec, received }, Opened::Existing));
            }
            Some(_) => {
                delete_session(&tx, &upload.upload_id).map_err(&sql)?;
                Opened::Replaced
            }
            None => Opened::New,
        };
        let open: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM upload_sessions WHERE facility_id = ?1",
                [facility.as_str()],
                |r| r.get(0),
            )
            .map_err(&sql)?;
        if open >= i64::from(admit.max_open) {
            return Err(StoreError::TooManyOpenUploads {
                facility: facility.clone(),
                limit: admit.max_open,
            });
        }
        let held: bool = tx
            .query_row(
                "SELECT 1 FROM held_objects WHERE facility_id = ?1 AND sha256 = ?2",
                params![facility.as_str(), upload.sha256.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map_err(&sql)?
            .is_some();
        if !held {
            // What the facility holds plus what its open sessions will bring.
            let committed: i64 = tx
                .query_row(
                    "SELECT (SELECT COALESCE(SUM(size), 0) FROM held_objects
                             WHERE facility_id = ?1)
                          + (SELECT COALESCE(SUM(size), 0) FROM upload_sessions
                             WHERE facility_id = ?1)",
                    [facility.as_str()],
                    |r| r.get(0),
                )
                .map_err(&sql)?;
            if (committed.max(0) as u64).saturating_add(upload.size) > admit.quota {
                return Err(StoreError::QuotaExceeded {
                    facility: facility.clone(),
                    quota: admit.quota,
                });
            }
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO upload_sessions (upload_id, facility_id, sha256, size, chunk_bytes,
                                          opened_by, created_at_ms, touched_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                upload.upload_id.as_str(),
                facility.as_str(),
                upload.sha256.as_str(),
                sql_size(upload.size),
                sql_size(upload.chunk_bytes),
                upload.opened_by.as_str(),
                now
            ],
        )
        .map_err(&sql)?;
        // A session opened again after a commit is not that commit any more.
        tx.execute("DELETE FROM upload_commits WHERE upload_id = ?1", [upload.upload_id.as_str()])
            .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok((UploadState { record: upload.clone(), received: Vec::new() }, opened))
    }

    fn upload_state(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadState>> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        // One read transaction: the chunks belong to the session row read.
        let tx = conn.transaction().map_err(&sql)?;
        let Some(record) = self.session_row(&tx, facility, upload)? else { return Ok(None) };
        let received = self.chunk_rows(&tx, upload)?;
        Ok(Some(UploadState { record, received }))
    }

    fn touch_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<UploadRecord>> {
        let sql = self.sql();
        let conn = self.lock()?;
        let n = conn
            .execute(
                "UPDATE upload_sessions SET touched_at_ms = ?3
                 WHERE upload_id = ?1 AND facility_id = ?2",
                params![upload.as_str(), facility.as_str(), now_ms()],
            )
            .map_err(&sql)?;
        if n == 0 {
            return Ok(None);
        }
        self.session_row(&conn, facility, upload)
    }

    fn record_chunk(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
        chunk: &ChunkRecord,
    ) -> Result<bool> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let n = tx
            .execute(
                "UPDATE upload_sessions SET touched_at_ms = ?3
                 WHERE upload_id = ?1 AND facility_id = ?2",
                params![upload.as_str(), facility.as_str(), now_ms()],
            )
            .map_err(&sql)?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO upload_chunks (upload_id, chunk_index, sha256, size)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (upload_id, chunk_index) DO UPDATE
                SET sha256 = excluded.sha256, size = excluded.size",
            params![upload.as_str(), chunk.index, chunk.sha256.as_str(), sql_size(chunk.size)],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(true)
    }

    fn drop_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<bool> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        if self.session_row(&tx, facility, upload)?.is_none() {
            return Ok(false);
        }
        delete_session(&tx, upload).map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(true)
    }

    fn finish_upload(&self, facility: &FacilityId, upload: &UploadId) -> Result<()> {
        let sql = self.sql();
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let Some(rec) = self.session_row(&tx, facility, upload)? else { return Ok(()) };
        delete_session(&tx, upload).map_err(&sql)?;
        tx.execute(
            "INSERT INTO upload_commits (upload_id, facility_id, sha256, committed_at_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (upload_id) DO UPDATE
                SET sha256 = excluded.sha256, committed_at_ms = excluded.committed_at_ms",
            params![upload.as_str(), facility.as_str(), rec.sha256.as_str(), now_ms()],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }

    fn committed_upload(
        &self,
        facility: &FacilityId,
        upload: &UploadId,
    ) -> Result<Option<Sha256Hex>> {
        let conn = self.lock()?;
        let sha: Option<String> = conn
            .query_row(
                "SELECT sha256 FROM upload_commits WHERE upload_id = ?1 AND facility_id = ?2",
                params![upload.as_str(), facility.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        sha.map(|s| Sha256Hex::new(s).map_err(|_| self.corrupt("upload_commits.sha256")))
            .transpose()
    }

    fn upload_open(&self, upload: &UploadId) -> Result<bool> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT 1 FROM upload_sessions WHERE upload_id = ?1",
            [upload.as_str()],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
        .map_err(self.sql())
    }

    fn expire_uploads(&self, cutoff: std::time::SystemTime) -> Result<ExpiredUploads> {
        let sql = self.sql();
        let cutoff = ms_of(cutoff);
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql)?;
        let ids: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT upload_id FROM upload_sessions WHERE touched_at_ms < ?1")
                .map_err(&sql)?;
            let rows = stmt.query_map([cutoff], |r| r.get(0)).map_err(&sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(&sql)?
        };
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            let id = UploadId::new(id).map_err(|_| self.corrupt("upload_sessions.upload_id"))?;
            delete_session(&tx, &id).map_err(&sql)?;
            sessions.push(id);
        }
        let commits = tx
            .execute("DELETE FROM upload_commits WHERE committed_at_ms < ?1", [cutoff])
            .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(ExpiredUploads { sessions, commits: commits as u64 })
    }

    fn set_operator(&self, name: &OperatorName, password_phc: &str) -> Result<bool> {
        let mut conn = self.lock()?;
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.sql())?;
        let existed = tx
            .query_row("SELECT 1 FROM operators WHERE name = ?1", [name.as_str()], |_| Ok(()))
            .optional()
            .map_err(self.sql())?
            .is_some();
        tx.execute(
            "INSERT INTO operators (name, password, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET password = ?2, updated_at = ?3",
            params![name.as_str(), password_phc, now()],
        )
        .map_err(self.sql())?;
        // A new password ends the sessions made with the old one.
        tx.execute("DELETE FROM operator_sessions WHERE operator = ?1", [name.as_str()])
            .map_err(self.sql())?;
        tx.commit().map_err(self.sql())?;
        Ok(!existed)
    }

    fn remove_operator(&self, name: &OperatorName) -> Result<bool> {
        let mut conn = self.lock()?;
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.sql())?;
        tx.execute("DELETE FROM operator_sessions WHERE operator = ?1", [name.as_str()])
            .map_err(self.sql())?;
        let n = tx
            .execute("DELETE FROM operators WHERE name = ?1", [name.as_str()])
            .map_err(self.sql())?;
        tx.commit().map_err(self.sql())?;
        Ok(n > 0)
    }

    fn operator_password(&self, name: &OperatorName) -> Result<Option<String>> {
        let conn = self.lock()?;
        conn.query_row("SELECT password FROM operators WHERE name = ?1", [name.as_str()], |r| {
            r.get::<_, String>(0)
        })
        .optional()
        .map_err(self.sql())
    }

    fn insert_session(
        &self,
        token_sha256: &Sha256Hex,
        operator: &OperatorName,
        now_ms: i64,
    ) -> Result<()> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO operator_sessions (token_sha256, operator, created_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?3)",
            params![token_sha256.as_str(), operator.as_str(), now_ms],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    fn session(&self, token_sha256: &Sha256Hex) -> Result<Option<SessionRecord>> {
        let conn = self.lock()?;
        let row = conn
            .query_row(
                "SELECT s.operator, s.created_ms, s.last_seen_ms FROM operator_sessions s
                 JOIN operators o ON o.name = s.operator WHERE s.token_sha256 = ?1",
                [token_sha256.as_str()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
            )
            .optional()
            .map_err(self.sql())?;
        let Some((operator, created_ms, last_seen_ms)) = row else { return Ok(None) };
        let operator =
            OperatorName::new(operator).map_err(|_| self.corrupt("operator_sessions.operator"))?;
        Ok(Some(SessionRecord { operator, created_ms, last_seen_ms }))
    }

    fn touch_session(&self, token_sha256: &Sha256Hex, now_ms: i64) -> Result<()> {
        let conn = self.lock()?;
        conn.execute(
            "UPDATE operator_sessions SET last_seen_ms = MAX(last_seen_ms, ?2)
             WHERE token_sha256 = ?1",
            params![token_sha256.as_str(), now_ms],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    fn delete_session(&self, token_sha256: &Sha256Hex) -> Result<bool> {
        let conn = self.lock()?;
        let n = conn
            .execute(
                "DELETE FROM operator_sessions WHERE token_sha256 = ?1",
                [token_sha256.as_str()],
            )
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    fn expire_sessions(&self, idle_cutoff_ms: i64, created_cutoff_ms: i64) -> Result<u64> {
        let conn = self.lock()?;
        let n = conn
            .execute(
                "DELETE FROM operator_sessions WHERE last_seen_ms < ?1 OR created_ms < ?2",
                params![idle_cutoff_ms, created_cutoff_ms],
            )
            .map_err(self.sql())?;
        Ok(n as u64)
    }

    fn uploads_per_day(&self, facility: Option<&FacilityId>, since: &str) -> Result<Vec<DayCount>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT substr(received_at, 1, 10) AS day, COUNT(*) FROM (
                     SELECT facility_id, received_at FROM packages
                     UNION ALL SELECT facility_id, received_at FROM dicom_objects)
                 WHERE received_at >= ?1 AND (?2 IS NULL OR facility_id = ?2)
                 GROUP BY day ORDER BY day",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![since, facility.map(FacilityId::as_str)], |r| {
                Ok(DayCount { day: r.get(0)?, count: r.get::<_, i64>(1)? as u64 })
            })
            .map_err(self.sql())?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.sql())
    }

    fn device_uploads(&self) -> Result<Vec<DeviceUploads>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT device_id, facility_id, COUNT(*), MAX(received_at) FROM (
                     SELECT device_id, facility_id, received_at FROM packages
                     UNION ALL SELECT device_id, facility_id, received_at FROM dicom_objects)
                 GROUP BY device_id, facility_id ORDER BY facility_id, device_id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (device, facility, packages, last_received) = row.map_err(self.sql())?;
            let facility =
                FacilityId::new(facility).map_err(|_| self.corrupt("packages.facility_id"))?;
            out.push(DeviceUploads { device, facility, packages: packages as u64, last_received });
        }
        Ok(out)
    }

    fn facility_counts(&self, facility: &FacilityId) -> Result<FacilityCounts> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM exams WHERE facility_id = ?1),
                    (SELECT COUNT(*) FROM packages WHERE facility_id = ?1),
                    (SELECT COUNT(*) FROM dicom_objects WHERE facility_id = ?1),
                    (SELECT COALESCE(SUM(size), 0) FROM held_objects WHERE facility_id = ?1)",
            [facility.as_str()],
            |r| {
                Ok(FacilityCounts {
                    exams: r.get::<_, i64>(0)? as u64,
                    packages: r.get::<_, i64>(1)? as u64,
                    dicom_objects: r.get::<_, i64>(2)? as u64,
                    bytes_held: r.get::<_, i64>(3)? as u64,
                })
            },
        )
        .map_err(self.sql())
    }

    fn package_manifest(
        &self,
        facility: &FacilityId,
        package: &PackageId,
    ) -> Result<Option<String>> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT manifest FROM packages WHERE facility_id = ?1 AND package_id = ?2
             UNION ALL
             SELECT manifest FROM dicom_objects WHERE facility_id = ?1 AND package_id = ?2
             LIMIT 1",
            [facility.as_str(), package.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(self.sql())
    }

    fn record_export(&self, e: &ExportRecord) -> Result<i64> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO exports (researcher, facility_id, date_from, date_to, format,
                                  destination, rows, outcome, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                e.researcher,
                e.facility.as_str(),
                e.date_from,
                e.date_to,
                e.format,
                e.destination,
                sql_size(e.rows),
                e.outcome,
                e.started_at,
                e.finished_at
            ],
        )
        .map_err(self.sql())?;
        Ok(conn.last_insert_rowid())
    }

    fn exports(&self, researcher: Option<&str>) -> Result<Vec<ExportRecord>> {
        let sql = self.sql();
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare(
                "SELECT id, researcher, facility_id, date_from, date_to, format, destination,
                        rows, outcome, started_at, finished_at
                 FROM exports WHERE ?1 IS NULL OR researcher = ?1 ORDER BY id",
            )
            .map_err(&sql)?;
        let rows = stmt
            .query_map([researcher], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                ))
            })
            .map_err(&sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                researcher,
                facility,
                date_from,
                date_to,
                format,
                destination,
                n,
                outcome,
                started_at,
                finished_at,
            ) = row.map_err(&sql)?;
            out.push(ExportRecord {
                id,
                researcher,
                facility: FacilityId::new(facility)
                    .map_err(|_| self.corrupt("exports.facility_id"))?,
                date_from,
                date_to,
                format,
                destination,
                rows: n.max(0) as u64,
                outcome,
                started_at,
                finished_at,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, exam, manifest, session, Backend};

    /// A SQLite database in a temporary directory.
    struct Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    fn sqlite() -> Option<Sqlite> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        Some(Sqlite { _dir: dir, path })
    }

    impl Backend for Sqlite {
        fn open(&self) -> Box<dyn MetaStore> {
            Box::new(SqliteMetaStore::open(&self.path).unwrap())
        }
        fn stored_manifest(&self, id: &PackageId) -> Vec<u8> {
            let conn = Connection::open(&self.path).unwrap();
            let text: String = conn
                .query_row(
                    "SELECT manifest FROM packages WHERE package_id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            text.into_bytes()
        }
        fn execute(&self, sql: &str) {
            Connection::open(&self.path).unwrap().execute(sql, []).unwrap();
        }
        fn count(&self, sql: &str) -> i64 {
            Connection::open(&self.path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }

    conformance::conformance_tests!(sqlite());

    #[test]
    fn migration_4_adds_upload_sessions_to_a_version_3_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&path, &mut conn).unwrap();
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "DROP TABLE upload_commits; DROP TABLE upload_chunks; DROP TABLE upload_sessions;
                 DROP TABLE device_heartbeats; DROP TABLE device_tunnels; DROP TABLE device_credentials; DROP TABLE device_serials;
                 DROP TABLE rollouts; DROP TABLE releases;
                 DROP TABLE operator_sessions; DROP TABLE operators; DROP INDEX packages_by_received;
                 DROP INDEX dicom_by_received; DROP TABLE exports;",
            )
            .unwrap();
        }
        let store = SqliteMetaStore::open(&path).unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let rec = session(&f1, b"x", 1);
        store.open_upload(&rec, UploadAdmission { max_open: 1, quota: 1 }).unwrap();
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        // One session per facility and object.
        let dup = conn.execute(
            "INSERT INTO upload_sessions VALUES ('ffffffffffffffffffffffffffffffff', 'F0001', ?1,
                1, 1, 'gw-1', 0, 0)",
            [rec.sha256.as_str()],
        );
        assert!(dup.is_err());
    }

    #[test]
    fn migration_3_keeps_earlier_packages_and_their_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let f1 = FacilityId::new("F0001").unwrap();
        // A version-2 database with one exam package (as the hub before issue 10 wrote it).
        {
            let mut conn = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..2] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            let m = manifest(&f1, "e-1", 9);
            let raw = m.to_bytes();
            let tx = conn.transaction().unwrap();
            tx.execute(
                "INSERT INTO packages VALUES (?1, 'F0001', 'gw-1', 'exam', 'e-1', 9, 1, 0, 'now', ?2)",
                params![Manifest::id_of(&raw).as_str(), String::from_utf8(raw).unwrap()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO exams VALUES ('F0001', 'e-1', ?1, 9)",
                [Manifest::id_of(&m.to_bytes()).as_str()],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteMetaStore::open(&path).unwrap();
        let x = Sha256Hex::of(b"x");
        assert_eq!(store.held_size(&f1, &x).unwrap(), Some(1));
        // Referenced by the old manifest: never released.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(store.release_unreferenced(later).unwrap(), 0);
        // The old revision 9 ranks as hub revision 1: revision 10 replaces it.
        let dev = DeviceId::new("gw-1").unwrap();
        let (m, raw, id) = exam(&f1, "e-1", 10);
        store.record_package(&f1, &dev, &id, &m, &raw).unwrap();
        assert_eq!(store.list_exams(&f1).unwrap()[0].revision, 10);
    }
}
