//! The exam stages (normalize, de-identify) and the uplink stage every package goes through.

use super::contain::catch_item;
use super::{send, Gateway, Job, PipelineError};
use crate::state::{ItemKind, ItemReason, ItemState, MetaKey, NewItem, Origin, StateError, Update};
use fgw_deid::{DeidOutcome, QuarantineReason};
use fgw_format::ids::QueueId;
use fgw_outbound::uplink::{Disposition, Uplink};
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
        // CPU-bound (image parsing, text search): off the async workers. A panic in it
        // quarantines this exam (`internal-error`) and the stage goes on: re-queued after a
        // restart, the same exam would otherwise stop the daemon again.
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
            let work = catch_item("deid", || -> Result<_, PipelineError> {
                let exam = load(&g, &id2, exam)?;
                let outcome = g.gate.exam(&exam, item.revision);
                let stored = match &outcome {
                    DeidOutcome::Package { package, .. } => Some(g.outbox.put(package)?),
                    DeidOutcome::Quarantined { .. } => None,
                };
                Ok((outcome, stored))
            });
            match work {
                Ok(done) => done,
                Err(reason) => Ok((DeidOutcome::Quarantined { reason }, None)),
            }
        })
        .await
        .map_err(|e| super::joined("deid", e))??;
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
    mut uplink: Uplink,
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
                // The outbox copy is damaged, or not sealed by this box (moved aside, never
                // sent): re-run the gate from the spool. Exams on next start; reports and
                // DICOM objects at once (their stage polls `received`).
                error!(item = %id, error = %e, "outbox package unusable; re-queued for de-identification");
                let back = match item.kind {
                    ItemKind::Exam => ItemState::Normalized,
                    _ => ItemState::Received,
                };
                gw.db.transition(&id, ItemState::Deidentified, back, Update::default())?;
                continue;
            }
        };
        let mut delay = Duration::from_millis(p.retry_initial_ms);
        let ack = loop {
            gw.db.bump_attempts(&id)?;
            let e = match uplink.upload(&staged).await {
                Ok(ack) => break Some(ack),
                Err(e) => e,
            };
            gw.db.set_meta(MetaKey::LastError, &format!("upload {id}: {e}"))?;
            let wait = match e.disposition() {
                Disposition::RetryLater => {
                    warn!(item = %id, package = %pkg, error = %e, retry_in_ms = delay.as_millis() as u64, "upload failed; will retry");
                    let wait = delay;
                    delay = (delay * 2).min(Duration::from_millis(p.retry_max_ms));
                    wait
                }
                Disposition::PauseUplink => {
                    // The hub refuses this box (a registration or URL mistake): every package
                    // would get the same answer. Nothing is quarantined; the uplink waits and
                    // tries the same package again. `gateway status` shows the pause.
                    let wait = Duration::from_secs(p.paused_retry_secs);
                    // The next attempt on new connections, with the certificate files read
                    // again: the hub decides who we are once per connection, and the fix may
                    // be a re-issued certificate.
                    match Uplink::new(&gw.cfg.uplink) {
                        Ok(fresh) => uplink = fresh,
                        Err(e) => {
                            warn!(error = %e, "uplink could not be set up again; keeping the current one")
                        }
                    }
                    error!(item = %id, error = %e, retry_in_s = wait.as_secs(), "uplink paused: the hub refuses this box; fix the registration or [uplink], uploads resume by themselves");
                    let since = gw
                        .db
                        .meta(MetaKey::UplinkPaused)?
                        .and_then(|v| v.split_once(' ').map(|(t, _)| t.to_string()));
                    let since = since.unwrap_or_else(|| {
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    });
                    gw.db.set_meta(MetaKey::UplinkPaused, &format!("{since} {e}"))?;
                    wait
                }
                Disposition::RefusePackage => {
                    error!(item = %id, package = %pkg, error = %e, "hub refused package; quarantined (re-drivable)");
                    gw.quarantine_item(
                        &id,
                        ItemState::Deidentified,
                        ItemReason::HubRefused(e.to_string()),
                    )?;
                    break None;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        };
        let Some(ack) = ack else { continue };
        gw.db.clear_meta(MetaKey::UplinkPaused)?;
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
