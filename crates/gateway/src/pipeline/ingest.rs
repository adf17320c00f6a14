//! Reading the department's export folder: ready batches into spooled, recorded exams.

use super::{Gateway, Job, PipelineError};
use crate::config::SourceRetention;
use crate::state::{BatchState, ItemKind, NewItem, Origin};
use fgw_deid::QuarantineReason;
use fgw_ingest::export::{self, BatchDir};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// Ingest every ready batch not yet fully ingested. Blocking (file I/O); returns how many
/// items it accepted. Each exam is spooled (encrypted, fsynced) before its row is recorded.
pub(super) fn scan_export(gw: &Gateway, tx: &mpsc::Sender<Job>) -> Result<u64, PipelineError> {
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
        match gw.db.batch_state(&batch.name)? {
            Some(BatchState::Ingested | BatchState::Finished) => continue,
            Some(BatchState::Ingesting) | None => {}
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
    gw.db.set_batch(&batch.name, BatchState::Ingesting, 0, 0)?;
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
                QuarantineReason::InputInvalid(e.to_string()),
            );
            item.batch = Some(batch.name.clone());
            item.row_no = Some(0);
            if !gw.db.row_seen(&batch.name, 0)? {
                gw.db.insert(&item)?;
            }
            gw.db.set_batch(&batch.name, BatchState::Ingested, 0, 1)?;
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
            QuarantineReason::InputInvalid(err.to_string()),
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
                QuarantineReason::InputInvalid(format!("image unreadable: {why}")),
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
    gw.db.set_batch(&batch.name, BatchState::Ingested, accepted, rows.errors.len() as u64)?;
    info!(batch = %batch.name, accepted, row_errors = rows.errors.len(), encoding = ?rows.encoding, "batch ingested");
    Ok(accepted)
}

pub(super) fn finish_batches(gw: &Gateway) -> Result<(), PipelineError> {
    for name in gw.db.finished_batches()? {
        if gw.cfg.export.source_retention == SourceRetention::DeleteWhenFinished {
            let dir = gw.cfg.export.watch_dir.join(&name);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(batch = %name, error = %e, "could not delete finished batch folder");
                continue;
            }
        }
        gw.db.set_batch(&name, BatchState::Finished, 0, 0)?;
        info!(batch = %name, "batch finished");
    }
    Ok(())
}
