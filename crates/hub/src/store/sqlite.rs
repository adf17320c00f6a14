//! Embedded metadata store: SQLite in WAL mode with `synchronous=FULL` (an acknowledged
//! package must survive a power cut: the gateway deletes its copy after the Ack).
//! Schema changes are numbered migrations tracked in `PRAGMA user_version`.
//!
//! Holds only manifest content (already de-identified) plus device / facility ids.

use super::{DeviceRecord, MetaStore, Result, StoreError};
use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex};
use fgw_format::package::protocol::{DicomListing, ExamListing, Stored};
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
];

/// The embedded [`MetaStore`]: one SQLite file (WAL, synchronous FULL).
pub struct SqliteMetaStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl SqliteMetaStore {
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

    fn record_package(
        &self,
        facility: &FacilityId,
        device: &DeviceId,
        package_id: &PackageId,
        manifest: &Manifest,
    ) -> Result<Stored> {
        let sql = self.sql();
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
        // The exact manifest JSON is kept: it is the de-identified record itself.
        let manifest_json = String::from_utf8(manifest.to_bytes()).expect("serde_json emits UTF-8");
        if let Body::Dicom(d) = &manifest.body {
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
        tx.execute(
            "INSERT INTO packages (package_id, facility_id, device_id, kind, exam_pid, revision,
                                   files, images_withheld, received_at, manifest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
            ],
        )
        .map_err(&sql)?;
        let Some(exam) = manifest.exam() else {
            // Reports join their exam by exam_pid at listing time.
            tx.commit().map_err(&sql)?;
            return Ok(Stored::New);
        };
        tx.execute(
            "INSERT INTO exams (facility_id, exam_pid, package_id, revision)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (facility_id, exam_pid) DO UPDATE
                SET package_id = excluded.package_id, revision = excluded.revision
                WHERE excluded.revision >= exams.revision",
            params![facility.as_str(), exam.exam_pid, package_id.as_str(), exam.revision],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(Stored::New)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_format::package::{DeidInfo, ExamRecord, FileEntry, FORMAT, FORMAT_VERSION};

    fn manifest(facility: &FacilityId, exam_pid: &str, revision: u32) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            facility_id: facility.clone(),
            body: Body::Exam(ExamRecord {
                exam_pid: exam_pid.into(),
                revision,
                ..Default::default()
            }),
            files: vec![FileEntry {
                path: "images/001.jpg".into(),
                sha256: Sha256Hex::of(b"x"),
                size: 1,
                media_type: "image/jpeg".into(),
            }],
            deid: DeidInfo {
                method: "test".into(),
                tool_version: "0".into(),
                policy_id: "p".into(),
                policy_version: 1,
                actions: vec![],
            },
        }
    }

    #[test]
    fn devices_and_packages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite");
        let store = SqliteMetaStore::open(&path).unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let f2 = FacilityId::new("F0002").unwrap();
        let dev = DeviceId::new("gw-1").unwrap();
        let fp = Sha256Hex::of(b"cert");
        store.register_device(&fp, &dev, &f1, Role::Device).unwrap();
        store.register_device(&fp, &dev, &f1, Role::Device).unwrap();
        let rec = store.device_by_fingerprint(&fp).unwrap().unwrap();
        assert_eq!((rec.device, rec.facility, rec.role), (dev.clone(), f1.clone(), Role::Device));
        assert!(matches!(
            store.register_device(&Sha256Hex::of(b"c2"), &dev, &f2, Role::Device),
            Err(StoreError::DeviceFacilityConflict { .. })
        ));
        assert!(store.device_by_fingerprint(&Sha256Hex::of(b"none")).unwrap().is_none());

        let m2 = manifest(&f1, "e-1", 2);
        let id2 = Manifest::id_of(&m2.to_bytes());
        assert_eq!(store.record_package(&f1, &dev, &id2, &m2).unwrap(), Stored::New);
        assert_eq!(store.record_package(&f1, &dev, &id2, &m2).unwrap(), Stored::Duplicate);
        // An older revision arriving late is kept but does not become current.
        let m1 = manifest(&f1, "e-1", 1);
        let id1 = Manifest::id_of(&m1.to_bytes());
        assert_eq!(store.record_package(&f1, &dev, &id1, &m1).unwrap(), Stored::New);
        let list = store.list_exams(&f1).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].revision, &list[0].package_id), (2, &id2));
        assert_eq!(list[0].files, 1);
        assert!(store.list_exams(&f2).unwrap().is_empty());
        assert_eq!(store.package_count().unwrap(), 2);
        drop(store);
        // Reopening runs no migration twice.
        let store = SqliteMetaStore::open(&path).unwrap();
        assert_eq!(store.package_count().unwrap(), 2);
    }

    #[test]
    fn dicom_objects_join_their_exam_and_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetaStore::open(&dir.path().join("hub.sqlite")).unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let dev = DeviceId::new("gw-1").unwrap();
        let exam = manifest(&f1, "e-1", 1);
        store.record_package(&f1, &dev, &Manifest::id_of(&exam.to_bytes()), &exam).unwrap();
        let object = |sop: &str, policy_version: u32| {
            let mut m = manifest(&f1, "", 0);
            m.deid.policy_version = policy_version;
            m.body = Body::Dicom(fgw_format::package::DicomRecord {
                study_uid: "2.25.1".into(),
                sop_instance_uid: sop.into(),
                exam_pid: Some("e-1".into()),
                ..Default::default()
            });
            let id = Manifest::id_of(&m.to_bytes());
            (m, id)
        };
        let (a, ida) = object("2.25.10", 1);
        let (b, idb) = object("2.25.11", 1);
        assert_eq!(store.record_package(&f1, &dev, &ida, &a).unwrap(), Stored::New);
        assert_eq!(store.record_package(&f1, &dev, &ida, &a).unwrap(), Stored::Duplicate);
        assert_eq!(store.record_package(&f1, &dev, &idb, &b).unwrap(), Stored::New);
        // The same instance de-identified under a new policy replaces its row.
        let (a2, ida2) = object("2.25.10", 2);
        assert_eq!(store.record_package(&f1, &dev, &ida2, &a2).unwrap(), Stored::New);
        let list = store.list_dicom(&f1).unwrap();
        let ids: Vec<_> =
            list.iter().map(|r| (r.sop_instance_uid.as_str(), &r.package_id)).collect();
        assert_eq!(ids, vec![("2.25.10", &ida2), ("2.25.11", &idb)]);
        assert_eq!(store.list_exams(&f1).unwrap()[0].dicom_objects, 2);
        assert_eq!(store.package_count().unwrap(), 3);
    }
}
