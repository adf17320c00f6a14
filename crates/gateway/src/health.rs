//! The health check after an OS update boots (issue 13): is this slot good?
//!
//! `gateway update health --mark` runs after boot (a systemd unit ordered after the
//! daemon). It checks that the daemon's unit is active, the state database opens, the TPM
//! identity signs (its key and operational certificate load), the hub is reachable with it,
//! and an authenticated write round-trips (the box's heartbeat, accepted by the hub). All
//! pass: `rauc status mark-good`. Any fails: `rauc status mark-bad` and a reboot, after
//! which the boot loader starts the other (old) slot.

use crate::config::GatewayConfig;
use crate::state::Db;
use serde::Serialize;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `daemon`, `state`, `identity`, `hub`, `round_trip`.
    pub name: &'static str,
    /// Passed.
    pub ok: bool,
    /// Why not, or what was checked (no data).
    pub detail: String,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Every check passed.
    pub healthy: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// What was done with RAUC (`mark-good`, `mark-bad`), if asked to mark.
    pub marked: Option<String>,
}

fn check(name: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check { name, ok: true, detail },
        Err(detail) => Check { name, ok: false, detail },
    }
}

/// Runs the checks. `unit`: the daemon's systemd unit, if it is to be checked; `uplink`:
/// a client with the box's identity (made by the caller: it opens the TPM).
pub async fn run(
    cfg: &GatewayConfig,
    unit: Option<&str>,
    uplink: Result<fgw_outbound::uplink::Uplink, String>,
) -> Health {
    let mut checks = Vec::new();
    if let Some(unit) = unit {
        let active = std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .map_err(|e| format!("systemctl: {e}"))
            .and_then(|s| {
                if s.success() {
                    Ok(format!("{unit} active"))
                } else {
                    Err(format!("{unit} not active"))
                }
            });
        checks.push(check("daemon", active));
    }
    let db = Db::open(&cfg.db_path()).map_err(|e| e.to_string());
    checks.push(check(
        "state",
        db.as_ref().map(|_| "state database opens".into()).map_err(Clone::clone),
    ));
    let uplink = match uplink {
        Ok(u) => {
            checks.push(check("identity", Ok("box certificate and key load".into())));
            u
        }
        Err(e) => {
            checks.push(check("identity", Err(e)));
            return Health { healthy: false, checks, marked: None };
        }
    };
    checks.push(check(
        "hub",
        uplink.health().await.map(|()| "hub answered".into()).map_err(|e| e.to_string()),
    ));
    let round_trip = match &db {
        Ok(db) => match crate::heartbeat::build(cfg, db, crate::heartbeat::VpnState::Off) {
            Ok(hb) => uplink
                .heartbeat(&hb)
                .await
                .map(|()| "heartbeat accepted by the hub".into())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(_) => Err("no state database".into()),
    };
    checks.push(check("round_trip", round_trip));
    Health { healthy: checks.iter().all(|c| c.ok), checks, marked: None }
}

/// Marks the booted slot with RAUC: good if `health.healthy`, else bad, then reboots into
/// the other slot.
pub fn mark(health: &mut Health) {
    let how = if health.healthy { "mark-good" } else { "mark-bad" };
    let st = std::process::Command::new("rauc").args(["status", how]).status();
    health.marked = Some(match st {
        Ok(s) if s.success() => how.to_string(),
        Ok(s) => format!("{how} failed ({})", s.code().unwrap_or(-1)),
        Err(e) => format!("{how} failed: {e}"),
    });
    if !health.healthy {
        tracing::error!("health check failed: slot marked bad; rebooting into the other slot");
        let _ = std::process::Command::new("systemctl").arg("reboot").status();
    }
}
