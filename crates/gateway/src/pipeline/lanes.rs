//! Upload lanes: which queue an item waits in, and the uplink's queue that serves today's
//! work first. A hospital that turns on DICOM pull with a year of history, or drops an old
//! export on the share, must still see today's exams at the hub today.

use crate::state::Lane;
use chrono::NaiveDate;
use fgw_format::ids::QueueId;
use std::collections::VecDeque;

/// The lane of an exam dated `date` (unparsable or missing: current, so it is never held
/// back by a typo) on `today`, with `current_days` days of grace.
pub(super) fn exam_lane(date: Option<NaiveDate>, today: NaiveDate, current_days: u32) -> Lane {
    match date {
        Some(d) if (today - d).num_days() > i64::from(current_days) => Lane::Backlog,
        _ => Lane::Current,
    }
}

/// The lane of a DICOM object from the pull's archive: backlog while the pull is catching
/// up (its watermark, the last fully retrieved day, is before yesterday-ish), current once
/// it is at today. Objects from other senders (modality pushes) are current.
pub(super) fn pulled_lane(
    watermark: Option<NaiveDate>,
    today: NaiveDate,
    current_days: u32,
) -> Lane {
    match watermark {
        Some(w) if (today - w).num_days() <= i64::from(current_days) + 1 => Lane::Current,
        // No watermark yet: the first pass, which starts in the past.
        _ => Lane::Backlog,
    }
}

/// The uplink's queue: current items first, each lane in arrival order.
#[derive(Debug, Default)]
pub(super) struct LaneQueue {
    current: VecDeque<QueueId>,
    backlog: VecDeque<QueueId>,
}

impl LaneQueue {
    pub(super) fn push(&mut self, id: QueueId, lane: Lane) {
        match lane {
            Lane::Current => self.current.push_back(id),
            Lane::Backlog => self.backlog.push_back(id),
        }
    }

    pub(super) fn pop(&mut self) -> Option<QueueId> {
        self.current.pop_front().or_else(|| self.backlog.pop_front())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.current.is_empty() && self.backlog.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn old_exams_are_backlog_recent_and_undated_ones_current() {
        let today = d("2026-12-05");
        assert_eq!(exam_lane(Some(d("2026-12-05")), today, 1), Lane::Current);
        assert_eq!(exam_lane(Some(d("2026-12-04")), today, 1), Lane::Current);
        assert_eq!(exam_lane(Some(d("2026-12-03")), today, 1), Lane::Backlog);
        assert_eq!(exam_lane(Some(d("2025-01-10")), today, 1), Lane::Backlog);
        assert_eq!(exam_lane(Some(d("2026-12-04")), today, 0), Lane::Backlog);
        assert_eq!(exam_lane(None, today, 1), Lane::Current);
        // A date in the future (clock skew between the department system and the box).
        assert_eq!(exam_lane(Some(d("2026-12-06")), today, 1), Lane::Current);
    }

    #[test]
    fn a_pull_is_backlog_until_its_watermark_reaches_today() {
        let today = d("2026-12-05");
        assert_eq!(pulled_lane(None, today, 1), Lane::Backlog);
        assert_eq!(pulled_lane(Some(d("2026-06-01")), today, 1), Lane::Backlog);
        assert_eq!(pulled_lane(Some(d("2026-12-03")), today, 1), Lane::Current);
        assert_eq!(pulled_lane(Some(d("2026-12-04")), today, 1), Lane::Current);
    }

    #[test]
    fn current_items_overtake_the_backlog_and_each_lane_keeps_its_order() {
        let id = |n: u64| QueueId::new(format!("q{n:016x}")).unwrap();
        let mut q = LaneQueue::default();
        for n in 0..3 {
            q.push(id(n), Lane::Backlog);
        }
        q.push(id(10), Lane::Current);
        assert_eq!(q.pop(), Some(id(10)));
        q.push(id(11), Lane::Current);
        q.push(id(12), Lane::Current);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![id(11), id(12), id(0), id(1), id(2)]);
        assert!(q.is_empty());
    }
}
