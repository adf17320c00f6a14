//! The exam stages (normalize, de-identify) and the uplink stage every package goes through.

use super::{send, Gateway, Job, PipelineError};
use crate::state::{ItemKind, ItemState, MetaKey, NewItem, Origin, StateError, Update};
use fgw_deid::{DeidOutcome, QuarantineReason};
use fgw_format::ids::QueueId;
use fgw_outbound::uplink::Uplink;
use fgw_records::RawExam;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

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

pub(super) async fn normalize_stage(
    gw: Arc<Gateway>,
    mut rx: mpsc::Receiver<Job>,
    tx: mpsc::Sender<Job>,
) -> Result<(), PipelineError> {
    while let Some((id, exam)) = rx.recv().await {
        let exam = load(&gw, &id, exam)?;
        let Some(key) = gw.gate.exam_key(&exam) else {
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

pub(super) async fn deid_stage(
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
            let outcome = g.gate.exam(&exam, item.revision);
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
                        w.reason.clone(),
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
                        package_id: Some(pkg.clone()),
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

pub(super) async fn uplink_stage(
    gw: Arc<Gateway>,
    uplink: Uplink,
    mut rx: mpsc::Receiver<QueueId>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let p = &gw.cfg.pipeline;
    while let Some(id) = rx.recv().await {
        let item = gw.db.get(&id)?;
        let Some(pkg) = item.package_id.clone() else {
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
                    gw.db.set_meta(MetaKey::LastError, &format!("upload {id}: {e}"))?;
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
                    gw.db.set_meta(MetaKey::LastError, &format!("upload {id}: {e}"))?;
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
            MetaKey::LastUploadAt,
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
