//! Reading the department's export folder: ready batches into spooled, recorded exams.
//!
//! A batch folder's name is the department system's choice and may carry a patient's name or
//! id: it is used to open the folder and nowhere else. The state, the logs and every message
//! fgw-ingest makes name the batch by its keyed label ([`BatchLabel`]).

use super::contain::{attachment_reason, batch_reason, catch_item};
use super::lanes;
use super::room::INGEST;
use super::{Gateway, Job, PipelineError};
use crate::config::SourceRetention;
use crate::state::{BatchLabel, BatchState, ItemKind, NewItem, Origin};
use fgw_deid::QuarantineReason;
use fgw_ingest::export::{self, BatchDir};
use fgw_records::Column;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// What an exam's spool file holds beyond its images and report (fields, framing, seal),
/// generously: the admission check needs a size before the file is written.
const EXAM_OVERHEAD_BYTES: u64 = 64 * 1024;

/// Ingest every ready batch not yet fully ingested. Blocking (file I/O); returns how many
/// items it accepted. Each exam is spooled (encrypted, fsynced) before its row is recorded.
///
/// Without room (`storage`: the floor, a quota, or a write refused with ENOSPC or
/// SQLITE_FULL) the scan stops where it is: ingest pauses, the batch stays `ingesting` with
/// its files in place, and the next scan goes on after the rows already recorded.
pub(super) fn scan_export(gw: &Gateway, tx: &mpsc::Sender<Job>) -> Result<u64, PipelineError> {
    let root = &gw.cfg.export.watch_dir;
    let label = |name: &str| gw.batch_label(name).to_string();
    let batches = match export::find_ready_batches(root, &gw.cfg.export.mapping, label) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "export root not readable");
            return Ok(0);
        }
    };
    let mut accepted = 0;
    for batch in batches {
        let label = gw.batch_label(&batch.name);
        match gw.db.batch_state(&label)? {
            Some(BatchState::Ingested | BatchState::Finished) => continue,
            Some(BatchState::Ingesting) | None => {}
        }
        match ingest_batch(gw, &batch, &label, tx) {
            Ok(n) => accepted += n,
            Err(e) => match e.out_of_space() {
                Some(reason) => {
                    gw.paused(INGEST, reason, Some(&e));
                    break;
                }
                None => return Err(e),
            },
        }
    }
    Ok(accepted)
}

/// `label` is the batch's label (the one `batch.label` holds), as the state's key.
fn ingest_batch(
    gw: &Gateway,
    batch: &BatchDir,
    label: &BatchLabel,
    tx: &mpsc::Sender<Job>,
) -> Result<u64, PipelineError> {
    gw.db.set_batch(label, BatchState::Ingesting, 0, 0)?;
    let (profile, limits) = (&gw.cfg.export.mapping, gw.cfg.export.limits());
    let read =
        catch_item("ingest", || export::read_batch_with(batch, profile, &limits)).and_then(|r| {
            r.map_err(|e| {
                error!(batch = %label, error = %e, "batch rejected");
                batch_reason(&e)
            })
        });
    let rows = match read {
        Ok(r) => r,
        Err(reason) => {
            // The whole file is unusable (or refused, or over its cap): record one quarantined
            // item so it is reported, and do not look at this batch again until it is
            // re-exported under a new name.
            warn!(batch = %label, reason = reason.code(), "batch quarantined");
            let mut item = NewItem::quarantined(
                ItemKind::Row,
                Origin::Daemon,
                format!("{label}/{}", gw.cfg.export.mapping.table),
                reason,
            );
            item.batch = Some(label.clone());
            item.row_no = Some(0);
            if !gw.db.row_seen(label, 0)? {
                gw.db.insert(&item)?;
            }
            gw.db.set_batch(label, BatchState::Ingested, 0, 1)?;
            return Ok(1);
        }
    };
    let mut accepted = 0u64;
    for err in &rows.errors {
        if gw.db.row_seen(label, err.row)? {
            continue;
        }
        warn!(batch = %label, error = %err, "row rejected");
        let mut item = NewItem::quarantined(
            ItemKind::Row,
            Origin::Daemon,
            err.to_string(),
            QuarantineReason::InputInvalid(err.to_string()),
        );
        item.batch = Some(label.clone());
        item.row_no = Some(err.row);
        gw.db.insert(&item)?;
        accepted += 1;
    }
    for mut exam in rows.exams {
        if gw.db.row_seen(label, exam.source.row)? {
            continue;
        }
        let loaded = catch_item("ingest", || {
            export::load_attachments_with(batch, &mut exam, rows.encoding, profile, &limits)
        });
        let refused = match loaded {
            Ok(Ok(())) => None,
            Ok(Err(e)) => attachment_reason(&e).or_else(|| {
                warn!(batch = %label, error = %e, "attachments unreadable; exam goes on without them");
                None
            }),
            Err(panicked) => Some(panicked),
        };
        if let Some(reason) = refused {
            // Nothing read for the exam is kept: the row is recorded as quarantined with the
            // reason (path under the batch's label, what is wrong), and the batch goes on.
            warn!(batch = %label, source = %exam.source, reason = %reason, "exam quarantined at ingest");
            let mut item = NewItem::quarantined(
                ItemKind::Exam,
                Origin::Daemon,
                exam.source.to_string(),
                reason,
            );
            item.batch = Some(label.clone());
            item.row_no = Some(exam.source.row);
            gw.db.insert(&item)?;
            accepted += 1;
            continue;
        }
        let mut item = NewItem::new(ItemKind::Exam, Origin::Daemon, exam.source.to_string());
        item.lane = lanes::exam_lane(
            exam.get(Column::ExamDate).and_then(|s| fgw_deid::parse_date(s).ok()),
            chrono::Local::now().date_naive(),
            gw.cfg.pipeline.current_days,
        );
        item.batch = Some(label.clone());
        item.row_no = Some(exam.source.row);
        item.images_in = exam.images.len() as u32;
        let size = exam.images.iter().map(|i| i.bytes.len() as u64).sum::<u64>()
            + exam.report.as_ref().map_or(0, |r| r.len() as u64)
            + EXAM_OVERHEAD_BYTES;
        gw.admit_input(size).map_err(PipelineError::Storage)?;
        gw.spool.put(&item.id, &exam)?;
        // The exam and its unreadable images in one transaction: a refusal for lack of room
        // leaves none of them, and the row is read again at the next scan.
        let mut records = vec![];
        for (n, (_path, why)) in exam.missing_images.iter().enumerate() {
            let mut img = NewItem::quarantined(
                ItemKind::Image,
                Origin::Daemon,
                format!("{}: missing image {}", exam.source, n),
                QuarantineReason::InputInvalid(format!("image unreadable: {why}")),
            );
            img.parent = Some(item.id.clone());
            records.push(img);
        }
        records.insert(0, item);
        if let Err(e) = gw.db.insert_all(&records) {
            let _ = gw.spool.remove(&records[0].id);
            return Err(e.into());
        }
        let item = records.swap_remove(0);
        for (n, (_path, why)) in exam.missing_images.iter().enumerate() {
            warn!(item = %item.id, source = %exam.source, image = n, reason = %why, "image unreadable");
        }
        debug!(item = %item.id, source = %exam.source, images = item.images_in, "exam received");
        accepted += 1;
        // Blocking send from the ingest thread: waits while the pipeline is full.
        if tx.blocking_send((item.id, Some(Box::new(exam)))).is_err() {
            return Err(PipelineError::Stage("normalize stage gone".into()));
        }
    }
    gw.db.set_batch(label, BatchState::Ingested, accepted, rows.errors.len() as u64)?;
    info!(batch = %label, accepted, row_errors = rows.errors.len(), encoding = ?rows.encoding, "batch ingested");
    Ok(accepted)
}

pub(super) fn finish_batches(gw: &Gateway) -> Result<(), PipelineError> {
    let finished = gw.db.finished_batches()?;
    if finished.is_empty() {
        return Ok(());
    }
    let delete = gw.cfg.export.source_retention == SourceRetention::DeleteWhenFinished;
    // The state knows batches by label only: their folders are found by labelling what is
    // in the export root. A folder already gone leaves nothing to delete.
    let folders = if delete {
        match batch_folders(&gw.cfg.export.watch_dir, |name| gw.batch_label(name)) {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "export root not readable; finished batches are kept for now");
                return Ok(());
            }
        }
    } else {
        Vec::new()
    };
    for label in finished {
        if delete {
            let mine = folders.iter().filter(|(l, _)| *l == label).map(|(_, path)| path);
            let mut failed = false;
            for dir in mine {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    warn!(batch = %label, error = %e, "could not delete finished batch folder");
                    failed = true;
                }
            }
            if failed {
                continue;
            }
        }
        gw.db.set_batch(&label, BatchState::Finished, 0, 0)?;
        info!(batch = %label, "batch finished");
    }
    Ok(())
}

/// Every entry directly under `root` whose name is UTF-8, by its label. Other names are never
/// read as batches (`find_ready_batches` skips them), so they are never deleted either.
fn batch_folders(
    root: &std::path::Path,
    label: impl Fn(&str) -> BatchLabel,
) -> std::io::Result<Vec<(BatchLabel, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((label(&name), entry.path()));
        }
    }
    Ok(out)
}
