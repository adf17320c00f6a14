//! The daemon: stages as tokio tasks joined by bounded channels.
//!
//! ```text
//! ingest (watch export root) ─▶ normalize ─▶ deid (the gate) ─▶ uplink (mTLS) ─▶ ack
//! ```
//!
//! Each stage records its transition in the state database before handing the item on, so
//! on start the daemon re-queues whatever was in flight (`resume`). Channels are bounded: a
//! slow hub makes the gate wait, which makes ingest wait; memory stays bounded.

use crate::config::{GatewayConfig, SourceRetention};
use fgw_deid::{DeidContext, DeidOutcome, Pseudonymizer, QuarantineReason};
use fgw_format::ids::{PackageId, QueueId};
use fgw_ingest::dicom_pull::{self, PullMode};
use fgw_ingest::dicom_scp::{
    DicomScp, DicomSink, ReceivedObject, ScpMode, SinkError as DicomSinkError, Uid,
};
use fgw_ingest::export::{self, BatchDir};
use fgw_ingest::hl7::{Hl7Listener, Hl7Mode, ReportSink, SinkError};
use fgw_outbound::outbox::{Outbox, OutboxError};
use fgw_records::{Column, RawExam, RawReport};
use crate::secrets::Secrets;
use crate::spool::{Spool, SpoolError};
use crate::state::{Db, ItemKind, ItemState, NewItem, Origin, StateError, Update};
use fgw_outbound::uplink::{Uplink, UplinkError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("uplink setup: {0}")]
    Uplink(#[from] UplinkError),
    #[error("a pipeline stage stopped unexpectedly: {0}")]
    Stage(String),
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
pub struct Gateway {
    pub cfg: GatewayConfig,
    pub db: Db,
    pub spool: Spool,
    pub quarantine: Spool,
    pub outbox: Outbox,
    pub pseudonymizer: Pseudonymizer,
    /// The burned-in text stage and its OCR engines (started lazily, bounded in number).
    pub pixels: fgw_deid::pixels::PixelStage,
}

impl Gateway {
    /// Open the state directory (database, secret store, spool, quarantine, outbox).
    pub fn open(cfg: GatewayConfig) -> Result<Gateway, PipelineError> {
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|source| SpoolError::Io { path: cfg.state_dir.clone(), source })?;
        let secrets = Secrets::open_or_create(&cfg.secrets_dir())?;
        let db = Db::open(&cfg.db_path())?;
        let spool = Spool::open(&cfg.spool_dir(), secrets.spool_key())?;
        let quarantine = Spool::open(&cfg.quarantine_dir(), secrets.spool_key())?;
        let outbox = Outbox::open(&cfg.outbox_dir())?;
        let pseudonymizer = Pseudonymizer::new(secrets.pseudonym_key());
        let pixels = fgw_deid::pixels::PixelStage::new(cfg.deid.pixels.clone());
        Ok(Gateway { cfg, db, spool, quarantine, outbox, pseudonymizer, pixels })
    }

    /// The gate's context for an input read with `profile`.
    fn ctx<'a>(&'a self, profile: &'a str, revision: u32) -> DeidContext<'a> {
        DeidContext {
            facility: &self.cfg.facility_id,
            pseudonymizer: &self.pseudonymizer,
            policy: &self.cfg.deid,
            profile,
            revision,
            pixels: &self.pixels,
        }
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
        match self.accept_raw_once(kind, source, None, write)? {
            Some(id) => Ok(id),
            None => unreachable!("input without a dedupe key is never a duplicate"),
        }
    }

    /// [`Gateway::accept_raw`], and with `dedupe_key` (DICOM: the SOP Instance UID's keyed
    /// pseudonym) an input already accepted under that key is dropped: `Ok(None)`.
    fn accept_raw_once(
        &self,
        kind: ItemKind,
        source: String,
        dedupe_key: Option<&str>,
        write: impl FnOnce(&Spool, &QueueId) -> Result<(), SpoolError>,
    ) -> Result<Option<QueueId>, &'static str> {
        let db_down = |e: StateError| {
            error!(error = %e, "input not recorded");
            "state database unavailable"
        };
        // Checked first so a duplicate costs no spool write.
        if let Some(key) = dedupe_key {
            if self.db.dicom_seen(key).map_err(db_down)? {
                return Ok(None);
            }
        }
        let item = NewItem::new(kind, Origin::Daemon, source);
        if let Err(e) = write(&self.spool, &item.id) {
            error!(error = %e, "input not spooled");
            return Err("spool unavailable");
        }
        let recorded = match dedupe_key {
            None => self.db.insert(&item).map(|()| true),
            Some(key) => self.db.insert_dicom(&item, key),
        };
        match recorded {
            Ok(true) => {}
            // The same input raced in on another connection and was recorded first.
            Ok(false) => {
                let _ = self.spool.remove(&item.id);
                return Ok(None);
            }
            Err(e) => {
                let _ = self.spool.remove(&item.id);
                return Err(db_down(e));
            }
        }
        debug!(item = %item.id, kind = ?kind, "input received");
        Ok(Some(item.id))
    }

    fn exam_key(&self, exam: &RawExam) -> Option<String> {
        exam.get(Column::ExamId).map(|id| self.pseudonymizer.exam(&self.cfg.facility_id, id))
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
        self.db.transition(
            id,
            from,
            ItemState::Quarantined,
            Update { reason: Some(reason.to_string()), ..Default::default() },
        )?;
        warn!(item = %id, reason = reason.code(), "exam quarantined");
        self.finish_raw(id, true)
    }

    /// Repair after a crash: spool files whose item is already finished.
    fn repair_spool(&self) -> Result<(), PipelineError> {
        let Ok(dir) = std::fs::read_dir(self.cfg.spool_dir()) else { return Ok(()) };
        for entry in dir.flatten() {
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

/// Run the daemon until `shutdown` turns true (or until idle in [`RunMode::UntilIdle`]).
pub async fn run(
    cfg: GatewayConfig,
    mode: RunMode,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let uplink = Uplink::new(&cfg.uplink)?;
    let gw = Arc::new(Gateway::open(cfg)?);
    gw.repair_spool()?;
    gw.outbox.gc()?;
    let cap = gw.cfg.pipeline.channel_capacity;
    let (to_norm, norm_rx) = mpsc::channel::<Job>(cap);
    let (to_deid, deid_rx) = mpsc::channel::<Job>(cap);
    let (to_up, up_rx) = mpsc::channel::<QueueId>(cap);

    // Stops the report stage and the HL7 listener when the main loop ends (idle or shutdown).
    let (stop_tx, stop_rx) = watch::channel(false);
    let notify = Arc::new(tokio::sync::Notify::new());

    let norm = tokio::spawn(normalize_stage(gw.clone(), norm_rx, to_deid.clone()));
    let gate = tokio::spawn(deid_stage(gw.clone(), deid_rx, to_up.clone()));
    let up = tokio::spawn(uplink_stage(gw.clone(), uplink, up_rx, shutdown.clone()));
    let reports = tokio::spawn(spooled_stage(
        gw.clone(),
        ItemKind::Report,
        report_gate,
        notify.clone(),
        to_up.clone(),
        stop_rx.clone(),
    ));
    let dicom_notify = Arc::new(tokio::sync::Notify::new());
    let dicom = tokio::spawn(spooled_stage(
        gw.clone(),
        ItemKind::Dicom,
        dicom_gate,
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
            let sink = SpoolDicomSink { gw: gw.clone(), notify: dicom_notify };
            Some(tokio::spawn(scp.serve(sink, stop_rx.clone())))
        }
    };
    // After the SCP is bound: the archive's C-STOREs for our C-MOVEs go there.
    let pull = match gw.cfg.dicom_pull.mode {
        PullMode::Disabled => None,
        PullMode::Enabled => {
            let g = gw.clone();
            let key = move |uid: &Uid| g.pseudonymizer.uid(uid.as_str());
            let (cfg, ae) = (gw.cfg.dicom_pull.clone(), gw.cfg.dicom_scp.ae_title.clone());
            Some(tokio::spawn(dicom_pull::run(cfg, ae, gw.db.clone(), key, stop_rx.clone())))
        }
    };
    let hl7 = match gw.cfg.hl7.mode {
        Hl7Mode::Disabled => None,
        Hl7Mode::Enabled => {
            let listener = Hl7Listener::bind(&gw.cfg.hl7)
                .await
                .map_err(|e| PipelineError::Stage(format!("hl7 listener: {e}")))?;
            info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "hl7 listener up");
            let sink = SpoolSink { gw: gw.clone(), notify };
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
    loop {
        let g = gw.clone();
        let tx = to_norm.clone();
        let new_items = tokio::task::spawn_blocking(move || scan_export(&g, &tx))
            .await
            .map_err(|e| PipelineError::Stage(format!("ingest: {e}")))??;
        finish_batches(&gw)?;
        if mode == RunMode::UntilIdle && new_items == 0 && pending(&gw.db)? == 0 {
            break;
        }
        let wait = if mode == RunMode::UntilIdle { Duration::from_millis(200) } else { poll };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    drop(to_norm);
    let _ = stop_tx.send(true);
    if let Some(h) = hl7 {
        let _ = h.await;
    }
    if let Some(h) = pull {
        h.await
            .map_err(|e| PipelineError::Stage(format!("dicom pull: {e}")))?
            .map_err(|e| PipelineError::Stage(format!("dicom pull: {e}")))?;
    }
    if let Some(h) = scp {
        let _ = h.await;
    }
    dicom.await.map_err(|e| PipelineError::Stage(format!("dicom: {e}")))??;
    for (name, h) in [("normalize", norm), ("deid", gate), ("reports", reports), ("uplink", up)] {
        h.await.map_err(|e| PipelineError::Stage(format!("{name}: {e}")))??;
    }
    Ok(())
}

/// Where the HL7 listener puts reports: the encrypted spool, then a `report` item. The
/// listener ACKs only after this returned Ok, so a crash before that makes the sender retry.
struct SpoolSink {
    gw: Arc<Gateway>,
    notify: Arc<tokio::sync::Notify>,
}

impl ReportSink for SpoolSink {
    fn accept(&self, report: RawReport) -> Result<(), SinkError> {
        let source = report.source.clone();
        self.gw
            .accept_raw(ItemKind::Report, source, |spool, id| spool.put_report(id, &report))
            .map_err(SinkError::Unavailable)?;
        self.notify.notify_one();
        Ok(())
    }
}

/// Where the DICOM SCP puts objects: the encrypted spool, then a `dicom` item. The SCP sends
/// Success only after this returned Ok.
struct SpoolDicomSink {
    gw: Arc<Gateway>,
    notify: Arc<tokio::sync::Notify>,
}

impl DicomSink for SpoolDicomSink {
    /// An instance already accepted (same SOP Instance UID) is answered Success and dropped:
    /// a pull window retried after a crash, or a modality re-sending, must not make a second
    /// item.
    fn accept(&self, object: ReceivedObject) -> Result<(), DicomSinkError> {
        let key = self.gw.pseudonymizer.uid(object.sop_instance_uid.as_str());
        let source = format!("dicom-scp from {} ae {}", object.peer, object.calling_ae.as_str());
        let accepted = self
            .gw
            .accept_raw_once(ItemKind::Dicom, source, Some(&key), |spool, id| {
                spool.put_bytes(id, &object.bytes)
            })
            .map_err(DicomSinkError::Unavailable)?;
        match accepted {
            Some(_) => self.notify.notify_one(),
            None => debug!(calling_ae = %object.calling_ae, "dicom duplicate instance dropped"),
        }
        Ok(())
    }
}

/// Wait until a listener signals new input, a second passes (crash leftovers), or the
/// pipeline stops; true when it stops.
async fn wait_for_work(notify: &tokio::sync::Notify, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = notify.notified() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

/// A spooled item through the gate: the spool's raw input → a package or a quarantine reason.
type Gate = fn(&Gateway, &QueueId) -> Result<DeidOutcome, PipelineError>;

fn report_gate(g: &Gateway, id: &QueueId) -> Result<DeidOutcome, PipelineError> {
    let report = g.spool.get_report(id)?;
    Ok(fgw_deid::deidentify_report(&report, &g.ctx("hl7", 1)))
}

/// DICOM objects: one package per object (header per PS3.15, pixels through the burned-in
/// text stage), or quarantined with the reason, the raw bytes kept encrypted.
fn dicom_gate(g: &Gateway, id: &QueueId) -> Result<DeidOutcome, PipelineError> {
    let bytes = g.spool.get_bytes(id)?;
    let label = format!("dicom item {id}");
    Ok(fgw_deid::deidentify_dicom_package(&label, &bytes, &g.ctx("dicom", 1), &g.cfg.deid.dicom))
}

/// Items that arrive on their own (HL7 reports, DICOM objects): received → (gate) →
/// deidentified → uplink. Polls the database, woken by the listener, so items left
/// `received` by a crash are picked up too.
async fn spooled_stage(
    gw: Arc<Gateway>,
    kind: ItemKind,
    gate: Gate,
    notify: Arc<tokio::sync::Notify>,
    to_up: mpsc::Sender<QueueId>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let what = kind.as_str();
    // As many items at once as the pixel stage has OCR engines: a DICOM frame is OCR-bound,
    // and the engines, not the backlog, bound the memory in use.
    let width = gw.pixels.parallelism().max(1);
    loop {
        let ids = gw.db.ids_in_state(ItemState::Received, kind)?;
        for chunk in ids.chunks(width) {
            let running: Vec<_> = chunk
                .iter()
                .map(|id| {
                    let (g, id) = (gw.clone(), id.clone());
                    tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
                        // The package stored in the outbox, or why the item stays on the box.
                        Ok(match gate(&g, &id)? {
                            DeidOutcome::Package { package, .. } => Ok(g.outbox.put(&package)?),
                            DeidOutcome::Quarantined { reason } => Err(reason),
                        })
                    })
                })
                .collect();
            for (id, task) in chunk.iter().cloned().zip(running) {
                let outcome =
                    task.await.map_err(|e| PipelineError::Stage(format!("{what}: {e}")))??;
                finish_spooled(&gw, id, outcome, what, &to_up).await?;
            }
        }
        if wait_for_work(&notify, &mut stop).await {
            return Ok(());
        }
    }
}

/// Record what the gate made of one spooled item and pass a package on to the uplink.
async fn finish_spooled(
    gw: &Gateway,
    id: QueueId,
    outcome: Result<PackageId, QuarantineReason>,
    what: &str,
    to_up: &mpsc::Sender<QueueId>,
) -> Result<(), PipelineError> {
    match outcome {
        Err(reason) => gw.quarantine_exam(&id, ItemState::Received, &reason)?,
        Ok(pkg) => {
            gw.db.transition(
                &id,
                ItemState::Received,
                ItemState::Deidentified,
                Update { package_id: Some(pkg.to_string()), ..Default::default() },
            )?;
            debug!(item = %id, package = %pkg, kind = what, "de-identified");
            send(to_up, id).await?;
        }
    }
    Ok(())
}

async fn send<T>(tx: &mpsc::Sender<T>, v: T) -> Result<(), PipelineError> {
    tx.send(v).await.map_err(|_| PipelineError::Stage("channel closed".into()))
}

fn pending(db: &Db) -> Result<u64, StateError> {
    let c = db.counts(Origin::Daemon)?;
    Ok(c[&ItemState::Received] + c[&ItemState::Normalized] + c[&ItemState::Deidentified])
}

/// Ingest every ready batch not yet fully ingested. Blocking (file I/O); returns how many
/// items it accepted. Each exam is spooled (encrypted, fsynced) before its row is recorded.
fn scan_export(gw: &Gateway, tx: &mpsc::Sender<Job>) -> Result<u64, PipelineError> {
    let root = &gw.cfg.export.watch_dir;
    let batches = match export::find_ready_batches(root, &gw.cfg.export.mapping) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "export root not readable");
            return Ok(0);
        }
    };
    let mut accepted = 0;
    for batch in batches {
        match gw.db.batch_state(&batch.name)?.as_deref() {
            Some("ingested") | Some("finished") => continue,
            _ => {}
        }
        accepted += ingest_batch(gw, &batch, tx)?;
    }
    Ok(accepted)
}

fn ingest_batch(
    gw: &Gateway,
    batch: &BatchDir,
    tx: &mpsc::Sender<Job>,
) -> Result<u64, PipelineError> {
    gw.db.set_batch(&batch.name, "ingesting", 0, 0)?;
    let rows = match export::read_batch(batch, &gw.cfg.export.mapping) {
        Ok(r) => r,
        Err(e) => {
            // The whole file is unusable: record one quarantined item so it is reported,
            // and do not look at this batch again until it is re-exported under a new name.
            error!(batch = %batch.name, error = %e, "batch rejected");
            let mut item = NewItem::quarantined(
                ItemKind::Row,
                Origin::Daemon,
                format!("{}/{}", batch.name, gw.cfg.export.mapping.table),
                QuarantineReason::InputInvalid(e.to_string()).to_string(),
            );
            item.batch = Some(batch.name.clone());
            item.row_no = Some(0);
            if !gw.db.row_seen(&batch.name, 0)? {
                gw.db.insert(&item)?;
            }
            gw.db.set_batch(&batch.name, "ingested", 0, 1)?;
            return Ok(1);
        }
    };
    let mut accepted = 0u64;
    for err in &rows.errors {
        if gw.db.row_seen(&batch.name, err.row)? {
            continue;
        }
        warn!(batch = %batch.name, error = %err, "row rejected");
        let mut item = NewItem::quarantined(
            ItemKind::Row,
            Origin::Daemon,
            err.to_string(),
            QuarantineReason::InputInvalid(err.to_string()).to_string(),
        );
        item.batch = Some(batch.name.clone());
        item.row_no = Some(err.row);
        gw.db.insert(&item)?;
        accepted += 1;
    }
    for mut exam in rows.exams {
        if gw.db.row_seen(&batch.name, exam.source.row)? {
            continue;
        }
        if let Err(e) =
            export::load_attachments(batch, &mut exam, rows.encoding, &gw.cfg.export.mapping)
        {
            warn!(batch = %batch.name, error = %e, "attachments unreadable; exam goes on without them");
        }
        let mut item = NewItem::new(ItemKind::Exam, Origin::Daemon, exam.source.to_string());
        item.batch = Some(batch.name.clone());
        item.row_no = Some(exam.source.row);
        item.images_in = exam.images.len() as u32;
        gw.spool.put(&item.id, &exam)?;
        gw.db.insert(&item)?;
        for (n, (_path, why)) in exam.missing_images.iter().enumerate() {
            warn!(item = %item.id, source = %exam.source, image = n, reason = %why, "image unreadable");
            let mut img = NewItem::quarantined(
                ItemKind::Image,
                Origin::Daemon,
                format!("{}: missing image {}", exam.source, n),
                QuarantineReason::InputInvalid(format!("image unreadable: {why}")).to_string(),
            );
            img.parent = Some(item.id.clone());
            gw.db.insert(&img)?;
        }
        debug!(item = %item.id, source = %exam.source, images = item.images_in, "exam received");
        accepted += 1;
        // Blocking send from the ingest thread: waits while the pipeline is full.
        if tx.blocking_send((item.id, Some(Box::new(exam)))).is_err() {
            return Err(PipelineError::Stage("normalize stage gone".into()));
        }
    }
    gw.db.set_batch(&batch.name, "ingested", accepted, rows.errors.len() as u64)?;
    info!(batch = %batch.name, accepted, row_errors = rows.errors.len(), encoding = ?rows.encoding, "batch ingested");
    Ok(accepted)
}

fn finish_batches(gw: &Gateway) -> Result<(), PipelineError> {
    for name in gw.db.finished_batches()? {
        if gw.cfg.export.source_retention == SourceRetention::DeleteWhenFinished {
            let dir = gw.cfg.export.watch_dir.join(&name);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(batch = %name, error = %e, "could not delete finished batch folder");
                continue;
            }
        }
        gw.db.set_batch(&name, "finished", 0, 0)?;
        info!(batch = %name, "batch finished");
    }
    Ok(())
}

fn load(
    gw: &Gateway,
    id: &QueueId,
    exam: Option<Box<RawExam>>,
) -> Result<Box<RawExam>, PipelineError> {
    match exam {
        Some(e) => Ok(e),
        None => Ok(Box::new(gw.spool.get(id)?)),
    }
}

async fn normalize_stage(
    gw: Arc<Gateway>,
    mut rx: mpsc::Receiver<Job>,
    tx: mpsc::Sender<Job>,
) -> Result<(), PipelineError> {
    while let Some((id, exam)) = rx.recv().await {
        let exam = load(&gw, &id, exam)?;
        let Some(key) = gw.exam_key(&exam) else {
            gw.quarantine_exam(
                &id,
                ItemState::Received,
                &QuarantineReason::RequiredFieldInvalid("exam_id".into()),
            )?;
            continue;
        };
        match gw.db.normalize(&id, &key) {
            Ok(rev) => debug!(item = %id, revision = rev, "exam normalized"),
            Err(StateError::WrongState { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        send(&tx, (id, Some(exam))).await?;
    }
    Ok(())
}

async fn deid_stage(
    gw: Arc<Gateway>,
    mut rx: mpsc::Receiver<Job>,
    tx: mpsc::Sender<QueueId>,
) -> Result<(), PipelineError> {
    while let Some((id, exam)) = rx.recv().await {
        let item = gw.db.get(&id)?;
        if item.state != ItemState::Normalized {
            if item.state == ItemState::Superseded {
                gw.spool.remove(&id)?;
            }
            continue;
        }
        let g = gw.clone();
        let id2 = id.clone();
        // CPU-bound (image parsing, text search): off the async workers.
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
            let exam = load(&g, &id2, exam)?;
            let ctx = g.ctx(&g.cfg.export.mapping.id, item.revision);
            let outcome = fgw_deid::deidentify_exam(&exam, &ctx);
            let stored = match &outcome {
                DeidOutcome::Package { package, .. } => Some(g.outbox.put(package)?),
                DeidOutcome::Quarantined { .. } => None,
            };
            Ok((outcome, stored))
        })
        .await
        .map_err(|e| PipelineError::Stage(format!("deid: {e}")))??;
        match outcome {
            (DeidOutcome::Quarantined { reason }, _) => {
                gw.quarantine_exam(&id, ItemState::Normalized, &reason)?;
            }
            (DeidOutcome::Package { withheld, .. }, Some(pkg)) => {
                for w in &withheld {
                    let mut img = NewItem::quarantined(
                        ItemKind::Image,
                        Origin::Daemon,
                        format!("{}: image {}", item.source, w.image_index),
                        w.reason.to_string(),
                    );
                    img.parent = Some(id.clone());
                    img.image_index = Some(w.image_index);
                    gw.db.insert(&img)?;
                }
                gw.db.transition(
                    &id,
                    ItemState::Normalized,
                    ItemState::Deidentified,
                    Update {
                        package_id: Some(pkg.to_string()),
                        images_withheld: Some(withheld.len() as u32),
                        ..Default::default()
                    },
                )?;
                debug!(item = %id, package = %pkg, withheld = withheld.len(), "exam de-identified");
                send(&tx, id).await?;
            }
            (DeidOutcome::Package { .. }, None) => unreachable!("package outcome always stored"),
        }
    }
    Ok(())
}

async fn uplink_stage(
    gw: Arc<Gateway>,
    uplink: Uplink,
    mut rx: mpsc::Receiver<QueueId>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let p = &gw.cfg.pipeline;
    while let Some(id) = rx.recv().await {
        let item = gw.db.get(&id)?;
        let Some(pkg) = item.package_id.as_deref().and_then(|p| PackageId::new(p).ok()) else {
            continue;
        };
        if item.state != ItemState::Deidentified {
            if item.state == ItemState::Superseded {
                gw.spool.remove(&id)?;
                gw.outbox.remove(&pkg)?;
            }
            continue;
        }
        let staged = match gw.outbox.load(&pkg) {
            Ok(s) => s,
            Err(e) => {
                // The outbox copy is damaged: re-run the gate from the spool on next start.
                error!(item = %id, error = %e, "outbox package unreadable; re-queued for de-identification");
                gw.db.transition(
                    &id,
                    ItemState::Deidentified,
                    ItemState::Normalized,
                    Update::default(),
                )?;
                continue;
            }
        };
        let mut delay = Duration::from_millis(p.retry_initial_ms);
        let ack = loop {
            gw.db.bump_attempts(&id)?;
            match uplink.upload(&staged).await {
                Ok(ack) => break Some(ack),
                Err(e) if e.is_retryable() => {
                    warn!(item = %id, package = %pkg, error = %e, retry_in_ms = delay.as_millis() as u64, "upload failed; will retry");
                    gw.db.set_meta("last_error", &format!("upload {id}: {e}"))?;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    delay = (delay * 2).min(Duration::from_millis(p.retry_max_ms));
                }
                Err(e) => {
                    error!(item = %id, package = %pkg, error = %e, "hub rejected package");
                    gw.db.set_meta("last_error", &format!("upload {id}: {e}"))?;
                    gw.quarantine_exam(
                        &id,
                        ItemState::Deidentified,
                        &QuarantineReason::InputInvalid(format!("hub rejected package: {e}")),
                    )?;
                    break None;
                }
            }
        };
        let Some(ack) = ack else { continue };
        // Commit the ack first, then delete: a crash in between is repaired by repair_spool.
        gw.db.transition(&id, ItemState::Deidentified, ItemState::Acked, Update::default())?;
        gw.db.set_meta(
            "last_upload_at",
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )?;
        info!(item = %id, package = %pkg, stored = ?ack.stored, "package acknowledged");
        gw.finish_raw(&id, item.images_withheld > 0)?;
        gw.outbox.remove(&pkg)?;
        if rx.is_empty() {
            gw.outbox.gc()?;
        }
    }
    Ok(())
}
