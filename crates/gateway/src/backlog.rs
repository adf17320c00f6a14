//! What is left to upload, per lane, in items and bytes, and when it should be gone: the
//! first thing a society operator asks about a box that fell behind.
//!
//! Bytes are the sizes of the items' encrypted spool files: the raw input, a close upper
//! estimate of the package (de-identification removes, compression does not change, pixels).
//! The time to clear divides them by the measured upload rate (a moving average kept by the
//! uplink), capped by the configured bandwidth limit when one applies now.

use crate::spool::Spool;
use crate::state::{Db, Lane, MetaKey, StateError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Items and bytes waiting in one lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LaneBacklog {
    /// Items not yet acknowledged (exams, reports, DICOM objects).
    pub items: u64,
    /// Their spooled bytes.
    pub bytes: u64,
}

/// The backlog of the box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backlog {
    /// Per lane (`current`, `backlog`); both always present.
    pub lanes: BTreeMap<Lane, LaneBacklog>,
    /// Measured upload rate in bytes/s (moving average of acknowledged packages), if any
    /// upload was measured yet.
    pub measured_bytes_per_sec: Option<u64>,
    /// The rate the estimate uses now: the measured one, bounded by the cap in force.
    pub rate_bytes_per_sec: Option<u64>,
    /// Estimated seconds to clear everything at that rate; `None` when there is no rate yet.
    pub eta_secs: Option<u64>,
}

impl Backlog {
    /// Total items and bytes.
    pub fn total(&self) -> LaneBacklog {
        self.lanes.values().fold(LaneBacklog::default(), |a, l| LaneBacklog {
            items: a.items + l.items,
            bytes: a.bytes + l.bytes,
        })
    }
}

/// Measure the backlog. `rate_cap` is the bandwidth limit in force now (bytes/s, `None` when
/// unlimited): the estimate never assumes more than it.
pub fn measure(db: &Db, spool_dir: &Path, rate_cap: Option<u64>) -> Result<Backlog, StateError> {
    let mut lanes: BTreeMap<Lane, LaneBacklog> =
        [(Lane::Current, LaneBacklog::default()), (Lane::Backlog, LaneBacklog::default())].into();
    for (id, lane) in db.pending_uploads()? {
        let bytes = std::fs::metadata(Spool::file_in(spool_dir, &id)).map(|m| m.len()).unwrap_or(0);
        let l = lanes.entry(lane).or_default();
        l.items += 1;
        l.bytes += bytes;
    }
    let measured =
        db.meta(MetaKey::UploadRate)?.and_then(|v| v.parse::<u64>().ok()).filter(|r| *r > 0);
    let rate = match (measured, rate_cap.filter(|c| *c > 0)) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, _) => m,
    };
    let mut backlog = Backlog {
        lanes,
        measured_bytes_per_sec: measured,
        rate_bytes_per_sec: rate,
        eta_secs: None,
    };
    backlog.eta_secs = eta(backlog.total().bytes, rate);
    Ok(backlog)
}

fn eta(bytes: u64, rate: Option<u64>) -> Option<u64> {
    match rate {
        _ if bytes == 0 => Some(0),
        Some(r) if r > 0 => Some(bytes.div_ceil(r)),
        _ => None,
    }
}

/// `3 h 20 min`, `45 s`: for the text status.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Spool;
    use crate::state::{ItemKind, NewItem, Origin};

    #[test]
    fn eta_divides_bytes_by_the_rate_and_is_unknown_without_one() {
        assert_eq!(eta(0, None), Some(0));
        assert_eq!(eta(10, None), None);
        assert_eq!(eta(1000, Some(300)), Some(4));
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(7200 + 1200), "2 h 20 min");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3 d 1 h");
    }

    #[test]
    fn pending_items_are_counted_per_lane_with_their_spooled_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.sqlite")).unwrap();
        let key = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
        );
        let spool = Spool::open(&dir.path().join("spool"), key).unwrap();
        let mut sizes = BTreeMap::new();
        for (n, lane) in [Lane::Current, Lane::Backlog, Lane::Backlog].into_iter().enumerate() {
            let item = NewItem { lane, ..NewItem::new(ItemKind::Dicom, Origin::Daemon, "test") };
            spool.put_bytes(&item.id, &vec![0u8; 1000 * (n + 1)]).unwrap();
            assert_eq!(spool.path(&item.id), Spool::file_in(&dir.path().join("spool"), &item.id));
            *sizes.entry(lane).or_insert(0) +=
                std::fs::metadata(spool.path(&item.id)).unwrap().len();
            db.insert(&item).unwrap();
        }
        // Acknowledged and quarantined items are not backlog.
        let done = NewItem::quarantined(
            ItemKind::Dicom,
            Origin::Daemon,
            "test",
            crate::state::ItemReason::DicomInstanceConflict,
        );
        db.insert(&done).unwrap();

        let b = measure(&db, &dir.path().join("spool"), None).unwrap();
        assert_eq!(b.lanes[&Lane::Current], LaneBacklog { items: 1, bytes: sizes[&Lane::Current] });
        assert_eq!(b.lanes[&Lane::Backlog], LaneBacklog { items: 2, bytes: sizes[&Lane::Backlog] });
        assert_eq!(b.eta_secs, None);

        db.set_meta(MetaKey::UploadRate, "1000").unwrap();
        let b = measure(&db, &dir.path().join("spool"), None).unwrap();
        assert_eq!(b.eta_secs, Some(b.total().bytes.div_ceil(1000)));
        // A bandwidth cap below the measured rate bounds the estimate.
        let capped = measure(&db, &dir.path().join("spool"), Some(100)).unwrap();
        assert_eq!(capped.rate_bytes_per_sec, Some(100));
        assert_eq!(capped.eta_secs, Some(b.total().bytes.div_ceil(100)));
    }
}
