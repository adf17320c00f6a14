//! The exam stages (normalize, de-identify) and the uplink stage every package goes through.

use super::backoff::Backoff;
use super::contain::catch_item;
use super::lanes::LaneQueue;
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
            let reason = QuarantineReason::RequiredFieldInvalid("exam_id".into());
            gw.persist("normalize", || gw.quarantine_exam(&id, ItemState::Received, &reason))
                .await?;
            continue;
        };
        match gw.persist("normalize", || gw.db.normalize(&id, &key)).await {
            Ok(rev) => debug!(item = %id, revision = rev, "exam normalized"),
            Err(PipelineError::State(StateError::WrongState { .. })) => continue,
            Err(e) => return Err(e),
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
                    DeidOutcome::Package { package, .. } => Some(g.store_package("deid", package)?),
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
                gw.persist("deid", || gw.quarantine_exam(&id, ItemState::Normalized, &reason))
                    .await?;
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
                    gw.persist("deid", || gw.db.insert(&img)).await?;
                }
                let update = Update {
                    package_id: Some(pkg.clone()),
                    images_withheld: Some(withheld.len() as u32),
                    ..Default::default()
                };
                gw.persist("deid", || {
                    let (from, to) = (ItemState::Normalized, ItemState::Deidentified);
                    gw.db.transition(&id, from, to, update.clone())
                })
                .await?;
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
    // Everything queued is drained into the lanes before each upload, so an exam of today
    // that arrives behind a thousand backlog objects goes next.
    let mut queue = LaneQueue::default();
    loop {
        while let Ok(id) = rx.try_recv() {
            let lane = gw.db.get(&id)?.lane;
            queue.push(id, lane);
        }
        let id = match queue.pop() {
            Some(id) => id,
            None => match rx.recv().await {
                Some(id) => id,
                None => break,
            },
        };
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
                let from = ItemState::Deidentified;
                gw.persist("uplink", || gw.db.transition(&id, from, back, Update::default()))
                    .await?;
                continue;
            }
        };
        let mut backoff = Backoff::new(
            Duration::from_millis(p.retry_initial_ms),
            Duration::from_millis(p.retry_max_ms),
        );
        let ack = loop {
            gw.soft(|| gw.db.bump_attempts(&id))?;
            let started = std::time::Instant::now();
            let e = match uplink.upload(&staged).await {
                Ok(ack) => {
                    record_rate(&gw, staged.bytes(), started.elapsed());
                    gw.soft(|| {
                        let total = gw.db.meta(MetaKey::BytesUploaded)?;
                        let total = total.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                        let total = total.saturating_add(staged.bytes());
                        gw.db.set_meta(MetaKey::BytesUploaded, &total.to_string())
                    })?;
                    break Some(ack);
                }
                Err(e) => e,
            };
            gw.soft(|| gw.db.set_meta(MetaKey::LastError, &format!("upload {id}: {e}")))?;
            let class = match e.disposition() {
                Disposition::RetryLater => "retry-later",
                Disposition::PauseUplink => "box-refused",
                Disposition::RefusePackage => "package-refused",
            };
            gw.soft(|| gw.db.set_meta(MetaKey::LastErrorClass, class))?;
            let wait = match e.disposition() {
                Disposition::RetryLater => {
                    let wait = backoff.wait();
                    warn!(item = %id, package = %pkg, error = %e, retry_in_ms = wait.as_millis() as u64, "upload failed; will retry");
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
                    // (`renew` keeps the byte counter and the bandwidth bucket.)
                    match uplink.renew(&gw.cfg.uplink) {
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
                    gw.soft(|| gw.db.set_meta(MetaKey::UplinkPaused, &format!("{since} {e}")))?;
                    wait
                }
                Disposition::RefusePackage => {
                    error!(item = %id, package = %pkg, error = %e, "hub refused package; quarantined (re-drivable)");
                    let reason = ItemReason::HubRefused(e.to_string());
                    gw.persist("uplink", || {
                        gw.quarantine_item(&id, ItemState::Deidentified, reason.clone())
                    })
                    .await?;
                    break None;
                }
            };
            // Keep taking what the gate finishes while waiting: an unreachable hub must not
            // stop de-identification (and, behind it, ingest) after a channel's worth.
            let until = tokio::time::Instant::now() + wait;
            let mut open = true;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = shutdown.changed() => break,
                    next = rx.recv(), if open => match next {
                        Some(next) => {
                            let lane = gw.db.get(&next)?.lane;
                            queue.push(next, lane);
                        }
                        None => open = false,
                    },
                }
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        };
        let Some(ack) = ack else { continue };
        gw.soft(|| gw.db.clear_meta(MetaKey::UplinkPaused))?;
        // Commit the ack first, then delete: a crash in between is repaired by repair_spool.
        // Waits for room rather than failing: the hub has the package, the box must say so.
        let (from, to) = (ItemState::Deidentified, ItemState::Acked);
        let acked = gw
            .persist("uplink", || match gw.db.transition(&id, from, to, Update::default()) {
                Ok(()) => Ok(true),
                // A re-export of the exam arrived while this revision was on the wire and
                // normalize marked it superseded: the hub has it, the newer revision follows
                // and outranks it there. Done with this one; never an error that would stop
                // the stage (found by the crash harness).
                Err(StateError::WrongState { .. })
                    if matches!(gw.db.get(&id), Ok(i) if i.state == ItemState::Superseded) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            })
            .await?;
        if !acked {
            info!(item = %id, package = %pkg, "package acknowledged after a newer revision superseded it");
            gw.spool.remove(&id)?;
            gw.outbox.remove(&pkg)?;
            continue;
        }
        gw.soft(|| {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            gw.db.set_meta(MetaKey::LastUploadAt, &now)
        })?;
        info!(item = %id, package = %pkg, stored = ?ack.stored, "package acknowledged");
        gw.persist("uplink", || gw.finish_raw(&id, item.images_withheld > 0)).await?;
        gw.outbox.remove(&pkg)?;
        if rx.is_empty() && queue.is_empty() {
            gw.gc_outbox()?;
        }
    }
    Ok(())
}

/// Fold one upload into the moving average of the upload rate (bytes/s) that `gateway
/// status` divides the backlog by. Best effort: a failed write only loses an estimate.
fn record_rate(gw: &Gateway, bytes: u64, took: Duration) {
    // Tiny packages are dominated by round trips, not the line: they would skew the estimate.
    if bytes < 64 * 1024 || took.is_zero() {
        return;
    }
    let sample = bytes as f64 / took.as_secs_f64();
    let old = gw.db.meta(MetaKey::UploadRate).ok().flatten().and_then(|v| v.parse::<f64>().ok());
    let rate = match old {
        Some(old) if old.is_finite() && old > 0.0 => 0.8 * old + 0.2 * sample,
        _ => sample,
    };
    let _ = gw.db.set_meta(MetaKey::UploadRate, &format!("{rate:.0}"));
}
