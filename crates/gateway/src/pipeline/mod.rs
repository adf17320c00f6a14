//! The daemon: stages as tokio tasks joined by bounded channels.
//!
//! ```text
//! ingest (watch export root) ─▶ normalize ─▶ deid (the gate) ─▶ uplink (mTLS) ─▶ ack
//! ```
//!
//! Each stage records its transition in the state database before handing the item on, so
//! on start the daemon re-queues whatever was in flight (`resume`). Channels are bounded: a
//! slow hub makes the gate wait, which makes ingest wait; memory stays bounded.

mod backoff;
pub(crate) mod contain;
mod ingest;
mod lanes;
mod listeners;
mod room;
mod spooled;
mod stages;

use crate::config::GatewayConfig;
use crate::gate_service::GateService;
use crate::secrets::Secrets;
use crate::spool::{Spool, SpoolError};
use crate::state::{
    BatchLabel, Db, DicomInsert, DicomSeen, ItemKind, ItemReason, ItemState, Lane, MetaKey,
    NewItem, Origin, StateError, Update,
};
use crate::tunnel::BoxTunnel;
use fgw_deid::QuarantineReason;
use fgw_format::ids::QueueId;
use fgw_ingest::dicom_pull::PullMode;
use fgw_ingest::dicom_scp::{DicomScp, ScpMode};
use fgw_ingest::hl7::{Hl7Listener, Hl7Mode};
use fgw_outbound::outbox::{Outbox, OutboxError};
use fgw_outbound::uplink::{ClientCredential, Uplink, UplinkError};
use fgw_records::RawExam;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The WireGuard tunnel could not be brought up.
    #[error(transparent)]
    Tunnel(#[from] crate::tunnel::BoxTunnelError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The encrypted spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The secret store could not be opened.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// The uplink could not be set up (certificates, hub address).
    #[error("uplink setup: {0}")]
    Uplink(#[from] UplinkError),
    /// The box could not enroll (the hub refused it: unknown or revoked serial).
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// A stage or listener ended with an error or panicked.
    #[error("a pipeline stage stopped unexpectedly: {0}")]
    Stage(String),
    /// The storage policy refused a write for now (`crate::storage`): the stage waits.
    #[error("storage paused: {0}")]
    Storage(crate::storage::PauseReason),
    /// The daemon stopped while a stage waited for room (not a failure).
    #[error("stopped while waiting for room")]
    Stopping,
}

/// When the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until a shutdown signal (the appliance).
    Forever,
    /// Until every ready batch is ingested and every item is acknowledged or quarantined
    /// (demo, tests, catch-up runs).
    UntilIdle,
}

/// Everything the stages share.
struct Gateway {
    cfg: GatewayConfig,
    db: Db,
    spool: Spool,
    quarantine: Spool,
    outbox: Outbox,
    /// The gate, built as `gateway deid` builds it.
    gate: GateService,
    /// Key of the batch labels: state and logs name a batch folder by its label only.
    batch_key: ring::hmac::Key,
    /// Bytes in the outbox (the spool and the quarantine count their own): walked at open
    /// and after each collection, added to by each package stored.
    outbox_bytes: crate::storage::ByteCounter,
    /// The parts waiting for room, and the flag that ends their waits (`room`).
    pauses: crate::storage::Pauses,
}

impl Gateway {
    /// Open the state directory (database, secret store, spool, quarantine, outbox).
    fn open(cfg: GatewayConfig) -> Result<Gateway, PipelineError> {
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|source| SpoolError::Io { path: cfg.state_dir.clone(), source })?;
        // Refuses (rather than regenerates) a missing root secret when state exists.
        let secrets = Secrets::open_for(&cfg)?;
        let db = Db::open(&cfg.db_path())?;
        let batch_key = secrets.batch_label_key();
        // A database from before the labels (development boxes) holds folder names: once.
        let relabelled = db.relabel_batches(|name| BatchLabel::of(&batch_key, name))?;
        if relabelled > 0 {
            info!(batches = relabelled, "batch folder names in the state database relabelled");
        }
        let spool = Spool::open(&cfg.spool_dir(), secrets.spool_key())?;
        let quarantine = Spool::open(&cfg.quarantine_dir(), secrets.spool_key())?;
        let outbox = Outbox::open(&cfg.outbox_dir(), secrets.outbox_key())?;
        let outbox_bytes = crate::storage::dir_bytes(&cfg.outbox_dir())
            .map_err(|source| SpoolError::Io { path: cfg.outbox_dir(), source })?;
        let gate = GateService::new(&cfg, &secrets);
        Ok(Gateway {
            cfg,
            db,
            spool,
            quarantine,
            outbox,
            gate,
            batch_key,
            outbox_bytes: crate::storage::ByteCounter::new(outbox_bytes),
            pauses: Default::default(),
        })
    }

    /// How state and logs name the batch folder `folder` (never by the name itself).
    fn batch_label(&self, folder: &str) -> BatchLabel {
        BatchLabel::of(&self.batch_key, folder)
    }

    /// Make a listener's input durable before it is acknowledged: write it to the encrypted
    /// spool, then record a `received` item. On failure nothing is left behind and the caller
    /// answers "retry later".
    fn accept_raw(
        &self,
        kind: ItemKind,
        source: String,
        write: impl FnOnce(&Spool, &QueueId) -> Result<(), SpoolError>,
    ) -> Result<QueueId, &'static str> {
        match self.accept_raw_once(kind, source, Lane::Current, None, write)? {
            Some(id) => Ok(id),
            None => unreachable!("input without a dedupe key is never a duplicate"),
        }
    }

    /// [`Gateway::accept_raw`], and with `dedupe` (DICOM: the SOP Instance UID's keyed
    /// pseudonym and the content digest) an input already accepted (same UID, same content) is
    /// dropped: `Ok(None)`. Another content under an accepted UID is kept, quarantined as a
    /// conflict (never dropped, never uploaded on its own): `Ok(Some(id))`.
    fn accept_raw_once(
        &self,
        kind: ItemKind,
        source: String,
        lane: Lane,
        dedupe: Option<(&str, &str)>,
        write: impl FnOnce(&Spool, &QueueId) -> Result<(), SpoolError>,
    ) -> Result<Option<QueueId>, &'static str> {
        let db_down = |e: StateError| {
            error!(error = %e, "input not recorded");
            "state database unavailable"
        };
        // Checked first so a duplicate costs no spool write.
        if let Some((key, digest)) = dedupe {
            if self.db.dicom_seen(key, digest).map_err(db_down)? == DicomSeen::SameContent {
                return Ok(None);
            }
        }
        let item = NewItem { lane, ..NewItem::new(kind, Origin::Daemon, source) };
        if let Err(e) = write(&self.spool, &item.id) {
            let e = PipelineError::from(e);
            if let Some(r) = e.out_of_space() {
                self.paused(room::INGEST, r, Some(&e));
                return Err(r.refusal());
            }
            error!(error = %e, "input not spooled");
            return Err("spool unavailable");
        }
        let recorded = match dedupe {
            None => self.db.insert(&item).map(|()| DicomInsert::Recorded),
            Some((key, digest)) => self.db.insert_dicom(&item, key, digest),
        };
        match recorded {
            Ok(DicomInsert::Recorded) => {}
            // The same input raced in on another connection and was recorded first.
            Ok(DicomInsert::Duplicate) => {
                let _ = self.spool.remove(&item.id);
                return Ok(None);
            }
            // Recorded quarantined; its raw data joins the quarantine (a crash before the
            // move is repaired at start, as for every quarantined item).
            Ok(DicomInsert::Conflict) => {
                warn!(item = %item.id, reason = "dicom-instance-conflict", "input kept on the box: same instance UID, other content");
                if let Err(e) = self.finish_raw(&item.id, true) {
                    error!(item = %item.id, error = %e, "conflicting input left in the spool until restart");
                }
                return Ok(Some(item.id));
            }
            Err(e) => {
                let _ = self.spool.remove(&item.id);
                if e.is_disk_full() {
                    let r = crate::storage::PauseReason::DiskFull;
                    self.paused(room::INGEST, r, Some(&e));
                    return Err(r.refusal());
                }
                return Err(db_down(e));
            }
        }
        debug!(item = %item.id, kind = ?kind, "input received");
        Ok(Some(item.id))
    }

    /// Raw data of an exam that is finished: delete it, or keep it in quarantine when some of
    /// its images (or the whole exam) stay on the box.
    fn finish_raw(&self, id: &QueueId, keep: bool) -> Result<(), PipelineError> {
        if keep {
            self.spool.move_to(id, &self.quarantine)?;
        } else {
            self.spool.remove(id)?;
        }
        Ok(())
    }

    fn quarantine_exam(
        &self,
        id: &QueueId,
        from: ItemState,
        reason: &QuarantineReason,
    ) -> Result<(), PipelineError> {
        self.quarantine_item(id, from, reason.clone().into())
    }

    /// Quarantine with any reason the state knows (the gate's, or a hub refusal).
    fn quarantine_item(
        &self,
        id: &QueueId,
        from: ItemState,
        reason: ItemReason,
    ) -> Result<(), PipelineError> {
        let code = reason.code();
        let update = Update { reason: Some(reason), ..Default::default() };
        match self.db.transition(id, from, ItemState::Quarantined, update) {
            Ok(()) => warn!(item = %id, reason = code, "exam quarantined"),
            // Already quarantined: a retry after the move below found no room.
            Err(StateError::WrongState { found: ItemState::Quarantined, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.finish_raw(id, true)
    }

    /// Repair after a crash: spool files whose item is already finished.
    fn repair_spool(&self) -> Result<(), PipelineError> {
        let dir_path = self.cfg.spool_dir();
        let io = |source| SpoolError::Io { path: dir_path.clone(), source };
        let dir = match std::fs::read_dir(&dir_path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e).into()),
        };
        for entry in dir {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write interrupted before its rename: never referenced by a row.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(stem) = name.strip_suffix(".fgws") else { continue };
            let Ok(id) = QueueId::new(stem) else { continue };
            match self.db.get(&id) {
                Ok(item) if item.state == ItemState::Acked => {
                    self.finish_raw(&id, item.images_withheld > 0)?
                }
                Ok(item) if item.state == ItemState::Quarantined => self.finish_raw(&id, true)?,
                Ok(item) if item.state == ItemState::Superseded => self.spool.remove(&id)?,
                Ok(_) => {}
                // A spool file without a row: the crash hit between the file and its row.
                // The row will be re-read from the batch, so this copy is an orphan.
                Err(StateError::NotFound { .. }) => self.spool.remove(&id)?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

type Job = (QueueId, Option<Box<RawExam>>);

/// Enrolls (retrying while the hub cannot be reached; in [`RunMode::UntilIdle`] a refusal
/// ends the run), starts the renewal task, and returns the uplink presenting the
/// operational certificate. `None` if shut down meanwhile.
async fn enrolled_uplink(
    cfg: &GatewayConfig,
    id_cfg: &crate::identity::IdentityConfig,
    mode: RunMode,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(Uplink, Option<BoxTunnel>)>, PipelineError> {
    use crate::identity::BoxIdentity;
    let (identity, wg_key) = crate::tunnel::attach_key(cfg, BoxIdentity::open(cfg, id_cfg)?)?;
    let identity = Arc::new(identity);
    // With several hub nodes, each attempt goes to the next one.
    let hubs: Vec<String> = cfg.uplink.hub_list().into_iter().map(String::from).collect();
    let mut attempt = 0usize;
    let connect = Duration::from_secs(cfg.uplink.connect_timeout_secs);
    let mut wait = Duration::from_secs(5);
    let enrollment = loop {
        let hub = &hubs[attempt % hubs.len()];
        attempt += 1;
        match identity.ensure_enrolled(hub, connect, false).await {
            Ok(enrollment) => break enrollment,
            Err(e) if mode == RunMode::UntilIdle && !e.is_transient() => return Err(e.into()),
            Err(e) => {
                error!(error = %e, retry_in_s = wait.as_secs(), "enrollment failed; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return Ok(None),
                }
                wait = (wait * 2).min(Duration::from_secs(300));
            }
        }
    };
    // The tunnel, when the box uses one and the hub offers it: uploads then go to the API's
    // address inside it, the only place the hub serves its API.
    let mut uplink_cfg = cfg.uplink.clone();
    let tunnel = match wg_key {
        None => None,
        Some(key) => {
            let peer = crate::tunnel::peer_of(&enrollment.config)?;
            let tunnel = BoxTunnel::up(&cfg.vpn, key, &peer)?;
            match &tunnel {
                Some(t) => {
                    info!(api = t.api_url(), "uploads go through the WireGuard tunnel");
                    uplink_cfg.hub_url = t.api_url().to_string();
                }
                None => warn!(
                    "vpn.mode is \"wireguard\" but the hub offers no tunnel; uploads go to \
                     uplink.hub_url"
                ),
            }
            tunnel
        }
    };
    let cert = identity.client_certificate()?;
    let credential = ClientCredential::Resolver {
        ca_cert: identity.ca_cert().to_path_buf(),
        resolver: cert.clone(),
    };
    // Renewal: checked every `renew_check_secs`; a renewed certificate is used by new
    // connections at once (the resolver is shared with the uplink's client).
    let every = Duration::from_secs(id_cfg.renew_check_secs);
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let hub = &hubs[attempt % hubs.len()];
            attempt += 1;
            match identity.ensure_enrolled(hub, connect, false).await {
                Ok(_) => {
                    if let Err(e) = identity.refresh(&cert) {
                        error!(error = %e, "renewed certificate not loaded");
                    }
                }
                Err(e) => error!(error = %e, "certificate renewal failed; trying again later"),
            }
        }
    });
    Ok(Some((Uplink::with_credential(&uplink_cfg, credential)?, tunnel)))
}

/// Why one run of the pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// Shutdown, or idle in [`RunMode::UntilIdle`].
    Stopped,
    /// A policy release was applied: run again with it in force.
    Reload,
}

/// Run the daemon until `shutdown` turns true (or until idle in [`RunMode::UntilIdle`]).
/// A policy release applied while running puts itself in force by a restart of the
/// pipeline inside the process: no reboot, and what was in flight resumes from the state
/// database as after any restart.
pub async fn run(
    mut cfg: GatewayConfig,
    mode: RunMode,
    shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    loop {
        match run_once(cfg.clone(), mode, shutdown.clone()).await? {
            RunEnd::Stopped => return Ok(()),
            RunEnd::Reload => {
                let release = crate::policy_store::overlay(&mut cfg);
                info!(
                    release = release.as_deref().unwrap_or("none"),
                    policy = %format!("{}@{}", cfg.deid.id, cfg.deid.version),
                    "policy release in force; pipeline restarted"
                );
            }
        }
    }
}

async fn run_once(
    cfg: GatewayConfig,
    mode: RunMode,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunEnd, PipelineError> {
    // The tunnel (if any) stays up until the daemon returns.
    let (uplink, tunnel) = match cfg.identity.clone() {
        None => (Uplink::new(&cfg.uplink)?, None),
        Some(id) => match enrolled_uplink(&cfg, &id, mode, &mut shutdown).await? {
            Some(uplink) => uplink,
            // Shut down while enrolling.
            None => return Ok(RunEnd::Stopped),
        },
    };
    let gw = Arc::new(Gateway::open(cfg)?);
    gw.start_storage();
    gw.repair_spool()?;
    gw.prune_outbox()?;
    gw.gc_outbox()?;
    // Retention (`quarantine.retention_days`): at start, then once a day (a purge that found
    // no room for its audit record is tried again at the next round).
    let days = gw.cfg.quarantine.retention_days;
    let purge = |gw: &Gateway| {
        let r = crate::maintenance::purge_with(&gw.db, &gw.quarantine, days);
        gw.tolerate("purge", r.map_err(PipelineError::from)).map(|done| done.is_some())
    };
    let mut last_purge = purge(&gw)?.then(std::time::Instant::now);
    let cap = gw.cfg.pipeline.channel_capacity;
    let (to_norm, norm_rx) = mpsc::channel::<Job>(cap);
    let (to_deid, deid_rx) = mpsc::channel::<Job>(cap);
    let (to_up, up_rx) = mpsc::channel::<QueueId>(cap);

    // Stops the report stage and the HL7 listener when the main loop ends (idle or shutdown).
    let (stop_tx, stop_rx) = watch::channel(false);
    let notify = Arc::new(tokio::sync::Notify::new());

    let norm = tokio::spawn(stages::normalize_stage(gw.clone(), norm_rx, to_deid.clone()));
    let gate = tokio::spawn(stages::deid_stage(gw.clone(), deid_rx, to_up.clone()));
    let vpn = match (gw.cfg.vpn.mode, &tunnel) {
        (crate::tunnel::VpnMode::Off, _) => crate::heartbeat::VpnState::Off,
        (_, Some(_)) => crate::heartbeat::VpnState::Up,
        (_, None) => crate::heartbeat::VpnState::Down,
    };
    let (beat_stop, beat_rx) = watch::channel(false);
    let beat_now = Arc::new(tokio::sync::Notify::new());
    let beat = tokio::spawn(heartbeats(gw.clone(), uplink.clone(), vpn, beat_rx, beat_now.clone()));
    let (reload_tx, mut reload_rx) = watch::channel(false);
    let updates =
        tokio::spawn(updates(gw.clone(), uplink.clone(), stop_rx.clone(), reload_tx, beat_now));
    let up = tokio::spawn(stages::uplink_stage(gw.clone(), uplink, up_rx, shutdown.clone()));
    let reports = tokio::spawn(spooled::spooled_stage(
        gw.clone(),
        ItemKind::Report,
        spooled::report_gate,
        notify.clone(),
        to_up.clone(),
        stop_rx.clone(),
    ));
    let dicom_notify = Arc::new(tokio::sync::Notify::new());
    let dicom = tokio::spawn(spooled::spooled_stage(
        gw.clone(),
        ItemKind::Dicom,
        spooled::dicom_gate,
        dicom_notify.clone(),
        to_up.clone(),
        stop_rx.clone(),
    ));
    let scp = match gw.cfg.dicom_scp.mode {
        ScpMode::Disabled => None,
        ScpMode::Enabled => {
            let scp = DicomScp::bind(&gw.cfg.dicom_scp)
                .await
                .map_err(|e| PipelineError::Stage(format!("dicom scp: {e}")))?;
            info!(addr = %scp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dicom scp up");
            let sink = listeners::SpoolDicomSink { gw: gw.clone(), notify: dicom_notify };
            Some(tokio::spawn(scp.serve(sink, stop_rx.clone())))
        }
    };
    // After the SCP is bound: the archive's C-STOREs for our C-MOVEs go there.
    let pull = match gw.cfg.dicom_pull.mode {
        PullMode::Disabled => None,
        PullMode::Enabled => {
            Some(tokio::spawn(room::pull_until_stopped(gw.clone(), stop_rx.clone())))
        }
    };
    let hl7 = match gw.cfg.hl7.mode {
        Hl7Mode::Disabled => None,
        Hl7Mode::Enabled => {
            let listener = Hl7Listener::bind(&gw.cfg.hl7)
                .await
                .map_err(|e| PipelineError::Stage(format!("hl7 listener: {e}")))?;
            info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "hl7 listener up");
            let sink = listeners::SpoolSink { gw: gw.clone(), notify };
            Some(tokio::spawn(listener.serve(sink, stop_rx.clone())))
        }
    };

    // Resume whatever was in flight, oldest first, before taking new input.
    for id in gw.db.ids_in_state(ItemState::Received, ItemKind::Exam)? {
        send(&to_norm, (id, None)).await?;
    }
    for id in gw.db.ids_in_state(ItemState::Normalized, ItemKind::Exam)? {
        send(&to_deid, (id, None)).await?;
    }
    for kind in [ItemKind::Exam, ItemKind::Report, ItemKind::Dicom] {
        for id in gw.db.ids_in_state(ItemState::Deidentified, kind)? {
            send(&to_up, id).await?;
        }
    }
    drop(to_deid);
    drop(to_up);

    let poll = Duration::from_secs(gw.cfg.export.poll_interval_secs);
    let mut stage_ended = false;
    let mut reloading = false;
    let mut reload_open = true;
    loop {
        // A stage that ends before it is told to (an error it cannot retry) would leave its
        // items waiting while ingest goes on: stop instead, loudly, so the service manager
        // restarts the daemon and the start-up repair runs.
        if [&norm, &gate, &up, &reports, &dicom].iter().any(|h| h.is_finished()) {
            error!("a pipeline stage stopped unexpectedly; the daemon stops");
            stage_ended = true;
            break;
        }
        let g = gw.clone();
        let tx = to_norm.clone();
        let new_items = tokio::task::spawn_blocking(move || ingest::scan_export(&g, &tx))
            .await
            .map_err(|e| joined("ingest", e))??;
        gw.tolerate("batches", ingest::finish_batches(&gw))?;
        if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600)) && purge(&gw)? {
            last_purge = Some(std::time::Instant::now());
        }
        gw.recheck_ingest();
        if mode == RunMode::UntilIdle
            && new_items == 0
            && !gw.ingest_paused()
            && pending(&gw.db)? == 0
        {
            break;
        }
        let wait = if mode == RunMode::UntilIdle { Duration::from_millis(200) } else { poll };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
            // The updater may end without asking (updates off): then stop listening.
            changed = reload_rx.changed(), if reload_open => match changed {
                Ok(()) => {
                    reloading = true;
                    break;
                }
                Err(_) => reload_open = false,
            },
        }
        if *shutdown.borrow() {
            break;
        }
    }
    drop(to_norm);
    let _ = stop_tx.send(true);
    // Stages waiting for room stop waiting (their items stay in their state for the next
    // start).
    gw.pauses.stop();
    if let Some(h) = hl7 {
        let _ = h.await;
    }
    if let Some(h) = pull {
        h.await
            .map_err(|e| joined("dicom pull", e))?
            .map_err(|e| PipelineError::Stage(format!("dicom pull: {e}")))?;
    }
    if let Some(h) = scp {
        let _ = h.await;
    }
    room::stopped_is_ok(dicom.await.map_err(|e| joined("dicom", e))?)?;
    for (name, h) in [("normalize", norm), ("deid", gate), ("reports", reports), ("uplink", up)] {
        room::stopped_is_ok(h.await.map_err(|e| joined(name, e))?)?;
    }
    let _ = updates.await;
    // A last heartbeat with the final counts, then the tunnel may go.
    let _ = beat_stop.send(true);
    let _ = beat.await;
    drop(tunnel);
    if stage_ended {
        return Err(PipelineError::Stage("a stage stopped before shutdown".into()));
    }
    Ok(if reloading { RunEnd::Reload } else { RunEnd::Stopped })
}

/// Asks the hub what its rollouts offer, every `update.check_secs` (the first time soon
/// after start), verifies with TUF and applies. A policy applied asks the daemon to
/// restart its pipeline (`reload`); every outcome goes out in a heartbeat at once. A release
/// that failed here is not tried again (the rollout counts the failure; a new release is
/// the fix).
async fn updates(
    gw: Arc<Gateway>,
    uplink: Uplink,
    mut stop: watch::Receiver<bool>,
    reload: watch::Sender<bool>,
    beat_now: Arc<tokio::sync::Notify>,
) {
    use crate::release_transport::{RepoSource, UplinkTransport};
    use crate::updater::{self, CheckError, Verdict};
    let settings = gw.cfg.update.clone();
    if settings.mode == crate::update_bundle::UpdateMode::Off {
        return;
    }
    if !settings.tuf_root.exists() {
        info!(path = %settings.tuf_root.display(), "no trusted release root: the box takes no release");
        return;
    }
    let transport = UplinkTransport::new(uplink.http_client().clone(), uplink.request_timeout())
        .resumable(updater::partial_dir(&gw.cfg));
    let source = RepoSource::Hub(transport, uplink.base_url().to_string());
    let mut wait = Duration::from_secs(2);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = Duration::from_secs(settings.check_secs);
        let offers = uplink
            .update_offers()
            .await
            .map(|o| o.offers)
            .map_err(|e| CheckError { class: "hub_unreachable".into(), message: e.to_string() });
        let g = gw.clone();
        let waiting =
            tokio::task::spawn_blocking(move || updater::waiting(&g.db)).await.unwrap_or(0);
        let (mut report, trusted) = updater::check(&gw.cfg, offers, &source, waiting).await;
        if let Some(e) = &report.error {
            warn!(class = %e.class, error = %e.message, "update check failed");
        }
        let Some(trusted) = trusted else { continue };
        // Not again what failed here before, nor what is staged or installing.
        for d in report.updates.iter_mut().filter(|d| d.verdict == Verdict::Install) {
            let key = if d.kind == "os" { MetaKey::UpdateOs } else { MetaKey::UpdatePolicy };
            let last: Option<fgw_format::package::protocol::UpdateReport> =
                gw.db.meta(key).ok().flatten().and_then(|j| serde_json::from_str(&j).ok());
            let Some(last) = last.filter(|l| Some(&l.version) == d.offered_version.as_ref()) else {
                continue;
            };
            match last.outcome.as_str() {
                "failed" | "refused" => {
                    d.verdict = Verdict::Wait;
                    d.reason = "this release failed on this box before".into();
                }
                // Staged, or installed and waiting for its reboot: nothing more to do.
                "staged" | "installing" => {
                    d.verdict = Verdict::Wait;
                    d.reason = format!("this release is {} on this box", last.outcome);
                }
                _ => {}
            }
        }
        let outcomes = updater::apply(&gw.cfg, &report, &trusted, &source, Some(&gw.db)).await;
        if !outcomes.is_empty() {
            beat_now.notify_one();
        }
        if outcomes.iter().any(|o| o.kind == "policy" && o.outcome == "installed") {
            let _ = reload.send(true);
            return;
        }
    }
}

/// Sends a heartbeat at start, every `fleet.heartbeat_secs`, and once more when `stop`
/// turns true. A heartbeat that cannot be built or sent is logged and skipped: it never
/// stops the daemon.
async fn heartbeats(
    gw: Arc<Gateway>,
    uplink: Uplink,
    vpn: crate::heartbeat::VpnState,
    mut stop: watch::Receiver<bool>,
    now: Arc<tokio::sync::Notify>,
) {
    let every = Duration::from_secs(gw.cfg.fleet.heartbeat_secs);
    loop {
        let g = gw.clone();
        let built =
            tokio::task::spawn_blocking(move || crate::heartbeat::build(&g.cfg, &g.db, vpn)).await;
        match built {
            Ok(Ok(hb)) => match uplink.heartbeat(&hb).await {
                Ok(()) => debug!("heartbeat sent"),
                Err(e) => warn!(error = %e, "heartbeat not sent; next in {}s", every.as_secs()),
            },
            Ok(Err(e)) => warn!(error = %e, "heartbeat not built"),
            Err(_) => warn!("heartbeat task failed"),
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
            _ = now.notified() => {}
        }
    }
}

/// A stage's task ended abnormally. A panic's message is not kept: it may quote the data
/// (the panic hook logged its location).
fn joined(stage: &str, e: tokio::task::JoinError) -> PipelineError {
    PipelineError::Stage(if e.is_panic() {
        format!("{stage}: panicked (message not logged)")
    } else {
        format!("{stage}: cancelled")
    })
}

async fn send<T>(tx: &mpsc::Sender<T>, v: T) -> Result<(), PipelineError> {
    tx.send(v).await.map_err(|_| PipelineError::Stage("channel closed".into()))
}

fn pending(db: &Db) -> Result<u64, StateError> {
    let c = db.counts(Origin::Daemon)?;
    Ok(c[&ItemState::Received] + c[&ItemState::Normalized] + c[&ItemState::Deidentified])
}
