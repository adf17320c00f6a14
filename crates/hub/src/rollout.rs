//! Rollouts (issue 13): a release reaches the fleet in waves.
//!
//! Each wave is a cumulative share of the fleet (10, 50, 100 %) with a start time. Which
//! boxes are in a share is decided by a stable per-device seed: a bucket 0..100 from the
//! SHA-256 of the device id, so the same boxes go first in every rollout (the fleet's
//! canaries) and a box never leaves a wave it was in. The hub only points a box at a
//! version; the box installs it only if the signed TUF targets list it.
//!
//! A rollout halts itself when boxes that took the release report failures (their
//! heartbeat's `updates`) at or above `halt_percent` of those that reported, and at least
//! `halt_min` of them. An operator can pause, resume or roll back.

use crate::store::{MetaStore, NewRollout, RolloutRecord, RolloutState, StoreError, Wave};
use chrono::{DateTime, Utc};
use fgw_format::package::protocol::{UpdateOffer, UpdateOffers};
use fgw_release::ReleaseKind;
use serde::Serialize;
use std::time::Duration;

/// Why a rollout could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No release of that version (and kind) was published.
    #[error("no published release {version} (hub release publish first)")]
    UnknownRelease {
        /// The version asked for.
        version: String,
    },
    /// A policy and an OS release share the version: the kind must be given.
    #[error("release {version} exists as policy and os: pass --kind")]
    Ambiguous {
        /// The version.
        version: String,
    },
    /// The waves are not increasing percentages ending at most at 100.
    #[error("waves must be increasing percentages from 1 to 100, e.g. 10,50,100")]
    Waves,
    /// No rollout has that id.
    #[error("no rollout {id}")]
    UnknownRollout {
        /// The id.
        id: i64,
    },
    /// The action does not apply in the rollout's state.
    #[error("rollout {id} is {state}: cannot {action}")]
    State {
        /// The id.
        id: i64,
        /// Its state.
        state: &'static str,
        /// The action.
        action: &'static str,
    },
}

/// Parses `10,50,100` into waves starting at `start`, one `interval` apart.
pub fn parse_waves(
    spec: &str,
    start: DateTime<Utc>,
    interval: Duration,
) -> Result<Vec<Wave>, RolloutError> {
    let mut waves = Vec::new();
    let mut last = 0u8;
    for (i, part) in spec.split(',').enumerate() {
        let p: u8 = part.trim().parse().map_err(|_| RolloutError::Waves)?;
        if p <= last || p > 100 {
            return Err(RolloutError::Waves);
        }
        last = p;
        let offset =
            chrono::Duration::from_std(interval * i as u32).map_err(|_| RolloutError::Waves)?;
        waves.push(Wave { percent: p, starts_at: rfc3339(start + offset) });
    }
    if waves.is_empty() {
        return Err(RolloutError::Waves);
    }
    Ok(waves)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The device's stable bucket, 0..100.
pub fn bucket(device: &str) -> u8 {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("fgw-rollout-seed/1:{device}").as_bytes(),
    );
    let mut n = [0u8; 8];
    n.copy_from_slice(&d.as_ref()[..8]);
    (u64::from_be_bytes(n) % 100) as u8
}

/// What to roll out, and how.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    /// The release version.
    pub version: String,
    /// Its kind, when the version alone is ambiguous.
    pub kind: Option<ReleaseKind>,
    /// The waves.
    pub waves: Vec<Wave>,
    /// Halt threshold: percent of reporting boxes. Default 10.
    pub halt_percent: u8,
    /// Halt threshold: at least this many failed boxes. Default 2.
    pub halt_min: u32,
    /// Install outside the maintenance window and with today's exams waiting.
    pub force: bool,
}

/// Creates a rollout of a published release; the kind's earlier rollout is superseded and
/// its release becomes what a roll-back returns to.
pub fn create(meta: &dyn MetaStore, plan: &RolloutPlan) -> Result<RolloutRecord, RolloutError> {
    let releases = meta.releases()?;
    let matching: Vec<_> = releases
        .iter()
        .filter(|r| r.version == plan.version)
        .filter(|r| plan.kind.is_none_or(|k| r.kind == k.as_str()))
        .collect();
    let release = match matching.as_slice() {
        [] => return Err(RolloutError::UnknownRelease { version: plan.version.clone() }),
        [one] => *one,
        _ => return Err(RolloutError::Ambiguous { version: plan.version.clone() }),
    };
    let previous = meta
        .rollouts()?
        .into_iter()
        .find(|r| r.kind == release.kind && r.state != RolloutState::RolledBack)
        .map(|r| r.version)
        .filter(|v| *v != release.version);
    let id = meta.create_rollout(&NewRollout {
        kind: release.kind.clone(),
        version: release.version.clone(),
        previous,
        waves: plan.waves.clone(),
        halt_percent: plan.halt_percent,
        halt_min: plan.halt_min,
        force: plan.force,
    })?;
    find(meta, id)
}

fn find(meta: &dyn MetaStore, id: i64) -> Result<RolloutRecord, RolloutError> {
    meta.rollouts()?.into_iter().find(|r| r.id == id).ok_or(RolloutError::UnknownRollout { id })
}

/// An operator's action on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop offering the release to boxes that do not have it.
    Pause,
    /// Offer it again (also after a halt, once the cause is understood).
    Resume,
    /// Offer the previous release to every box.
    Rollback,
}

/// Applies `action` to rollout `id`.
pub fn act(meta: &dyn MetaStore, id: i64, action: Action) -> Result<RolloutRecord, RolloutError> {
    let r = find(meta, id)?;
    use RolloutState::*;
    let (to, name) = match (action, r.state) {
        (Action::Pause, Active) => (Paused, "pause"),
        (Action::Resume, Paused | Halted) => (Active, "resume"),
        (Action::Rollback, Active | Paused | Halted) => (RolledBack, "roll back"),
        (a, s) => {
            let action = match a {
                Action::Pause => "pause",
                Action::Resume => "resume",
                Action::Rollback => "roll back",
            };
            return Err(RolloutError::State { id, state: s.as_str(), action });
        }
    };
    meta.set_rollout_state(id, to, Some(&format!("operator_{}", name.replace(' ', "_"))))?;
    tracing::info!(rollout = id, action = name, "rollout changed by an operator");
    find(meta, id)
}

/// The wave that includes a box with `bucket`, if any: its index and start.
fn wave_of(waves: &[Wave], bucket: u8) -> Option<(usize, &Wave)> {
    waves.iter().enumerate().find(|(_, w)| bucket < w.percent)
}

fn started(w: &Wave, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(&w.starts_at).map(|t| t <= now).unwrap_or(false)
}

/// What `rollout` offers `device` at `now`.
pub fn offer(rollout: &RolloutRecord, device: &str, now: DateTime<Utc>) -> UpdateOffer {
    let wave = wave_of(&rollout.waves, bucket(device));
    let mut offer = UpdateOffer {
        kind: rollout.kind.clone(),
        state: rollout.state.as_str().into(),
        version: None,
        rollout: rollout.id,
        wave: wave.map(|(i, _)| i as u32),
        wave_starts: wave.map(|(_, w)| w.starts_at.clone()),
        force: rollout.force,
    };
    match rollout.state {
        RolloutState::Active => match wave {
            Some((_, w)) if started(w, now) => {
                offer.state = "offered".into();
                offer.version = Some(rollout.version.clone());
            }
            _ => offer.state = "not_in_wave".into(),
        },
        RolloutState::RolledBack => offer.version = rollout.previous.clone(),
        RolloutState::Paused | RolloutState::Halted | RolloutState::Superseded => {}
    }
    offer
}

/// The offers for `device`: the newest rollout of each kind that is not superseded.
pub fn offers_for(
    meta: &dyn MetaStore,
    device: &str,
    now: DateTime<Utc>,
) -> Result<UpdateOffers, RolloutError> {
    let mut offers: Vec<UpdateOffer> = Vec::new();
    for r in meta.rollouts()? {
        if r.state == RolloutState::Superseded || offers.iter().any(|o| o.kind == r.kind) {
            continue;
        }
        offers.push(offer(&r, device, now));
    }
    Ok(UpdateOffers { offers })
}

/// A rollout with what the fleet reported of it.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    /// The rollout.
    #[serde(flatten)]
    pub rollout: RolloutRecord,
    /// Boxes whose heartbeat reports the release installed.
    pub installed: u64,
    /// Boxes whose heartbeat reports it failed (self-test or health check).
    pub failed: u64,
    /// Boxes in a wave that has started.
    pub offered_boxes: u64,
    /// Boxes that sent a heartbeat.
    pub fleet: u64,
    /// Index of the newest wave that has started, if any.
    pub current_wave: Option<usize>,
}

/// Every rollout with its counts, newest first.
pub fn status(
    meta: &dyn MetaStore,
    now: DateTime<Utc>,
) -> Result<Vec<RolloutStatus>, RolloutError> {
    let fleet = meta.fleet()?;
    let mut out = Vec::new();
    for r in meta.rollouts()? {
        let (mut installed, mut failed, mut offered) = (0, 0, 0);
        for row in &fleet {
            if let Some(u) = row.heartbeat.updates.get(&r.kind) {
                if u.version == r.version {
                    match u.outcome.as_str() {
                        "installed" => installed += 1,
                        "failed" => failed += 1,
                        _ => {}
                    }
                }
            }
            if wave_of(&r.waves, bucket(&row.device)).is_some_and(|(_, w)| started(w, now)) {
                offered += 1;
            }
        }
        let current_wave = r.waves.iter().rposition(|w| started(w, now));
        out.push(RolloutStatus {
            rollout: r,
            installed,
            failed,
            offered_boxes: offered,
            fleet: fleet.len() as u64,
            current_wave,
        });
    }
    Ok(out)
}

/// The rollouts as the dashboard shows them: per wave its share, start and whether it has
/// started; the counts of boxes updated and failed.
pub fn summaries(
    meta: &dyn MetaStore,
    now: DateTime<Utc>,
) -> Result<Vec<crate::store::RolloutSummary>, StoreError> {
    let all = status(meta, now).map_err(|e| match e {
        RolloutError::Store(s) => s,
        other => StoreError::Corrupt { path: "rollouts".into(), what: other.to_string() },
    })?;
    Ok(all
        .into_iter()
        .map(|s| crate::store::RolloutSummary {
            release: s.rollout.version.clone(),
            kind: s.rollout.kind.clone(),
            waves: s
                .rollout
                .waves
                .iter()
                .map(|w| {
                    let st = if started(w, now) { "started" } else { "pending" };
                    (w.percent, w.starts_at.clone(), st.to_string())
                })
                .collect(),
            state: s.rollout.state.as_str().to_string(),
            updated: s.installed,
            failed: s.failed,
        })
        .collect())
}

/// Halts every active rollout whose failures reached its threshold; returns the ids halted.
pub fn evaluate(meta: &dyn MetaStore, now: DateTime<Utc>) -> Result<Vec<i64>, RolloutError> {
    let mut halted = Vec::new();
    for s in status(meta, now)? {
        let r = &s.rollout;
        if r.state != RolloutState::Active {
            continue;
        }
        let reported = s.installed + s.failed;
        if s.failed >= u64::from(r.halt_min.max(1))
            && s.failed * 100 >= u64::from(r.halt_percent) * reported
        {
            let reason = format!("health_failed_{}_of_{}", s.failed, reported);
            meta.set_rollout_state(r.id, RolloutState::Halted, Some(&reason))?;
            tracing::warn!(rollout = r.id, failed = s.failed, reported, "rollout halted itself");
            halted.push(r.id);
        }
    }
    Ok(halted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("gw-1"), bucket("gw-1"));
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[bucket(&format!("gw-{i}")) as usize / 10] += 1;
        }
        // Each tenth of the buckets holds about a tenth of 10,000 boxes.
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
    }

    #[test]
    fn waves_must_increase_to_at_most_100() {
        let t = Utc::now();
        let w = parse_waves("10,50,100", t, Duration::from_secs(3600)).unwrap();
        assert_eq!(w.iter().map(|w| w.percent).collect::<Vec<_>>(), [10, 50, 100]);
        assert_eq!(w[1].starts_at, rfc3339(t + chrono::Duration::hours(1)));
        for bad in ["", "0", "50,10", "10,10", "101", "a,b", "10,,100"] {
            assert!(parse_waves(bad, t, Duration::from_secs(1)).is_err(), "{bad}");
        }
    }

    fn rollout(state: RolloutState, waves: Vec<Wave>) -> RolloutRecord {
        RolloutRecord {
            id: 1,
            kind: "policy".into(),
            version: "2".into(),
            previous: Some("1".into()),
            waves,
            state,
            halt_percent: 10,
            halt_min: 2,
            force: false,
            reason: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_box_is_offered_the_release_once_its_wave_started() {
        let now = Utc::now();
        let waves = parse_waves("10,100", now, Duration::from_secs(3600)).unwrap();
        let r = rollout(RolloutState::Active, waves);
        let first = (0..1000).map(|i| format!("gw-{i}")).find(|d| bucket(d) < 10).unwrap();
        let later = (0..1000).map(|i| format!("gw-{i}")).find(|d| bucket(d) >= 10).unwrap();
        let o = offer(&r, &first, now);
        assert_eq!(
            (o.state.as_str(), o.version.as_deref(), o.wave),
            ("offered", Some("2"), Some(0))
        );
        let o = offer(&r, &later, now);
        assert_eq!((o.state.as_str(), o.version, o.wave), ("not_in_wave", None, Some(1)));
        let o = offer(&r, &later, now + chrono::Duration::hours(2));
        assert_eq!(o.version.as_deref(), Some("2"));
        // Paused and halted offer nothing; rolled back offers the previous release to all.
        assert_eq!(
            offer(&rollout(RolloutState::Paused, r.waves.clone()), &first, now).version,
            None
        );
        assert_eq!(
            offer(&rollout(RolloutState::Halted, r.waves.clone()), &first, now).version,
            None
        );
        let back = offer(&rollout(RolloutState::RolledBack, r.waves.clone()), &later, now);
        assert_eq!((back.state.as_str(), back.version.as_deref()), ("rolled_back", Some("1")));
    }
}
