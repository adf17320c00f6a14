//! Operator work on raw data kept on the box, for the daemon and the `gateway quarantine`
//! commands alike: the retention purge and the re-drive of items whose cause is fixed.
//!
//! Both write an audit record (state database `audit` table, and a log line) with item ids,
//! reason codes and counts; never a value or a locator.

use crate::config::GatewayConfig;
use crate::secrets::Secrets;
use crate::spool::{Spool, SpoolError};
use crate::state::{Db, PurgeReport, Redrive, RedriveReport, RedriveTo, StateError};

/// Why a maintenance command could not run.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The spool or quarantine directory could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The secret store (the spool's key) could not be opened.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// Deletes the raw data of items kept on the box for more than `older_than_days` (see
/// [`Db::purge_raw`]) from `quarantine`, and logs the audit line.
pub(crate) fn purge_with(
    db: &Db,
    quarantine: &Spool,
    older_than_days: u32,
) -> Result<PurgeReport, StateError> {
    let report = db.purge_raw(older_than_days, |id| {
        quarantine.remove(id).map_err(|e| {
            tracing::warn!(item = %id, error = %e, "quarantined raw data not deleted");
            e.to_string()
        })
    })?;
    if !report.purged.is_empty() || !report.failed.is_empty() {
        let ids: Vec<&str> = report.purged.iter().map(|c| c.id.as_str()).collect();
        tracing::info!(
            audit = "purge",
            items = report.purged.len(),
            failed = report.failed.len(),
            older_than_days,
            by_reason = ?report.by_reason(),
            ids = %ids.join(","),
            "quarantine purge: raw data deleted"
        );
    }
    Ok(report)
}

/// `gateway quarantine purge`: [`purge_with`] on the box of `cfg`.
pub fn purge(cfg: &GatewayConfig, older_than_days: u32) -> Result<PurgeReport, MaintenanceError> {
    let secrets = Secrets::open_for(cfg)?;
    let db = Db::open(&cfg.db_path())?;
    let quarantine = Spool::open(&cfg.quarantine_dir(), secrets.spool_key())?;
    Ok(purge_with(&db, &quarantine, older_than_days)?)
}

/// `gateway quarantine redrive`: items of `which` whose reason allows it go back into the
/// pipeline, their raw data moved from the quarantine to the spool (see [`Db::redrive`]). The
/// daemon takes them up when it next starts.
pub fn redrive(cfg: &GatewayConfig, which: &Redrive) -> Result<RedriveReport, MaintenanceError> {
    let secrets = Secrets::open_for(cfg)?;
    let db = Db::open(&cfg.db_path())?;
    let spool = Spool::open(&cfg.spool_dir(), secrets.spool_key())?;
    let quarantine = Spool::open(&cfg.quarantine_dir(), secrets.spool_key())?;
    let report = db.redrive(which, |id| {
        if !quarantine.exists(id) {
            return Err("raw data not in quarantine".into());
        }
        quarantine.move_to(id, &spool).map_err(|e| e.to_string())
    })?;
    if !report.redriven.is_empty() {
        let ids: Vec<String> = report
            .redriven
            .iter()
            .map(|(id, to)| {
                let to = match to {
                    RedriveTo::Upload => "deidentified",
                    RedriveTo::Gate => "received",
                };
                format!("{id}->{to}")
            })
            .collect();
        tracing::info!(audit = "redrive", items = report.redriven.len(), ids = %ids.join(","), "quarantine re-drive");
    }
    Ok(report)
}
