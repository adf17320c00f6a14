//! Items that arrive on their own (HL7 reports, DICOM objects): one stage per kind, from the
//! spool through the gate to the uplink.

use super::contain::catch_item;
use super::{send, Gateway, PipelineError};
use crate::state::{ItemKind, ItemState, Update};
use fgw_deid::{DeidOutcome, QuarantineReason};
use fgw_format::ids::{PackageId, QueueId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::debug;

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
pub(super) type Gate = fn(&Gateway, &QueueId) -> Result<DeidOutcome, PipelineError>;

pub(super) fn report_gate(g: &Gateway, id: &QueueId) -> Result<DeidOutcome, PipelineError> {
    let report = g.spool.get_report(id)?;
    Ok(g.gate.report(&report))
}

/// DICOM objects: one package per object (header per PS3.15, pixels through the burned-in
/// text stage), or quarantined with the reason, the raw bytes kept encrypted.
pub(super) fn dicom_gate(g: &Gateway, id: &QueueId) -> Result<DeidOutcome, PipelineError> {
    let bytes = g.spool.get_bytes(id)?;
    let label = format!("dicom item {id}");
    Ok(g.gate.dicom(&label, &bytes))
}

/// Items that arrive on their own (HL7 reports, DICOM objects): received → (gate) →
/// deidentified → uplink. Polls the database, woken by the listener, so items left
/// `received` by a crash are picked up too.
pub(super) async fn spooled_stage(
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
    let width = gw.gate.parallelism();
    loop {
        let ids = gw.db.ids_in_state(ItemState::Received, kind)?;
        for chunk in ids.chunks(width) {
            let running: Vec<_> = chunk
                .iter()
                .map(|id| {
                    let (g, id) = (gw.clone(), id.clone());
                    tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
                        // The package stored in the outbox, or why the item stays on the box;
                        // a panic quarantines this item (`internal-error`), not the daemon.
                        let work = catch_item(what, || -> Result<_, PipelineError> {
                            Ok(match gate(&g, &id)? {
                                DeidOutcome::Package { package, .. } => {
                                    Ok(g.store_package(what, &package)?)
                                }
                                DeidOutcome::Quarantined { reason } => Err(reason),
                            })
                        });
                        work.unwrap_or_else(|reason| Ok(Err(reason)))
                    })
                })
                .collect();
            for (id, task) in chunk.iter().cloned().zip(running) {
                let outcome = task.await.map_err(|e| super::joined(what, e))??;
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
    what: &'static str,
    to_up: &mpsc::Sender<QueueId>,
) -> Result<(), PipelineError> {
    match outcome {
        Err(reason) => {
            gw.persist(what, || gw.quarantine_exam(&id, ItemState::Received, &reason)).await?
        }
        Ok(pkg) => {
            gw.persist(what, || {
                let update = Update { package_id: Some(pkg.clone()), ..Default::default() };
                gw.db.transition(&id, ItemState::Received, ItemState::Deidentified, update)
            })
            .await?;
            debug!(item = %id, package = %pkg, kind = what, "de-identified");
            send(to_up, id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use crate::state::{ItemReason, NewItem, Origin};
    use std::path::Path;

    /// A gate that panics on the first item it sees, with a payload holding a marker, and
    /// quarantines the others the ordinary way.
    fn panics_once(_: &Gateway, id: &QueueId) -> Result<DeidOutcome, PipelineError> {
        static FIRST: std::sync::OnceLock<QueueId> = std::sync::OnceLock::new();
        if FIRST.get_or_init(|| id.clone()) == id {
            panic!("MARKER-STAGE-PANIC 山田 太郎");
        }
        Ok(DeidOutcome::Quarantined { reason: QuarantineReason::FieldNotFound })
    }

    /// A panic in one item's gate quarantines that item (`internal-error`, no payload) and
    /// the stage goes on with the next; it used to end the stage, and so the daemon.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_item_is_quarantined_and_the_stage_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("facility_id = \"F0001\"\nstate_dir = \"{}\"\n", dir.path().display());
        let cfg = GatewayConfig::from_toml(Path::new("/etc/g.toml"), &text).unwrap();
        let gw = Arc::new(Gateway::open(cfg).unwrap());
        let mut ids = vec![];
        for _ in 0..3 {
            let item = NewItem::new(ItemKind::Dicom, Origin::Daemon, "test");
            gw.spool.put_bytes(&item.id, b"raw").unwrap();
            gw.db.insert(&item).unwrap();
            ids.push(item.id);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        stop_tx.send(true).unwrap(); // one pass, then stop
        let (to_up, _up_rx) = mpsc::channel(8);
        let notify = Arc::new(tokio::sync::Notify::new());
        spooled_stage(gw.clone(), ItemKind::Dicom, panics_once, notify, to_up, stop_rx)
            .await
            .expect("the stage survives a panicking item");

        let mut reasons: Vec<String> = ids
            .iter()
            .map(|id| {
                let item = gw.db.get(id).unwrap();
                assert_eq!(item.state, ItemState::Quarantined);
                match item.reason {
                    Some(ItemReason::Quarantined(r)) => r.to_string(),
                    other => panic!("unexpected reason {other:?}"),
                }
            })
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            ["fov-not-found", "fov-not-found", "internal-error: panic in the dicom stage"]
        );
        // The panicking item's raw input is kept (encrypted) in quarantine, not lost.
        assert_eq!(gw.quarantine.len().unwrap(), 3);
    }
}
