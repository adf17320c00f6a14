//! Waiting for room: how the daemon meets a full disk or a stage quota (the policy is
//! `crate::storage`). New input is refused while ingest is paused; a write of a stage after
//! ingest (an outbox package, a state transition, a move into quarantine) waits and is tried
//! again with a back-off. Nothing the box accepted is dropped, and the daemon never ends for
//! lack of space. Pauses are logged when they begin and end (part and reason code, never a
//! value) and recorded for `gateway status`.

use super::backoff::Backoff;
use super::{Gateway, PipelineError};
use crate::spool::SpoolError;
use crate::state::{MetaKey, StateError};
use crate::storage::{self, FreeSpace, Levels, PauseReason, Store, RETRY_FIRST, RETRY_MAX};
use fgw_deid::DeidPackage;
use fgw_format::ids::PackageId;
use fgw_ingest::dicom_pull::{self, PullError};
use fgw_ingest::dicom_scp::Uid;
use fgw_outbound::outbox::OutboxError;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The part that takes new input (export, HL7 listener, DICOM SCP): one pause for all.
pub(super) const INGEST: &str = "ingest";

/// Bytes of a seal in the outbox (hex HMAC-SHA-256).
const SEAL_BYTES: u64 = 64;

impl PipelineError {
    /// Why this error means "no room" (a refusal by the storage policy, ENOSPC or EDQUOT on a
    /// file, SQLITE_FULL), if it does.
    pub(crate) fn out_of_space(&self) -> Option<PauseReason> {
        let full = match self {
            PipelineError::Storage(r) => return Some(*r),
            PipelineError::State(e) => e.is_disk_full(),
            PipelineError::Spool(SpoolError::Io { source, .. }) => storage::io_is_full(source),
            PipelineError::Outbox(OutboxError::Io { source, .. }) => storage::io_is_full(source),
            _ => false,
        };
        full.then_some(PauseReason::DiskFull)
    }
}

/// A stage that ended because the daemon stopped while it waited for room ended normally.
pub(super) fn stopped_is_ok(r: Result<(), PipelineError>) -> Result<(), PipelineError> {
    match r {
        Err(PipelineError::Stopping) => Ok(()),
        other => other,
    }
}

/// What a package adds to the outbox: its files, its manifest and its seal. Objects another
/// package already stored are counted again; the next collection corrects the count.
fn package_bytes(pkg: &DeidPackage) -> u64 {
    let files: u64 = pkg.files().iter().map(|(_, b)| b.len() as u64).sum();
    files + pkg.manifest_bytes().len() as u64 + SEAL_BYTES
}

impl Gateway {
    /// What the stores hold and what is free, now. A filesystem that cannot be asked counts
    /// as roomy: the writes themselves still report ENOSPC.
    pub(super) fn levels(&self) -> Levels {
        let free = storage::free_space(&self.cfg.state_dir).unwrap_or_else(|e| {
            debug!(error = %e, "statvfs of the state directory failed");
            FreeSpace { bytes: u64::MAX, total_bytes: u64::MAX, inodes: None }
        });
        Levels {
            free,
            used: [self.spool.bytes(), self.outbox_bytes.get(), self.quarantine.bytes()],
        }
    }

    /// Whether new input of about `incoming` bytes may be accepted now. A refusal pauses
    /// ingest with its reason; an admission ends the pause.
    pub(super) fn admit_input(&self, incoming: u64) -> Result<(), PauseReason> {
        let refused = storage::input_refusals(&self.cfg.storage, &self.levels(), incoming);
        match refused.first() {
            Some(&r) => {
                self.paused(INGEST, r, None);
                Err(r)
            }
            None => {
                self.resumed(INGEST);
                Ok(())
            }
        }
    }

    /// While ingest is paused, look again with no input in hand, so the pause ends (in the
    /// log and in `gateway status`) once room returned even if no sender tried meanwhile.
    pub(super) fn recheck_ingest(&self) {
        if let Some(reason) = self.pauses.reason(INGEST) {
            if reason == PauseReason::DiskFull {
                self.make_room();
            }
            let _ = self.admit_input(0);
        }
    }

    /// Whether ingest is paused.
    pub(super) fn ingest_paused(&self) -> bool {
        self.pauses.reason(INGEST).is_some()
    }

    /// `part` waits for room: logged and recorded when its state changes, not at each retry.
    /// `error` is the failed write's error, when one failed (paths and ids, never values).
    pub(super) fn paused(
        &self,
        part: &'static str,
        reason: PauseReason,
        error: Option<&dyn std::fmt::Display>,
    ) {
        if reason == PauseReason::DiskFull {
            self.make_room();
        }
        let changed = self.pauses.pause(part, reason);
        if changed.part {
            let l = self.levels();
            let error =
                error.map_or_else(|| "none: refused before writing".into(), |e| e.to_string());
            warn!(
                part, reason = reason.code(), free_bytes = l.free.bytes,
                min_free_bytes = self.cfg.storage.min_free_bytes,
                spool_bytes = l.used(Store::Spool), outbox_bytes = l.used(Store::Outbox),
                quarantine_bytes = l.used(Store::Quarantine), %error,
                "storage: paused, waiting for room; resumes by itself"
            );
        }
        if changed.reasons.is_some() {
            self.record_pauses();
        }
    }

    /// What the box can free by itself on a full disk: the state database's log, which
    /// SQLite checkpoints only once it reaches about 4 MiB (a disk may fill up before it
    /// does, and then no write of the database succeeds again). At most once a second.
    fn make_room(&self) {
        if !self.pauses.checkpoint_due(std::time::Duration::from_secs(1)) {
            return;
        }
        let before = self.levels().free.bytes;
        match self.db.checkpoint() {
            Ok(done) => {
                let after = self.levels().free.bytes;
                debug!(
                    truncated = done,
                    freed_bytes = after.saturating_sub(before),
                    "state database log checkpointed for room"
                );
            }
            Err(e) => debug!(error = %e, "state database log not checkpointed"),
        }
    }

    /// `part` has room again.
    pub(super) fn resumed(&self, part: &'static str) {
        let changed = self.pauses.resume(part);
        if changed.part {
            info!(part, "storage: room again, resumed");
        }
        if changed.reasons.is_some() {
            self.record_pauses();
        }
    }

    /// Record the reasons in force for `gateway status`: "<since> <code>,<code>". Best
    /// effort: the disk may be too full for this very write (status measures the room
    /// itself too).
    fn record_pauses(&self) {
        let _one_at_a_time = self.pauses.recording();
        let reasons = self.pauses.current();
        let written = if reasons.is_empty() {
            self.db.clear_meta(MetaKey::StoragePaused)
        } else {
            let since = self
                .db
                .meta(MetaKey::StoragePaused)
                .ok()
                .flatten()
                .and_then(|v| v.split_once(' ').map(|(t, _)| t.to_string()))
                .unwrap_or_else(|| {
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
            let codes: Vec<&str> = reasons.iter().map(|r| r.code()).collect();
            self.db.set_meta(MetaKey::StoragePaused, &format!("{since} {}", codes.join(",")))
        };
        if let Err(e) = written {
            debug!(error = %e, "storage pause not recorded");
        }
    }

    /// At start: no pause is in force yet (a record left by an earlier run goes), and the
    /// log says where the room stands.
    pub(super) fn start_storage(&self) {
        if let Err(e) = self.db.clear_meta(MetaKey::StoragePaused) {
            debug!(error = %e, "old storage pause record not cleared");
        }
        let l = self.levels();
        info!(
            free_bytes = l.free.bytes,
            min_free_bytes = self.cfg.storage.min_free_bytes,
            spool_bytes = l.used(Store::Spool),
            outbox_bytes = l.used(Store::Outbox),
            quarantine_bytes = l.used(Store::Quarantine),
            "storage"
        );
    }

    fn retry_outcome<T>(
        &self,
        part: &'static str,
        r: Result<T, PipelineError>,
    ) -> Result<Result<T, ()>, PipelineError> {
        match r {
            Ok(v) => {
                if self.pauses.reason(part).is_some() {
                    self.resumed(part);
                }
                Ok(Ok(v))
            }
            Err(e) => match e.out_of_space() {
                Some(reason) => {
                    self.paused(part, reason, Some(&e));
                    Ok(Err(()))
                }
                None => Err(e),
            },
        }
    }

    /// Run `op`, a write of `part` that needs room, until it succeeds: a failure for lack of
    /// space pauses `part` and tries again after a back-off (250 ms doubling to 5 s,
    /// jittered); any other error is returned. [`PipelineError::Stopping`] when the daemon
    /// stops meanwhile.
    pub(super) async fn persist<T, E: Into<PipelineError>>(
        &self,
        part: &'static str,
        mut op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, PipelineError> {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            if let Ok(v) = self.retry_outcome(part, op().map_err(Into::into))? {
                return Ok(v);
            }
            if self.pauses.wait(backoff.wait()).await {
                return Err(PipelineError::Stopping);
            }
        }
    }

    /// [`Gateway::persist`] on a blocking thread (the gate's workers).
    pub(super) fn persist_blocking<T, E: Into<PipelineError>>(
        &self,
        part: &'static str,
        mut op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, PipelineError> {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            if let Ok(v) = self.retry_outcome(part, op().map_err(Into::into))? {
                return Ok(v);
            }
            if self.pauses.wait_blocking(backoff.wait()) {
                return Err(PipelineError::Stopping);
            }
        }
    }

    /// Store a package in the outbox, waiting (on this blocking thread) while the outbox is at
    /// its quota or less than half the floor is free. Each wait first collects what uploads
    /// left behind, which is what makes room here.
    pub(super) fn store_package(
        &self,
        part: &'static str,
        pkg: &DeidPackage,
    ) -> Result<PackageId, PipelineError> {
        let size = package_bytes(pkg);
        let mut retried = false;
        self.persist_blocking(part, || {
            if std::mem::replace(&mut retried, true) && self.pauses.reason(part).is_some() {
                self.gc_outbox()?;
            }
            let levels = self.levels();
            if let Some(r) = storage::stage_refusal(&self.cfg.storage, &levels, Store::Outbox, size)
            {
                return Err(PipelineError::Storage(r));
            }
            let id = self.outbox.put(pkg)?;
            self.outbox_bytes.add(size);
            Ok(id)
        })
    }

    /// Removes outbox packages no live item refers to: a kill between an item's `acked`
    /// commit and its package's removal, or after a re-export superseded a revision whose
    /// package was waiting, leaves one behind, and nothing else would ever delete it. Run
    /// at start, before the stages (no package is being written), and before [`Self::gc_outbox`]
    /// so their objects go too.
    pub(super) fn prune_outbox(&self) -> Result<(), PipelineError> {
        let live = self.db.live_packages()?;
        for id in self.outbox.package_ids()? {
            if !live.contains(&id) {
                self.outbox.remove(&id)?;
                info!(package = %id, "outbox package of a finished item removed");
            }
        }
        Ok(())
    }

    /// Collect unreferenced outbox objects, then count the outbox again (between collections
    /// the count runs high: shared objects, and objects of acknowledged packages, which only
    /// a collection deletes). A collection that finds no room (moving a manifest aside) is
    /// tried again next time.
    pub(super) fn gc_outbox(&self) -> Result<(), PipelineError> {
        if let Err(e) = self.outbox.gc() {
            let e = PipelineError::from(e);
            if e.out_of_space().is_none() {
                return Err(e);
            }
            warn!(error = %e, "outbox collection found no room; tried again later");
        }
        match storage::dir_bytes(&self.cfg.outbox_dir()) {
            Ok(n) => self.outbox_bytes.set(n),
            Err(e) => warn!(error = %e, "outbox not counted; keeping the running count"),
        }
        Ok(())
    }

    /// A write that only keeps a fact for `gateway status` (attempts, last error, last
    /// upload): skipped, not waited for, on a full disk and already under half the floor,
    /// where the room left is the state transitions'. The upload it describes must go on:
    /// uploads are what free the space.
    pub(super) fn soft<T>(
        &self,
        write: impl FnOnce() -> Result<T, StateError>,
    ) -> Result<Option<T>, PipelineError> {
        if self.levels().free.bytes < self.cfg.storage.min_free_bytes / 2 {
            return Ok(None);
        }
        match write() {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_disk_full() => {
                debug!(error = %e, "status fact not written: no room");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Housekeeping of the main loop (finishing batches, the retention purge): a failure for
    /// lack of room pauses `part` until the next round instead of ending the daemon.
    pub(super) fn tolerate<T>(
        &self,
        part: &'static str,
        r: Result<T, PipelineError>,
    ) -> Result<Option<T>, PipelineError> {
        Ok(self.retry_outcome(part, r)?.ok())
    }
}

/// The DICOM pull, started again after a state database write found no room: the pull ends
/// on any state error, and its watermark is durable, so starting it again resumes the window.
pub(super) async fn pull_until_stopped(
    gw: Arc<Gateway>,
    stop: watch::Receiver<bool>,
) -> Result<(), PullError> {
    const PART: &str = "dicom-pull";
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    loop {
        let g = gw.clone();
        let key = move |uid: &Uid| g.gate.instance_key(uid);
        let (cfg, ae) = (gw.cfg.dicom_pull.clone(), gw.cfg.dicom_scp.ae_title.clone());
        let e = match dicom_pull::run(cfg, ae, gw.db.clone(), key, stop.clone()).await {
            Err(PullError::State(e))
                if e.0.downcast_ref::<StateError>().is_some_and(StateError::is_disk_full) =>
            {
                e
            }
            other => return other,
        };
        gw.paused(PART, PauseReason::DiskFull, Some(&e));
        if gw.pauses.wait(backoff.wait()).await || *stop.borrow() {
            return Ok(());
        }
        // Tried again from here; a pull that fails the same way pauses again.
        let levels = gw.levels();
        if storage::stage_refusal(&gw.cfg.storage, &levels, Store::Spool, 0).is_none() {
            gw.resumed(PART);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use fgw_format::ids::QueueId;
    use std::path::Path;

    fn gateway(dir: &Path, storage: &str) -> Gateway {
        let text = format!(
            "facility_id = \"F0001\"\nstate_dir = \"{}\"\n[storage]\n{storage}\n",
            dir.display()
        );
        let cfg = GatewayConfig::from_toml(Path::new("/etc/g.toml"), &text).unwrap();
        Gateway::open(cfg).unwrap()
    }

    fn full() -> StateError {
        let source = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        StateError::Sql { op: "test write", source }
    }

    /// Admission follows the spool's and the quarantine's byte counts as files come and go,
    /// and the daemon's record for `gateway status` follows the pause.
    #[test]
    fn quotas_pause_ingest_and_removal_resumes_it() {
        let d = tempfile::tempdir().unwrap();
        let gw = gateway(
            d.path(),
            "min_free_bytes = 0\nspool_quota_bytes = 4096\nquarantine_quota_bytes = 2048",
        );
        gw.start_storage();
        assert_eq!(gw.admit_input(100), Ok(()));
        let a = QueueId::random();
        gw.spool.put_bytes(&a, &[7; 3000]).unwrap();
        assert_eq!(gw.admit_input(100), Ok(()), "3 KiB of 4 KiB used");
        assert_eq!(gw.admit_input(2000), Err(PauseReason::SpoolQuota));
        assert!(gw.ingest_paused());
        let recorded = gw.db.meta(MetaKey::StoragePaused).unwrap().unwrap();
        assert!(recorded.ends_with(" spool-quota"), "{recorded}");
        // Moved into quarantine: the spool has room, the quarantine is over its quota.
        gw.spool.move_to(&a, &gw.quarantine).unwrap();
        assert_eq!(gw.admit_input(2000), Err(PauseReason::QuarantineQuota));
        let status = crate::storage::status(&gw.cfg, &gw.db).unwrap();
        assert_eq!(status.reasons(), [PauseReason::QuarantineQuota]);
        assert_eq!(status.to_json()["state"], "paused");
        // The purge (or an operator) makes room: the next look resumes ingest.
        gw.quarantine.remove(&a).unwrap();
        gw.recheck_ingest();
        assert!(!gw.ingest_paused());
        assert_eq!(gw.db.meta(MetaKey::StoragePaused).unwrap(), None);
        let status = crate::storage::status(&gw.cfg, &gw.db).unwrap();
        assert_eq!(status.to_json()["state"], "running");
        assert_eq!(status.to_json()["stores"]["quarantine"]["quota_bytes"], 2048);
    }

    /// A floor larger than any disk pauses ingest as disk-full, and `gateway status` says so
    /// from its own measurement, with no daemon record.
    #[test]
    fn under_the_floor_is_disk_full() {
        let d = tempfile::tempdir().unwrap();
        let gw = gateway(d.path(), &format!("min_free_bytes = {}", u64::MAX / 2));
        assert_eq!(gw.admit_input(0), Err(PauseReason::DiskFull));
        gw.db.clear_meta(MetaKey::StoragePaused).unwrap();
        let status = crate::storage::status(&gw.cfg, &gw.db).unwrap();
        assert_eq!(status.reasons(), [PauseReason::DiskFull]);
        assert!(status.text_lines()[0].contains("PAUSED (disk-full)"), "{:?}", status.text_lines());
    }

    /// A write that finds no room (SQLITE_FULL) is tried again until it succeeds; another
    /// error is returned at once; a stop ends the wait.
    #[tokio::test]
    async fn persist_waits_out_a_full_disk() {
        let d = tempfile::tempdir().unwrap();
        let gw = gateway(d.path(), "min_free_bytes = 0");
        let mut failures = 2;
        let v = gw
            .persist("test", || {
                if failures > 0 {
                    failures -= 1;
                    Err(full())
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!((v, failures), (7, 0));
        assert_eq!(gw.pauses.reason("test"), None, "resumed after the success");

        let r: Result<(), _> =
            gw.persist("test", || Err(StateError::NotFound { id: QueueId::random() })).await;
        assert!(matches!(r, Err(PipelineError::State(StateError::NotFound { .. }))));

        gw.pauses.stop();
        let r: Result<(), _> = gw.persist("test", || Err(full())).await;
        assert!(matches!(r, Err(PipelineError::Stopping)));
        assert_eq!(gw.pauses.reason("test"), Some(PauseReason::DiskFull));
        assert!(stopped_is_ok(r).is_ok());
    }

    /// The listeners answer "retry later" without writing anything: HL7 gets the sink error
    /// the listener turns into `AE`, DICOM the one it turns into 0xA700.
    #[test]
    fn listeners_refuse_without_room_and_keep_nothing() {
        use super::super::listeners::{SpoolDicomSink, SpoolSink};
        use fgw_ingest::dicom_scp::{AeTitle, DicomSink, ReceivedObject, SinkError as DicomError};
        use fgw_ingest::hl7::{ReportSink, SinkError};
        let d = tempfile::tempdir().unwrap();
        let gw = Arc::new(gateway(d.path(), &format!("min_free_bytes = {}", u64::MAX / 2)));
        let notify = Arc::new(tokio::sync::Notify::new());
        let report = fgw_records::RawReport {
            source: "hl7 test".into(),
            fields: Default::default(),
            observed: None,
            status: None,
            text: "text".into(),
        };
        let hl7 = SpoolSink { gw: gw.clone(), notify: notify.clone() };
        assert_eq!(hl7.accept(report), Err(SinkError::Unavailable("storage paused: disk-full")));
        let object = ReceivedObject {
            peer: "127.0.0.1".parse().unwrap(),
            calling_ae: AeTitle::new("ENDO1").unwrap(),
            sop_class_uid: Uid::new("1.2.840.10008.5.1.4.1.1.77.1.1").unwrap(),
            sop_instance_uid: Uid::new("1.2.3.4").unwrap(),
            transfer_syntax: Uid::new("1.2.840.10008.1.2.1").unwrap(),
            bytes: vec![0; 1000],
        };
        let scp = SpoolDicomSink { gw: gw.clone(), notify };
        assert_eq!(scp.accept(object), Err(DicomError::Unavailable("storage paused: disk-full")));
        assert_eq!(gw.spool.len().unwrap(), 0);
        assert_eq!(gw.db.counts(crate::state::Origin::Daemon).unwrap().values().sum::<u64>(), 0);
    }

    #[test]
    fn out_of_space_errors_are_recognised() {
        let enospc = std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32);
        let e = PipelineError::Spool(SpoolError::Io { path: "x".into(), source: enospc });
        assert_eq!(e.out_of_space(), Some(PauseReason::DiskFull));
        assert_eq!(PipelineError::from(full()).out_of_space(), Some(PauseReason::DiskFull));
        let eio = std::io::Error::from_raw_os_error(nix::errno::Errno::EIO as i32);
        let e = PipelineError::Spool(SpoolError::Io { path: "x".into(), source: eio });
        assert_eq!(e.out_of_space(), None);
        assert_eq!(
            PipelineError::Storage(PauseReason::OutboxQuota).out_of_space(),
            Some(PauseReason::OutboxQuota)
        );
    }
}
