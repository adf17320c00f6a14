//! Updates (issue 13): what the hub's rollouts offer this box, verified with TUF against
//! the root baked into the image, then applied (policy bundles, at once, after their
//! self-test) or staged / installed with RAUC (OS bundles, inside the maintenance window
//! and never while exams wait to upload, unless the rollout forces it).
//!
//! The hub's offer is only a pointer: a version the signed targets do not list is refused.
//! `gateway update check --json` prints the same decisions the daemon makes.

use crate::config::GatewayConfig;
use crate::release_transport::RepoSource;
use crate::state::{Db, MetaKey, Origin};
use crate::update_bundle::{self, OsInstall};
use fgw_format::package::protocol::{UpdateOffer, UpdateReport};
use fgw_release::bundle::PolicyBundle;
use fgw_release::{ReleaseKind, ReleaseTarget, ReleaseVersion, Trusted, Verifier};
use serde::Serialize;
use std::path::PathBuf;

/// What the box does with one kind of release now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Install (apply) it now.
    Install,
    /// The box already runs it.
    UpToDate,
    /// Not now: not in a started wave, paused, halted, or outside the window.
    Wait,
    /// Offered, but verification refused it.
    Refuse,
    /// Nothing is offered.
    None,
}

/// One kind's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// `policy` or `os`.
    pub kind: String,
    /// The hub's offer state (`offered`, `not_in_wave`, `paused`, …), if a rollout exists.
    pub offer_state: Option<String>,
    /// The version offered.
    pub offered_version: Option<String>,
    /// The rollout.
    pub rollout: Option<i64>,
    /// The box's wave.
    pub wave: Option<u32>,
    /// When that wave starts.
    pub wave_starts: Option<String>,
    /// The signed target, once verified.
    pub target: Option<ReleaseTarget>,
    /// What the box does.
    pub verdict: Verdict,
    /// Why (codes and versions only).
    pub reason: String,
}

/// `gateway update check --json`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The running software's version.
    pub os_version: String,
    /// The policy in force, `<id>@<version>`.
    pub policy_version: String,
    /// The policy release in force, if one was applied.
    pub policy_release: Option<String>,
    /// The trusted root file.
    pub tuf_root: PathBuf,
    /// The verified timestamp's version, when the repository verified.
    pub timestamp_version: Option<u64>,
    /// The verification's error class and message, when it did not.
    pub error: Option<CheckError>,
    /// Per kind.
    pub updates: Vec<Decision>,
}

/// An error of the check, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CheckError {
    /// A code (`tuf_expired`, `hub_unreachable`, …).
    pub class: String,
    /// The message (names files, roles, URLs; no data).
    pub message: String,
}

/// The running software's version.
pub fn os_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Whether release `v` of the policy is the one in force (`N` or `id@N`).
fn policy_is(v: &str, cfg: &GatewayConfig) -> bool {
    match v.split_once('@') {
        Some((id, n)) => id == cfg.deid.id && n.parse() == Ok(cfg.deid.version),
        None => v.parse() == Ok(cfg.deid.version),
    }
}

fn datastore(cfg: &GatewayConfig) -> PathBuf {
    cfg.state_dir.join("updates").join("tuf")
}

/// The verifier of this box, or why there is none.
fn verifier(cfg: &GatewayConfig) -> Result<Verifier, CheckError> {
    Verifier::from_root_file(&cfg.update.tuf_root, &datastore(cfg))
        .map_err(|e| CheckError { class: "no_trusted_root".into(), message: e.to_string() })
}

/// Decides, for each offer (or each kind, without offers), what to do; verifies offered
/// versions against `source`'s signed targets. `waiting_exams`: items not yet uploaded.
pub async fn check(
    cfg: &GatewayConfig,
    offers: Result<Vec<UpdateOffer>, CheckError>,
    source: &RepoSource,
    waiting_exams: u64,
) -> (CheckReport, Option<Trusted>) {
    let mut report = CheckReport {
        os_version: os_version(),
        policy_version: format!("{}@{}", cfg.deid.id, cfg.deid.version),
        policy_release: crate::policy_store::current_release(&cfg.state_dir).ok().flatten(),
        tuf_root: cfg.update.tuf_root.clone(),
        timestamp_version: None,
        error: None,
        updates: Vec::new(),
    };
    let offers = match offers {
        Ok(o) => o,
        Err(e) => {
            report.error = Some(e);
            return (report, None);
        }
    };
    let trusted = match verifier(cfg) {
        Err(e) => Err(e),
        Ok(v) => source
            .load(&v)
            .await
            .map_err(|e| CheckError { class: e.class().into(), message: e.to_string() }),
    };
    let trusted = match trusted {
        Ok(t) => {
            report.timestamp_version = Some(t.timestamp_version());
            Some(t)
        }
        Err(e) => {
            report.error = Some(e);
            None
        }
    };
    for kind in [ReleaseKind::Policy, ReleaseKind::Os] {
        let offer = offers.iter().find(|o| o.kind == kind.as_str());
        report.updates.push(decide(cfg, kind, offer, trusted.as_ref(), &report, waiting_exams));
    }
    (report, trusted)
}

fn decide(
    cfg: &GatewayConfig,
    kind: ReleaseKind,
    offer: Option<&UpdateOffer>,
    trusted: Option<&Trusted>,
    report: &CheckReport,
    waiting_exams: u64,
) -> Decision {
    let mut d = Decision {
        kind: kind.as_str().into(),
        offer_state: offer.map(|o| o.state.clone()),
        offered_version: offer.and_then(|o| o.version.clone()),
        rollout: offer.map(|o| o.rollout),
        wave: offer.and_then(|o| o.wave),
        wave_starts: offer.and_then(|o| o.wave_starts.clone()),
        target: None,
        verdict: Verdict::None,
        reason: String::new(),
    };
    let Some(offer) = offer else {
        d.reason = "no rollout of this kind".into();
        return d;
    };
    let Some(version) = offer.version.as_deref() else {
        d.verdict = Verdict::Wait;
        d.reason = match offer.state.as_str() {
            "not_in_wave" => match &offer.wave_starts {
                Some(t) => format!("this box's wave {} starts at {t}", offer.wave.unwrap_or(0)),
                None => "this box is in no wave of the rollout".into(),
            },
            s => format!("rollout {} is {s}", offer.rollout),
        };
        return d;
    };
    let current = match kind {
        ReleaseKind::Policy => policy_is(version, cfg),
        ReleaseKind::Os => version == report.os_version,
    };
    if current {
        d.verdict = Verdict::UpToDate;
        d.reason = format!("{kind} {version} is in force");
        return d;
    }
    let Some(trusted) = trusted else {
        d.verdict = Verdict::Refuse;
        d.reason = "the release repository did not verify".into();
        return d;
    };
    let target = ReleaseVersion::new(version).ok().and_then(|v| trusted.release(kind, &v));
    let Some(target) = target else {
        d.verdict = Verdict::Refuse;
        d.reason = format!("{kind} {version} is not in the signed targets");
        return d;
    };
    d.target = Some(target);
    if kind == ReleaseKind::Os && !offer.force {
        let window = update_bundle::parse_window(&cfg.update.maintenance_window);
        let now = chrono::Local::now();
        let minute = chrono::Timelike::hour(&now) * 60 + chrono::Timelike::minute(&now);
        if cfg.update.os_install == OsInstall::Rauc
            && !window.is_some_and(|w| update_bundle::in_window(w, minute))
        {
            d.verdict = Verdict::Wait;
            d.reason = format!("outside the maintenance window {}", cfg.update.maintenance_window);
            return d;
        }
        if waiting_exams > 0 {
            d.verdict = Verdict::Wait;
            d.reason = format!("{waiting_exams} item(s) still waiting to upload");
            return d;
        }
    }
    d.verdict = Verdict::Install;
    d.reason = format!(
        "offered by rollout {}{}; signed target {} verified",
        offer.rollout,
        offer.wave.map(|w| format!(", wave {w}")).unwrap_or_default(),
        d.target.as_ref().map(|t| t.name.as_str()).unwrap_or("")
    );
    d
}

/// What applying one decision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `policy` or `os`.
    pub kind: String,
    /// The release version.
    pub version: String,
    /// `installed`, `failed`, `refused` or `staged`.
    pub outcome: String,
    /// Why (codes, versions, file names; no data).
    pub detail: String,
}

/// Applies every `install` decision: a policy now (self-test first), an OS bundle staged
/// or installed with RAUC. Records each outcome for the heartbeat when `db` is given.
pub async fn apply(
    cfg: &GatewayConfig,
    report: &CheckReport,
    trusted: &Trusted,
    source: &RepoSource,
    db: Option<&Db>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for d in report.updates.iter().filter(|d| d.verdict == Verdict::Install) {
        let Some(target) = &d.target else { continue };
        let o = match target.kind {
            ReleaseKind::Policy => apply_policy(cfg, trusted, target).await,
            ReleaseKind::Os => apply_os(cfg, trusted, source, target).await,
        };
        match o.outcome.as_str() {
            "installed" | "staged" => {
                tracing::info!(kind = %o.kind, version = %o.version, outcome = %o.outcome, detail = %o.detail, "update")
            }
            _ => {
                tracing::error!(kind = %o.kind, version = %o.version, outcome = %o.outcome, detail = %o.detail, "update")
            }
        }
        if let Some(db) = db {
            record(db, &o);
        }
        out.push(o);
    }
    out
}

fn record(db: &Db, o: &Outcome) {
    let key = if o.kind == "os" { MetaKey::UpdateOs } else { MetaKey::UpdatePolicy };
    let report = UpdateReport {
        version: o.version.clone(),
        outcome: o.outcome.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let json = serde_json::to_string(&report).expect("a report serializes");
    if let Err(e) = db.set_meta(key, &json) {
        tracing::warn!(error = %e, "update outcome not recorded");
    }
}

async fn apply_policy(cfg: &GatewayConfig, trusted: &Trusted, target: &ReleaseTarget) -> Outcome {
    let mut o = Outcome {
        kind: "policy".into(),
        version: target.version.to_string(),
        outcome: "refused".into(),
        detail: String::new(),
    };
    let bytes = match trusted.read(target).await {
        Ok(b) => b,
        Err(e) => {
            o.detail = format!("{}: {e}", e.class());
            return o;
        }
    };
    let bundle = match PolicyBundle::parse(&bytes) {
        Ok(b) => b,
        Err(e) => {
            o.detail = e.to_string();
            return o;
        }
    };
    let state = cfg.state_dir.clone();
    match tokio::task::spawn_blocking(move || crate::policy_store::apply(&state, &bundle)).await {
        Ok(Ok(applied)) => {
            o.outcome = "installed".into();
            o.detail = format!("policy {} in force", applied.policy_version);
        }
        Ok(Err(e)) => {
            o.outcome = "failed".into();
            o.detail = e.to_string();
        }
        Err(_) => {
            o.outcome = "failed".into();
            o.detail = "self-test task failed".into();
        }
    }
    o
}

/// Where resumable downloads of OS bundles wait: `<state_dir>/updates/partial`.
pub fn partial_dir(cfg: &GatewayConfig) -> PathBuf {
    cfg.state_dir.join("updates").join("partial")
}

async fn apply_os(
    cfg: &GatewayConfig,
    trusted: &Trusted,
    source: &RepoSource,
    target: &ReleaseTarget,
) -> Outcome {
    let mut o = Outcome {
        kind: "os".into(),
        version: target.version.to_string(),
        outcome: "refused".into(),
        detail: String::new(),
    };
    let dir = cfg.state_dir.join("updates");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        o.detail = format!("{}: {e}", dir.display());
        return o;
    }
    let dest = dir.join(&target.name);
    // Resumable through the uplink: the transport downloads into a partial file, at most
    // the signed length; tough then checks it.
    if let RepoSource::Hub(transport, _) = source {
        transport.expect(&target.name, target.length);
    }
    let partial = crate::release_transport::partial_path(&partial_dir(cfg), &target.name);
    let fetched = trusted.fetch_to(target, &dest).await;
    if fetched.is_ok() || matches!(&fetched, Err(e) if e.class() == "tuf_mismatch") {
        // Done, or bytes that are not the release: never resume from them.
        let _ = std::fs::remove_file(&partial);
    }
    if let Err(e) = fetched {
        o.detail = format!("{}: {e}", e.class());
        return o;
    }
    let settings = cfg.update.clone();
    let bundle = dest.clone();
    match tokio::task::spawn_blocking(move || update_bundle::verify(&settings, &bundle)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&dest);
            o.detail = e.to_string();
            return o;
        }
        Err(_) => {
            o.detail = "bundle check task failed".into();
            return o;
        }
    }
    match cfg.update.os_install {
        OsInstall::Stage => {
            o.outcome = "staged".into();
            o.detail = format!("{} verified (TUF and RAUC) and kept", target.name);
        }
        OsInstall::Rauc => {
            let bundle = dest.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("rauc").arg("install").arg(&bundle).output()
            })
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("rauc task failed")));
            match out {
                Ok(out) if out.status.success() => {
                    o.outcome = "installing".into();
                    o.detail = "installed to the other slot; rebooting".into();
                    // The health check after boot marks the slot good or bad (RAUC then
                    // falls back by itself).
                    let _ = std::process::Command::new("systemctl").arg("reboot").status();
                }
                Ok(out) => {
                    o.outcome = "failed".into();
                    o.detail = format!("rauc install exited {}", out.status.code().unwrap_or(-1));
                }
                Err(e) => {
                    o.outcome = "failed".into();
                    o.detail = format!("rauc: {e}");
                }
            }
        }
    }
    o
}

/// Items not uploaded yet (received, normalized, de-identified).
pub fn waiting(db: &Db) -> u64 {
    db.counts(Origin::Daemon)
        .map(|c| {
            use crate::state::ItemState::*;
            [Received, Normalized, Deidentified]
                .iter()
                .map(|s| c.get(s).copied().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
