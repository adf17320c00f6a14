//! The pull loop: one window of days per pass, from the watermark up to today.
//!
//! Watermark semantics: the last date all of whose studies were moved. It moves only after
//! every study of a window was moved with final status Success, so a crash or a failure
//! mid-window re-queries that window; studies already moved in it are skipped (recorded in
//! `dicom_pull_studies`), and objects that arrive twice are dropped by the SCP's sink. Today
//! is never complete (exams are still being stored): it is its own window, re-queried each
//! `poll_interval_secs`, and a study of today is moved again only if its instance count grew.
//! Dates are the box's local dates, like the StudyDate the archive matches against.

use super::scu::{PullError, Scu, StudyHit};
use super::watermark::{PullMark, PullStore};
use super::DicomPullConfig;
use crate::dicom_scp::{AeTitle, Uid};
use crate::listener::stopped;
use chrono::{Days, NaiveDate};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Study dates `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    pub(crate) fn contains(&self, d: NaiveDate) -> bool {
        (self.from..=self.to).contains(&d)
    }
}

/// The window after `watermark` (or from `start`), at most `days` long. Never past today;
/// a window that would reach today from an earlier day stops the day before, so past days
/// can complete and today stays a window of its own.
pub(crate) fn next_window(
    start: NaiveDate,
    watermark: Option<NaiveDate>,
    days: u32,
    today: NaiveDate,
) -> Window {
    let after = watermark.and_then(|w| w.succ_opt()).unwrap_or(start);
    // A clock set back below the watermark re-queries today rather than the future.
    let from = after.max(start).min(today);
    let end = from.checked_add_days(Days::new(u64::from(days.max(1)) - 1)).unwrap_or(from);
    let to = match today.pred_opt() {
        Some(yesterday) if from < today => end.min(yesterday),
        _ => today,
    };
    Window { from, to }
}

/// Whether a match must be moved: `recorded` is what [`PullStore::pulled_study`] returned. A study
/// already moved is moved again only if its instance count changed; without a count from the
/// archive, only if it is dated today (it may still be growing).
pub(crate) fn should_move(
    recorded: Option<Option<u32>>,
    instances: Option<u32>,
    date: NaiveDate,
    today: NaiveDate,
) -> bool {
    match recorded {
        None => true,
        Some(Some(n)) => instances != Some(n),
        Some(None) => instances.is_some() || date >= today,
    }
}

/// What one pass did (all counts, no values).
#[derive(Debug, Default, Clone, Copy)]
struct Pass {
    found: usize,
    moved: usize,
    skipped: usize,
    out_of_window: usize,
    /// Matches without a readable StudyDate: they belong to no window and are not moved.
    undated: usize,
    failed: usize,
    objects: u64,
}

/// Runs until `stop` turns true. Returns `Err` only when the state database fails (like the
/// other stages); archive and network failures are logged and retried after
/// `poll_interval_secs`.
pub async fn run(
    cfg: DicomPullConfig,
    scp_ae: AeTitle,
    db: impl PullStore,
    study_key: impl Fn(&Uid) -> String + Send + Sync,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PullError> {
    let Some(called_ae) = cfg.archive_ae.clone() else {
        // validate() requires it when enabled.
        warn!("dicom pull enabled without dicom_pull.archive_ae; not pulling");
        return Ok(());
    };
    let scu = Scu {
        calling_ae: cfg.calling_ae.clone().unwrap_or_else(|| scp_ae.clone()),
        called_ae: called_ae.clone(),
        host: cfg.archive_host.trim().to_string(),
        port: cfg.archive_port,
        destination: scp_ae,
    };
    // Keyed by the archive's AE title: another archive starts its own history.
    let archive = called_ae.as_str().to_string();
    let poll = Duration::from_secs(cfg.poll_interval_secs);
    let pause = Duration::from_millis(cfg.pause_between_studies_ms);
    info!(
        archive_ae = %scu.called_ae, host = %scu.host, port = scu.port,
        calling_ae = %scu.calling_ae, destination = %scu.destination, "dicom pull started"
    );
    loop {
        let today = chrono::Local::now().date_naive();
        let mark = match current_mark(&db, &archive, &cfg, today) {
            Ok(m) => m,
            Err(e) => {
                error!(archive_ae = %called_ae, error = %e, "dicom pull stopped");
                return Err(e);
            }
        };
        let w = next_window(mark.start, mark.watermark, cfg.window_days, today);
        let result = pass(&scu, &db, &archive, &study_key, w, today, pause, &mut stop).await;
        let caught_up = match result {
            Ok(p) if p.failed == 0 => {
                info!(
                    archive_ae = %called_ae, from = %w.from, to = %w.to, found = p.found,
                    moved = p.moved, skipped = p.skipped, out_of_window = p.out_of_window,
                    undated = p.undated, objects = p.objects, "dicom pull window done"
                );
                if p.undated > 0 {
                    // Some archives match studies without a date against every range; such a
                    // study has no window, so it is reported instead of moved over and over.
                    warn!(
                        archive_ae = %called_ae, from = %w.from, to = %w.to, undated = p.undated,
                        "dicom pull: matches without StudyDate are not pulled"
                    );
                }
                if w.to < today {
                    let next = PullMark { watermark: Some(w.to), ..mark };
                    if let Err(e) = db.set_pull_mark(&archive, next) {
                        error!(archive_ae = %called_ae, error = %e, "dicom pull stopped");
                        return Err(e.into());
                    }
                    info!(archive_ae = %called_ae, watermark = %w.to, "dicom pull watermark advanced");
                    false
                } else {
                    true
                }
            }
            Ok(p) => {
                warn!(
                    archive_ae = %called_ae, from = %w.from, to = %w.to, found = p.found,
                    moved = p.moved, failed = p.failed, retry_in_secs = poll.as_secs(),
                    "dicom pull window incomplete; watermark kept"
                );
                true
            }
            Err(PullError::Stopped) => return Ok(()),
            Err(e @ PullError::State(_)) => {
                error!(archive_ae = %called_ae, error = %e, "dicom pull stopped");
                return Err(e);
            }
            Err(e) => {
                warn!(
                    archive_ae = %called_ae, from = %w.from, to = %w.to, error = %e,
                    retry_in_secs = poll.as_secs(), "dicom pull window failed; watermark kept"
                );
                true
            }
        };
        // Catching up goes on at once (the pace is the pause between studies); once at
        // today, or after a failure, wait for the next poll.
        let wait = if caught_up { poll } else { Duration::ZERO };
        if sleep_or_stop(wait, &mut stop).await {
            return Ok(());
        }
    }
}

/// The stored mark, created (and persisted, so a default start does not creep forward day
/// by day) on first use; reset when `start_date` was moved before the stored start.
fn current_mark(
    db: &impl PullStore,
    archive: &str,
    cfg: &DicomPullConfig,
    today: NaiveDate,
) -> Result<PullMark, PullError> {
    let default_start = || {
        cfg.start_date.unwrap_or_else(|| {
            today.checked_sub_days(Days::new(u64::from(cfg.history_days))).unwrap_or(today)
        })
    };
    let mark = match db.pull_mark(archive)? {
        Some(m) => match cfg.start_date {
            Some(s) if s < m.start => {
                info!(archive_ae = archive, start = %s, "dicom pull start_date moved back; history restarts");
                PullMark { start: s, watermark: None }
            }
            Some(s) => PullMark { start: s, ..m },
            None => return Ok(m),
        },
        None => PullMark { start: default_start(), watermark: None },
    };
    if db.pull_mark(archive)? != Some(mark) {
        db.set_pull_mark(archive, mark)?;
    }
    Ok(mark)
}

#[allow(clippy::too_many_arguments)]
async fn pass(
    scu: &Scu,
    db: &impl PullStore,
    archive: &str,
    study_key: &impl Fn(&Uid) -> String,
    w: Window,
    today: NaiveDate,
    pause: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<Pass, PullError> {
    let hits: Vec<StudyHit> = or_stop(scu.find_studies(w.from, w.to), stop).await?;
    let mut p = Pass { found: hits.len(), ..Pass::default() };
    for (n, hit) in hits.iter().enumerate() {
        // Range matching is the archive's job; one that ignores the key must not make us
        // pull its whole content (each study is moved in its own date's window).
        let Some(date) = hit.date else {
            p.undated += 1;
            continue;
        };
        if !w.contains(date) {
            p.out_of_window += 1;
            continue;
        }
        let key = study_key(&hit.uid);
        if !should_move(db.pulled_study(archive, &key)?, hit.instances, date, today) {
            p.skipped += 1;
            continue;
        }
        match or_stop(scu.move_study(&hit.uid), stop).await {
            Ok(m) => {
                db.record_pulled_study(archive, &key, date, hit.instances)?;
                p.moved += 1;
                p.objects += u64::from(m.completed);
                debug!(
                    study = n + 1,
                    of = hits.len(),
                    objects = m.completed,
                    warnings = m.warning,
                    "dicom pull study moved"
                );
            }
            Err(e @ (PullError::Stopped | PullError::State(_))) => return Err(e),
            Err(e) => {
                p.failed += 1;
                warn!(study = n + 1, of = hits.len(), error = %e, "dicom pull study not moved");
            }
        }
        if sleep_or_stop(pause, stop).await {
            return Err(PullError::Stopped);
        }
    }
    Ok(p)
}

/// `fut`, unless the gateway stops first (the association is then dropped mid-way; the
/// window was not committed, so nothing is lost).
async fn or_stop<T>(
    fut: impl Future<Output = Result<T, PullError>>,
    stop: &mut watch::Receiver<bool>,
) -> Result<T, PullError> {
    tokio::select! {
        r = fut => r,
        _ = stopped(stop) => Err(PullError::Stopped),
    }
}

/// True when stopping.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    if d.is_zero() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stopped(stop) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_walk_to_today_and_today_stays_open() {
        let today = d("2026-03-10");
        let w = |start, mark: Option<&str>, days| next_window(d(start), mark.map(d), days, today);
        assert_eq!(w("2026-03-01", None, 1), Window { from: d("2026-03-01"), to: d("2026-03-01") });
        assert_eq!(
            w("2026-03-01", Some("2026-03-01"), 3),
            Window { from: d("2026-03-02"), to: d("2026-03-04") }
        );
        // Reaching today from an earlier day: stop the day before.
        assert_eq!(
            w("2026-03-01", Some("2026-03-05"), 30),
            Window { from: d("2026-03-06"), to: d("2026-03-09") }
        );
        // Caught up: today alone, whatever the window size.
        assert_eq!(w("2026-03-01", Some("2026-03-09"), 30), Window { from: today, to: today });
        // Watermark in the future (clock set back): today.
        assert_eq!(w("2026-03-01", Some("2026-04-01"), 1), Window { from: today, to: today });
        // A start after the watermark wins.
        assert_eq!(
            w("2026-03-05", Some("2026-03-01"), 1),
            Window { from: d("2026-03-05"), to: d("2026-03-05") }
        );
        // A start in the future: today.
        assert_eq!(w("2027-01-01", None, 1), Window { from: today, to: today });
    }

    #[test]
    fn moved_studies_are_skipped_unless_they_grew() {
        let (past, today) = (d("2026-03-01"), d("2026-03-10"));
        assert!(should_move(None, Some(3), past, today));
        assert!(should_move(None, None, past, today));
        assert!(!should_move(Some(Some(3)), Some(3), past, today));
        assert!(should_move(Some(Some(3)), Some(4), today, today));
        assert!(should_move(Some(Some(3)), None, past, today));
        assert!(!should_move(Some(None), None, past, today));
        assert!(should_move(Some(None), None, today, today));
    }
}
