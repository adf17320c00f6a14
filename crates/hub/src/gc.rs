//! Garbage collection of objects no manifest references (issue 10).
//!
//! A gateway uploads a package's objects before its manifest, and may be cut off in between,
//! so an unreferenced object is kept for a grace period (`gc_grace_secs`) after its last
//! upload. Then: (1) holdings no manifest of their facility references are released;
//! (2) blobs no facility holds, and older than the grace period, are deleted; (3) temporary
//! files of uploads untouched for the grace period are deleted; (4) upload sessions untouched
//! for `upload_session_ttl_secs` are deleted with their chunks, and chunk directories of no
//! session (a crash between the two deletions, a chunk that arrived after its session's
//! commit) once untouched for the grace period. `hub serve` runs this every
//! `gc_interval_secs`; `hub gc` runs it once. Only counts are logged, never a hash.
//!
//! A collection racing an upload of the same object is safe: the upload resets the blob's
//! age and its holding, and a manifest whose object vanished anyway gets 409 and the gateway
//! sends the object again.

use crate::store::{MetaStore, ObjectStore, Result};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// What one collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Holdings released (objects a facility held without a manifest naming them).
    pub holdings_released: u64,
    /// Blobs deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Stale temporary files deleted.
    pub temp_deleted: u64,
    /// Upload sessions expired (deleted with their chunks).
    pub uploads_expired: u64,
    /// Chunk directories deleted that belonged to no session.
    pub orphaned_parts_deleted: u64,
}

/// How long collection keeps things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Unreferenced objects, temporary files and orphaned chunks younger than this stay
    /// (`gc_grace_secs`).
    pub grace: Duration,
    /// Upload sessions touched within this stay (`upload_session_ttl_secs`).
    pub upload_ttl: Duration,
}

/// Collect once, as of `now`, under `policy`.
pub fn collect(
    objects: &dyn ObjectStore,
    meta: &dyn MetaStore,
    policy: &GcPolicy,
    now: SystemTime,
) -> Result<GcReport> {
    let cutoff = now.checked_sub(policy.grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report =
        GcReport { holdings_released: meta.release_unreferenced(cutoff)?, ..GcReport::default() };
    objects.for_each(&mut |entry| {
        if entry.modified < cutoff
            && !meta.object_held(&entry.sha256)?
            && objects.remove(&entry.sha256)?
        {
            report.objects_deleted += 1;
            report.bytes_freed += entry.size;
        }
        Ok(())
    })?;
    report.temp_deleted = objects.remove_stale_temp(cutoff)?;

    // Sessions first, then their chunks: a crash in between leaves chunks of no session,
    // which the sweep below deletes.
    let ttl_cutoff = now.checked_sub(policy.upload_ttl).unwrap_or(SystemTime::UNIX_EPOCH);
    let expired = meta.expire_uploads(ttl_cutoff)?;
    for upload in &expired.sessions {
        objects.remove_parts(upload)?;
    }
    report.uploads_expired = expired.sessions.len() as u64;
    objects.for_each_parts(&mut |entry| {
        if entry.modified < cutoff
            && !meta.upload_open(&entry.upload)?
            && objects.remove_parts(&entry.upload)?
        {
            report.orphaned_parts_deleted += 1;
        }
        Ok(())
    })?;
    Ok(report)
}

/// Log one collection's counts.
pub(crate) fn log(report: &GcReport) {
    tracing::info!(
        holdings_released = report.holdings_released,
        objects_deleted = report.objects_deleted,
        bytes_freed = report.bytes_freed,
        temp_deleted = report.temp_deleted,
        uploads_expired = report.uploads_expired,
        orphaned_parts_deleted = report.orphaned_parts_deleted,
        "garbage collection"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsObjectStore, SqliteMetaStore};
    use fgw_format::ids::{DeviceId, FacilityId, Sha256Hex};
    use fgw_format::package::{Body, DeidInfo, ExamRecord, FileEntry, Manifest};

    #[test]
    fn unreferenced_objects_go_after_the_grace_period_referenced_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FsObjectStore::open(&dir.path().join("objects")).unwrap();
        let meta = SqliteMetaStore::open(&dir.path().join("hub.sqlite")).unwrap();
        let (f1, f2) = (FacilityId::new("F0001").unwrap(), FacilityId::new("F0002").unwrap());
        let (kept, orphan, shared) =
            (b"kept".as_slice(), b"orphan".as_slice(), b"shared".as_slice());
        for (f, bytes) in [(&f1, kept), (&f1, orphan), (&f1, shared), (&f2, shared)] {
            let sha = Sha256Hex::of(bytes);
            objects.put(&sha, bytes).unwrap();
            meta.hold_object(f, &sha, bytes.len() as u64, u64::MAX).unwrap();
        }
        // F0001 references `kept`, F0002 references `shared`; F0001's holding of `shared`
        // is released but the blob stays for F0002.
        for (f, bytes) in [(&f1, kept), (&f2, shared)] {
            let m = Manifest {
                format: fgw_format::package::FORMAT.into(),
                format_version: fgw_format::package::FORMAT_VERSION,
                facility_id: f.clone(),
                body: Body::Exam(ExamRecord {
                    exam_pid: "e-1".into(),
                    revision: 1,
                    ..Default::default()
                }),
                files: vec![FileEntry {
                    path: "images/001.jpg".into(),
                    sha256: Sha256Hex::of(bytes),
                    size: bytes.len() as u64,
                    media_type: "image/jpeg".into(),
                }],
                deid: DeidInfo {
                    method: "t".into(),
                    tool_version: "0".into(),
                    policy_id: "p".into(),
                    policy_version: 1,
                    actions: vec![],
                },
            };
            let raw = m.to_bytes();
            let dev = DeviceId::new("gw").unwrap();
            meta.record_package(f, &dev, &Manifest::id_of(&raw), &m, &raw).unwrap();
        }
        let grace = Duration::from_secs(3600);
        let policy = GcPolicy { grace, upload_ttl: grace };
        // Within the grace period nothing goes.
        let r = collect(&objects, &meta, &policy, SystemTime::now()).unwrap();
        assert_eq!(r, GcReport::default());
        // After it: the orphan and F0001's unreferenced holding of `shared`.
        let later = SystemTime::now() + grace + Duration::from_secs(1);
        let r = collect(&objects, &meta, &policy, later).unwrap();
        assert_eq!(r.holdings_released, 2);
        assert_eq!((r.objects_deleted, r.bytes_freed), (1, orphan.len() as u64));
        assert!(!objects.has(&Sha256Hex::of(orphan)).unwrap());
        assert!(objects.has(&Sha256Hex::of(kept)).unwrap());
        assert!(objects.has(&Sha256Hex::of(shared)).unwrap());
        assert_eq!(meta.held_size(&f1, &Sha256Hex::of(shared)).unwrap(), None);
        assert_eq!(meta.held_size(&f2, &Sha256Hex::of(shared)).unwrap(), Some(6));
        assert_eq!(collect(&objects, &meta, &policy, later).unwrap(), GcReport::default());
    }

    #[test]
    fn expired_sessions_and_orphaned_chunks_are_deleted() {
        use crate::store::{UploadAdmission, UploadRecord};
        use fgw_format::ids::UploadId;
        let dir = tempfile::tempdir().unwrap();
        let objects = FsObjectStore::open(&dir.path().join("objects")).unwrap();
        let meta = SqliteMetaStore::open(&dir.path().join("hub.sqlite")).unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        let admit = UploadAdmission { max_open: 8, quota: u64::MAX };
        let open = |bytes: &[u8]| {
            let sha = Sha256Hex::of(bytes);
            let rec = UploadRecord {
                upload_id: UploadId::derive(&f1, &sha),
                facility: f1.clone(),
                sha256: sha,
                size: bytes.len() as u64,
                chunk_bytes: 4,
                opened_by: DeviceId::new("gw-1").unwrap(),
            };
            meta.open_upload(&rec, admit).unwrap();
            let part = &bytes[..4];
            let mut w = objects.part_writer(&rec.upload_id, 0, 0, &Sha256Hex::of(part)).unwrap();
            w.write(part).unwrap();
            w.finish().unwrap();
            rec.upload_id
        };
        let session = open(b"session bytes");
        // Chunks whose session is gone (committed, then a late chunk arrived).
        let orphan = open(b"orphan bytes");
        meta.drop_upload(&f1, &orphan).unwrap();

        let policy =
            GcPolicy { grace: Duration::from_secs(3600), upload_ttl: Duration::from_secs(7200) };
        let r = collect(&objects, &meta, &policy, SystemTime::now()).unwrap();
        assert_eq!(r, GcReport::default());
        // After the grace period: the orphaned chunks go, the open session stays.
        let later = SystemTime::now() + Duration::from_secs(3601);
        let r = collect(&objects, &meta, &policy, later).unwrap();
        assert_eq!((r.uploads_expired, r.orphaned_parts_deleted), (0, 1));
        assert!(objects.part_size(&orphan, 0).unwrap().is_none());
        assert_eq!(objects.part_size(&session, 0).unwrap(), Some(4));
        // After the session lifetime: the session and its chunks.
        let later = SystemTime::now() + Duration::from_secs(7201);
        let r = collect(&objects, &meta, &policy, later).unwrap();
        assert_eq!((r.uploads_expired, r.orphaned_parts_deleted), (1, 0));
        assert!(meta.upload_state(&f1, &session).unwrap().is_none());
        assert!(objects.part_size(&session, 0).unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("objects/parts")).unwrap().count(), 0);
    }
}
