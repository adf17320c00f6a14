//! The [`MetaStore`] contract as tests: each function takes a [`Backend`] and checks the
//! trait's semantics, so the SQLite and the PostgreSQL store run the same bodies
//! ([`conformance_tests!`] in each store's tests).

use super::*;
use crate::dashboard::OperatorName;
use crate::enroll::Serial;
use crate::Role;
use fgw_format::ids::{DeviceId, FacilityId, PackageId, Sha256Hex, UploadId};
use fgw_format::package::protocol::Stored;
use fgw_format::package::{
    Body, DeidInfo, ExamRecord, FileEntry, Manifest, FORMAT, FORMAT_VERSION,
};

/// One database of a store under test.
pub(crate) trait Backend {
    /// A store on the database: each call opens it again (a restart, or another node).
    fn open(&self) -> Box<dyn MetaStore>;
    /// The manifest bytes stored for package `id`.
    fn stored_manifest(&self, id: &PackageId) -> Vec<u8>;
    /// Run one SQL statement directly (what a test cannot do through the trait).
    fn execute(&self, sql: &str);
    /// The single integer a SQL query returns.
    fn count(&self, sql: &str) -> i64;
}

/// A `#[test]` per conformance case; `$backend` is an `Option<impl Backend>` (`None`: skip).
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::store::conformance::conformance_tests!(@each $backend;
            devices_and_packages,
            dicom_objects_join_their_exam_and_latest_wins,
            derived_revisions_stop_a_huge_revision_from_pinning,
            the_exact_bytes_are_stored_and_the_quota_holds,
            upload_sessions_are_per_facility_resumable_and_finished_once,
            upload_sessions_are_limited_per_facility_and_by_the_quota,
            untouched_upload_sessions_and_old_commits_expire,
            serials_enroll_renew_and_revoke,
            operators_and_their_sessions,
            dashboard_counts_by_day_device_and_facility,
            manifests_by_package_and_the_export_log,
        );
    };
    (@each $backend:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                if let Some(backend) = $backend {
                    $crate::store::conformance::$case(&backend);
                }
            }
        )*
    };
}
pub(crate) use conformance_tests;

pub(crate) fn manifest(facility: &FacilityId, exam_pid: &str, revision: u32) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        facility_id: facility.clone(),
        body: Body::Exam(ExamRecord { exam_pid: exam_pid.into(), revision, ..Default::default() }),
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

pub(crate) fn devices_and_packages(db: &dyn Backend) {
    let store = db.open();
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
    // Its file is not held by F0001 yet.
    let id = Manifest::id_of(&m2.to_bytes());
    assert!(matches!(
        store.record_package(&f1, &dev, &id, &m2, &m2.to_bytes()),
        Err(StoreError::ObjectsNotHeld { .. })
    ));
    let x = Sha256Hex::of(b"x");
    assert_eq!(store.hold_object(&f1, &x, 1, u64::MAX).unwrap(), Stored::New);
    assert_eq!(store.hold_object(&f1, &x, 1, u64::MAX).unwrap(), Stored::Duplicate);
    assert_eq!(store.held_size(&f1, &x).unwrap(), Some(1));
    assert_eq!(store.held_size(&f2, &x).unwrap(), None);
    let id2 = Manifest::id_of(&m2.to_bytes());
    assert_eq!(store.record_package(&f1, &dev, &id2, &m2, &m2.to_bytes()).unwrap(), Stored::New);
    assert_eq!(
        store.record_package(&f1, &dev, &id2, &m2, &m2.to_bytes()).unwrap(),
        Stored::Duplicate
    );
    // An older revision arriving late is kept but does not become current.
    let m1 = manifest(&f1, "e-1", 1);
    let id1 = Manifest::id_of(&m1.to_bytes());
    assert_eq!(store.record_package(&f1, &dev, &id1, &m1, &m1.to_bytes()).unwrap(), Stored::New);
    let list = store.list_exams(&f1).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].revision, &list[0].package_id), (2, &id2));
    assert_eq!(list[0].files, 1);
    assert!(store.list_exams(&f2).unwrap().is_empty());
    assert_eq!(store.package_count().unwrap(), 2);
    drop(store);
    // Reopening runs no migration twice.
    let store = db.open();
    assert_eq!(store.package_count().unwrap(), 2);
}

pub(crate) fn dicom_objects_join_their_exam_and_latest_wins(db: &dyn Backend) {
    let store = db.open();
    let f1 = FacilityId::new("F0001").unwrap();
    let dev = DeviceId::new("gw-1").unwrap();
    let exam = manifest(&f1, "e-1", 1);
    store.hold_object(&f1, &Sha256Hex::of(b"x"), 1, u64::MAX).unwrap();
    let raw = exam.to_bytes();
    store.record_package(&f1, &dev, &Manifest::id_of(&raw), &exam, &raw).unwrap();
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
    assert_eq!(store.record_package(&f1, &dev, &ida, &a, &a.to_bytes()).unwrap(), Stored::New);
    assert_eq!(
        store.record_package(&f1, &dev, &ida, &a, &a.to_bytes()).unwrap(),
        Stored::Duplicate
    );
    assert_eq!(store.record_package(&f1, &dev, &idb, &b, &b.to_bytes()).unwrap(), Stored::New);
    // The same instance de-identified under a new policy replaces its row.
    let (a2, ida2) = object("2.25.10", 2);
    assert_eq!(store.record_package(&f1, &dev, &ida2, &a2, &a2.to_bytes()).unwrap(), Stored::New);
    let list = store.list_dicom(&f1).unwrap();
    let ids: Vec<_> = list.iter().map(|r| (r.sop_instance_uid.as_str(), &r.package_id)).collect();
    assert_eq!(ids, vec![("2.25.10", &ida2), ("2.25.11", &idb)]);
    assert_eq!(store.list_exams(&f1).unwrap()[0].dicom_objects, 2);
    assert_eq!(store.package_count().unwrap(), 3);
}

pub(crate) fn exam(
    f: &FacilityId,
    exam_pid: &str,
    revision: u32,
) -> (Manifest, Vec<u8>, PackageId) {
    let mut m = manifest(f, exam_pid, revision);
    m.files.clear();
    let raw = m.to_bytes();
    let id = Manifest::id_of(&raw);
    (m, raw, id)
}

pub(crate) fn derived_revisions_stop_a_huge_revision_from_pinning(db: &dyn Backend) {
    let store = db.open();
    let f1 = FacilityId::new("F0001").unwrap();
    let dev = DeviceId::new("gw-1").unwrap();
    let current_after = |exam_pid: &str, revisions: &[u32]| {
        for &r in revisions {
            let (m, raw, id) = exam(&f1, exam_pid, r);
            store.record_package(&f1, &dev, &id, &m, &raw).unwrap();
        }
        let rows = store.list_exams(&f1).unwrap();
        rows.into_iter().find(|r| r.exam_pid == exam_pid).unwrap().revision
    };
    assert_eq!(current_after("a", &[u32::MAX, 2]), 2);
    assert_eq!(current_after("b", &[1, u32::MAX, 2]), u32::MAX);
    assert_eq!(current_after("b", &[3]), 3);
    assert_eq!(current_after("c", &[2, 1]), 2);
    assert_eq!(current_after("d", &[1, 2, 4, 3]), 4);
    assert_eq!(current_after("e", &[3, 7]), 7);
}

pub(crate) fn the_exact_bytes_are_stored_and_the_quota_holds(db: &dyn Backend) {
    let store = db.open();
    let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
    let dev = DeviceId::new("gw-1").unwrap();
    let (m, _, _) = exam(&f1, "e-1", 1);
    let pretty = serde_json::to_vec_pretty(&m).unwrap();
    let id = Manifest::id_of(&pretty);
    store.record_package(&f1, &dev, &id, &m, &pretty).unwrap();
    assert_eq!(db.stored_manifest(&id), pretty);

    let (a, b) = (Sha256Hex::of(b"a"), Sha256Hex::of(b"b"));
    assert_eq!(store.hold_object(&f1, &a, 60, 100).unwrap(), Stored::New);
    assert!(matches!(
        store.hold_object(&f1, &b, 60, 100),
        Err(StoreError::QuotaExceeded { quota: 100, .. })
    ));
    assert_eq!(store.hold_object(&f1, &a, 60, 100).unwrap(), Stored::Duplicate);
    assert_eq!(store.hold_object(&f2, &b, 60, 100).unwrap(), Stored::New);
    assert_eq!(store.facility_usage(&f1).unwrap(), 60);
    assert!(store.object_held(&b).unwrap());
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    assert_eq!(store.release_unreferenced(later).unwrap(), 2);
    assert_eq!(store.facility_usage(&f1).unwrap(), 0);
    assert!(!store.object_held(&a).unwrap());
}

pub(crate) fn session(f: &FacilityId, bytes: &[u8], chunk_bytes: u64) -> UploadRecord {
    let sha = Sha256Hex::of(bytes);
    UploadRecord {
        upload_id: UploadId::derive(f, &sha),
        facility: f.clone(),
        sha256: sha,
        size: bytes.len() as u64,
        chunk_bytes,
        opened_by: DeviceId::new("gw-1").unwrap(),
    }
}

pub(crate) fn chunk(index: u32, bytes: &[u8]) -> ChunkRecord {
    ChunkRecord { index, sha256: Sha256Hex::of(bytes), size: bytes.len() as u64 }
}

pub(crate) fn upload_sessions_are_per_facility_resumable_and_finished_once(db: &dyn Backend) {
    let store = db.open();
    let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
    let admit = UploadAdmission { max_open: 4, quota: u64::MAX };
    let rec = session(&f1, b"0123456789", 4);
    assert_eq!((rec.chunks(), rec.chunk_lengths()), (3, vec![4, 4, 2]));
    let id = rec.upload_id.clone();

    let (st, how) = store.open_upload(&rec, admit).unwrap();
    assert_eq!((st.record.clone(), st.received.len(), how), (rec.clone(), 0, Opened::New));
    assert!(store.record_chunk(&f1, &id, &chunk(1, b"4567")).unwrap());
    assert!(store.record_chunk(&f1, &id, &chunk(0, b"0123")).unwrap());
    // Sent again: replaced, not doubled.
    assert!(store.record_chunk(&f1, &id, &chunk(0, b"0123")).unwrap());

    // Opened again (another device, another chunk size asked): the same session, its
    // chunk size and its chunks, by index.
    let again =
        UploadRecord { chunk_bytes: 8, opened_by: DeviceId::new("gw-3").unwrap(), ..rec.clone() };
    let (st, how) = store.open_upload(&again, admit).unwrap();
    assert_eq!(how, Opened::Existing);
    assert_eq!((st.record.chunk_bytes, st.record.opened_by.as_str()), (4, "gw-1"));
    assert_eq!(st.received, vec![chunk(0, b"0123"), chunk(1, b"4567")]);
    assert_eq!(store.upload_state(&f1, &id).unwrap().unwrap(), st);
    assert_eq!(store.touch_upload(&f1, &id).unwrap(), Some(rec.clone()));

    // Another facility does not see it (by id), nor can it add chunks.
    assert!(store.upload_state(&f2, &id).unwrap().is_none());
    assert!(store.touch_upload(&f2, &id).unwrap().is_none());
    assert!(!store.record_chunk(&f2, &id, &chunk(2, b"89")).unwrap());
    assert!(!store.drop_upload(&f2, &id).unwrap());
    assert!(store.upload_open(&id).unwrap());

    // It survives a reopen of the database (a hub restart).
    drop(store);
    let store = db.open();
    assert_eq!(store.upload_state(&f1, &id).unwrap().unwrap().received.len(), 2);

    // Finished: gone, with a record of the commit for that facility only.
    assert_eq!(store.committed_upload(&f1, &id).unwrap(), None);
    store.finish_upload(&f1, &id).unwrap();
    assert!(store.upload_state(&f1, &id).unwrap().is_none());
    assert!(!store.upload_open(&id).unwrap());
    assert_eq!(store.committed_upload(&f1, &id).unwrap(), Some(rec.sha256.clone()));
    assert_eq!(store.committed_upload(&f2, &id).unwrap(), None);
    assert!(!store.record_chunk(&f1, &id, &chunk(2, b"89")).unwrap());
    assert_eq!(db.count("SELECT COUNT(*) FROM upload_chunks"), 0);
    // Opened again after the commit: a new session, no longer a commit.
    assert_eq!(store.open_upload(&rec, admit).unwrap().1, Opened::New);
    assert_eq!(store.committed_upload(&f1, &id).unwrap(), None);
}

pub(crate) fn upload_sessions_are_limited_per_facility_and_by_the_quota(db: &dyn Backend) {
    let store = db.open();
    let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
    let admit = UploadAdmission { max_open: 2, quota: 100 };
    let (a, b, c) = (vec![1u8; 40], vec![2u8; 40], vec![3u8; 10]);
    store.open_upload(&session(&f1, &a, 8), admit).unwrap();
    // Held 40 + open 40 + 40 > 100.
    store.hold_object(&f1, &Sha256Hex::of(b"held"), 40, 100).unwrap();
    assert!(matches!(
        store.open_upload(&session(&f1, &b, 8), admit),
        Err(StoreError::QuotaExceeded { quota: 100, .. })
    ));
    store.open_upload(&session(&f1, &c, 8), admit).unwrap();
    // Two open: a third is refused, naming the facility and the limit.
    let e = store.open_upload(&session(&f1, b"d", 8), admit).unwrap_err();
    assert!(matches!(e, StoreError::TooManyOpenUploads { limit: 2, .. }), "{e}");
    assert!(e.to_string().contains("F0001"));
    // The open ones are still answered, and other facilities are not limited by F0001's.
    assert_eq!(store.open_upload(&session(&f1, &a, 8), admit).unwrap().1, Opened::Existing);
    store.open_upload(&session(&f2, &b, 8), admit).unwrap();
    // A session for the same object with another size replaces the open one.
    let mut resized = session(&f1, &c, 8);
    resized.size = 11;
    let id = resized.upload_id.clone();
    assert!(store.record_chunk(&f1, &id, &chunk(0, &c[..8])).unwrap());
    let (st, how) = store.open_upload(&resized, admit).unwrap();
    assert_eq!((how, st.record.size, st.received.len()), (Opened::Replaced, 11, 0));
    assert!(store.upload_state(&f1, &id).unwrap().unwrap().received.is_empty());
}

pub(crate) fn untouched_upload_sessions_and_old_commits_expire(db: &dyn Backend) {
    let store = db.open();
    let f1 = FacilityId::new("F0001").unwrap();
    let admit = UploadAdmission { max_open: 8, quota: u64::MAX };
    let (open, done) = (session(&f1, b"open", 2), session(&f1, b"done", 2));
    store.open_upload(&open, admit).unwrap();
    store.record_chunk(&f1, &open.upload_id, &chunk(0, b"op")).unwrap();
    store.open_upload(&done, admit).unwrap();
    store.finish_upload(&f1, &done.upload_id).unwrap();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    assert_eq!(store.expire_uploads(before).unwrap(), ExpiredUploads::default());
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    let expired = store.expire_uploads(later).unwrap();
    assert_eq!(expired, ExpiredUploads { sessions: vec![open.upload_id.clone()], commits: 1 });
    assert!(store.upload_state(&f1, &open.upload_id).unwrap().is_none());
    assert_eq!(store.committed_upload(&f1, &done.upload_id).unwrap(), None);
    assert_eq!(store.expire_uploads(later).unwrap(), ExpiredUploads::default());
}

pub(crate) fn new_serial(
    serial: &str,
    facility: &FacilityId,
    key: &[u8],
    cert: &[u8],
) -> NewSerial {
    NewSerial {
        serial: Serial::new(serial).unwrap(),
        facility: facility.clone(),
        idevid_key: Sha256Hex::of(key),
        idevid_fingerprint: Sha256Hex::of(cert),
        idevid_pem: String::from_utf8_lossy(cert).into_owned(),
        idevid_not_after: "9999-12-31T23:59:59Z".into(),
    }
}

pub(crate) fn serials_enroll_renew_and_revoke(db: &dyn Backend) {
    let store = db.open();
    let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
    let s = Serial::new("fgw-0123456789abcdef").unwrap();
    let add = new_serial(s.as_str(), &f1, b"key", b"idevid-1");
    assert_eq!(store.add_serial(&add).unwrap(), SerialAdded::New);
    // The same key again: the first certificate; another key or facility: refused.
    let again = new_serial(s.as_str(), &f1, b"key", b"idevid-2");
    assert_eq!(
        store.add_serial(&again).unwrap(),
        SerialAdded::Existing { idevid_pem: "idevid-1".into() }
    );
    assert!(store.credential_by_fingerprint(&Sha256Hex::of(b"idevid-2")).unwrap().is_none());
    for other in [
        new_serial(s.as_str(), &f1, b"key-2", b"idevid-3"),
        new_serial(s.as_str(), &f2, b"key", b"idevid-3"),
    ] {
        assert!(matches!(store.add_serial(&other), Err(StoreError::SerialTaken { .. })));
    }
    let rec = store.serial(&s).unwrap().unwrap();
    assert_eq!((rec.status, rec.enrolled_at.as_deref()), (SerialStatus::Assigned, None));
    let idevid = store.credential_by_fingerprint(&Sha256Hex::of(b"idevid-1")).unwrap();
    let idevid = idevid.unwrap();
    assert_eq!((idevid.kind, &idevid.serial, &idevid.facility), (CredentialKind::Idevid, &s, &f1));

    let op1 = Sha256Hex::of(b"op-1");
    store.record_operational(&s, &op1, "2000-01-01T00:00:00Z", Enrollment::Initial).unwrap();
    let rec = store.serial(&s).unwrap().unwrap();
    assert_eq!(rec.status, SerialStatus::Enrolled);
    assert!(rec.enrolled_at.is_some());
    let op2 = Sha256Hex::of(b"op-2");
    store.record_operational(&s, &op2, "9000-01-01T00:00:00Z", Enrollment::Renewal).unwrap();
    // The expired one is forgotten; the new one is the box's.
    assert!(store.credential_by_fingerprint(&op1).unwrap().is_none());
    let cred = store.credential_by_fingerprint(&op2).unwrap().unwrap();
    assert_eq!((cred.kind, cred.status), (CredentialKind::Operational, SerialStatus::Enrolled));
    assert_eq!(
        store.serial(&s).unwrap().unwrap().operational_not_after.as_deref(),
        Some("9000-01-01T00:00:00Z")
    );
    // A serial is a device id bound to its facility.
    let dev = s.device_id();
    assert!(matches!(
        store.register_device(&Sha256Hex::of(b"c"), &dev, &f2, Role::Device),
        Err(StoreError::DeviceFacilityConflict { .. })
    ));
    store.register_device(&Sha256Hex::of(b"c"), &dev, &f1, Role::Device).unwrap();

    let r = store.revoke_serial(&s).unwrap();
    assert_eq!(
        r,
        Revocation { previous: Some(SerialStatus::Enrolled), device_certificates_removed: 1 }
    );
    assert_eq!(
        store.credential_by_fingerprint(&op2).unwrap().unwrap().status,
        SerialStatus::Revoked
    );
    assert!(store.device_by_fingerprint(&Sha256Hex::of(b"c")).unwrap().is_none());
    let r = store.revoke_serial(&s).unwrap();
    assert_eq!(r.previous, Some(SerialStatus::Revoked));
    assert!(matches!(
        store.record_operational(
            &s,
            &Sha256Hex::of(b"op-3"),
            "9000-01-01T00:00:00Z",
            Enrollment::Renewal
        ),
        Err(StoreError::SerialRevoked { .. })
    ));
    assert!(matches!(store.add_serial(&add), Err(StoreError::SerialRevoked { .. })));
    let unknown = Serial::new("fgw-ffffffffffffffff").unwrap();
    assert_eq!(store.revoke_serial(&unknown).unwrap().previous, None);
    assert!(matches!(
        store.record_operational(&unknown, &Sha256Hex::of(b"op-4"), "x", Enrollment::Initial),
        Err(StoreError::UnknownSerial { .. })
    ));
}

pub(crate) fn operators_and_their_sessions(db: &dyn Backend) {
    let store = db.open();
    let (alice, bob) = (OperatorName::new("alice").unwrap(), OperatorName::new("bob").unwrap());
    assert_eq!(store.operator_password(&alice).unwrap(), None);
    assert!(store.set_operator(&alice, "$argon2id$one").unwrap(), "added");
    assert!(store.set_operator(&bob, "$argon2id$bob").unwrap());
    assert_eq!(store.operator_password(&alice).unwrap().as_deref(), Some("$argon2id$one"));
    let (t1, t2, t3) = (Sha256Hex::of(b"t1"), Sha256Hex::of(b"t2"), Sha256Hex::of(b"t3"));
    store.insert_session(&t1, &alice, 1_000).unwrap();
    store.insert_session(&t2, &alice, 5_000).unwrap();
    store.insert_session(&t3, &bob, 5_000).unwrap();
    let s = store.session(&t1).unwrap().unwrap();
    assert_eq!((s.operator, s.created_ms, s.last_seen_ms), (alice.clone(), 1_000, 1_000));
    store.touch_session(&t1, 9_000).unwrap();
    store.touch_session(&t1, 8_000).unwrap();
    assert_eq!(store.session(&t1).unwrap().unwrap().last_seen_ms, 9_000, "never back");
    // Idle before 6000 (t2, t3), or made before 500 (none): two go.
    assert_eq!(store.expire_sessions(6_000, 500).unwrap(), 2);
    assert!(store.session(&t2).unwrap().is_none() && store.session(&t3).unwrap().is_none());
    // Made before 2000: t1 goes, however recently used.
    assert_eq!(store.expire_sessions(0, 2_000).unwrap(), 1);
    store.insert_session(&t2, &alice, 10_000).unwrap();
    assert!(store.delete_session(&t2).unwrap());
    assert!(!store.delete_session(&t2).unwrap());
    // A new password ends the operator's sessions; removing the account too.
    store.insert_session(&t1, &alice, 10_000).unwrap();
    assert!(!store.set_operator(&alice, "$argon2id$two").unwrap(), "existed");
    assert!(store.session(&t1).unwrap().is_none());
    store.insert_session(&t3, &bob, 10_000).unwrap();
    assert!(store.remove_operator(&bob).unwrap());
    assert!(!store.remove_operator(&bob).unwrap());
    assert!(store.session(&t3).unwrap().is_none());
    assert_eq!(store.operator_password(&bob).unwrap(), None);
}

pub(crate) fn dashboard_counts_by_day_device_and_facility(db: &dyn Backend) {
    let store = db.open();
    let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
    let (g1, g2) = (DeviceId::new("gw-1").unwrap(), DeviceId::new("gw-2").unwrap());
    for (f, g, pid, rev) in [(&f1, &g1, "e-1", 1), (&f1, &g1, "e-1", 2), (&f2, &g2, "e-9", 1)] {
        let (m, raw, id) = exam(f, pid, rev);
        store.record_package(f, g, &id, &m, &raw).unwrap();
    }
    // An older package of F0001, as if received on an earlier day.
    db.execute(
        "UPDATE packages SET received_at = '2026-01-02T03:04:05Z'
         WHERE package_id = (SELECT package_id FROM packages WHERE revision = 1
                             AND facility_id = 'F0001')",
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let all = store.uploads_per_day(None, "2026-01-01").unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[0].day.as_str(), all[0].count), ("2026-01-02", 1));
    assert_eq!((all[1].day.as_str(), all[1].count), (today.as_str(), 2));
    let f1_today = store.uploads_per_day(Some(&f1), &today).unwrap();
    assert_eq!(f1_today.iter().map(|d| d.count).sum::<u64>(), 1);
    let devices = store.device_uploads().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!((devices[0].device.as_str(), devices[0].packages), ("gw-1", 2));
    assert!(devices[0].last_received.starts_with(&today));
    let c = store.facility_counts(&f1).unwrap();
    assert_eq!((c.exams, c.packages, c.dicom_objects, c.bytes_held), (1, 2, 0, 0));
    assert_eq!(
        store.facility_counts(&FacilityId::new("F9").unwrap()).unwrap(),
        FacilityCounts::default()
    );
}

pub(crate) fn manifests_by_package_and_the_export_log(db: &dyn Backend) {
    let store = db.open();
    let f1 = FacilityId::new("F0001").unwrap();
    let f2 = FacilityId::new("F0002").unwrap();
    let dev = DeviceId::new("gw-1").unwrap();
    store.register_device(&Sha256Hex::of(b"cert"), &dev, &f1, Role::Device).unwrap();
    store.hold_object(&f1, &Sha256Hex::of(b"x"), 1, u64::MAX).unwrap();
    let m = manifest(&f1, "e-1", 1);
    let bytes = m.to_bytes();
    let id = Manifest::id_of(&bytes);
    store.record_package(&f1, &dev, &id, &m, &bytes).unwrap();
    // The exact bytes, to their facility only.
    let got = store.package_manifest(&f1, &id).unwrap().unwrap();
    assert_eq!(got.as_bytes(), bytes.as_slice());
    assert!(store.package_manifest(&f2, &id).unwrap().is_none());
    assert!(store.package_manifest(&f1, &Sha256Hex::of(b"none")).unwrap().is_none());

    let entry = |researcher: &str, outcome: &str| ExportRecord {
        id: 0,
        researcher: researcher.into(),
        facility: f1.clone(),
        date_from: "2026-01-01".into(),
        date_to: "2026-12-31".into(),
        format: "parquet".into(),
        destination: "/exports/a".into(),
        rows: 12,
        outcome: outcome.into(),
        started_at: "2026-12-05T10:00:00Z".into(),
        finished_at: "2026-12-05T10:00:01Z".into(),
    };
    let a = store.record_export(&entry("tanaka", "complete")).unwrap();
    let b = store.record_export(&entry("sato", "failed")).unwrap();
    assert!(b > a, "ids grow");
    drop(store);
    let store = db.open();
    let all = store.exports(None).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], ExportRecord { id: a, ..entry("tanaka", "complete") });
    let sato = store.exports(Some("sato")).unwrap();
    assert_eq!(sato, vec![ExportRecord { id: b, ..entry("sato", "failed") }]);
    assert!(store.exports(Some("nobody")).unwrap().is_empty());
}
