//! Operator work on the items kept on the box (`gateway quarantine`): listing, re-driving
//! items whose cause is fixed, and the retention purge of their raw data.

use super::audit::{self, AuditAction};
use super::items::item_from_row;
use super::reason::RedriveTo;
use super::{now, sql, Db, Item, ItemKind, ItemState, StateError};
use fgw_format::ids::QueueId;
use rusqlite::params;
use std::collections::BTreeMap;

/// Which quarantined items to re-drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// Every re-drivable item whose reason has this code (`hub-refused`, …).
    Reason(String),
    /// These items; each must be re-drivable.
    Ids(Vec<QueueId>),
}

/// What a re-drive did: the items sent back (and where to), and those left with why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    /// Items back in the pipeline.
    pub redriven: Vec<(QueueId, RedriveTo)>,
    /// Items left in quarantine, with a fixed reason.
    pub refused: Vec<(QueueId, &'static str)>,
}

/// A quarantined (or acked, with images withheld) item whose raw data the purge may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeCandidate {
    /// The item (its raw file's name).
    pub id: QueueId,
    /// Exam, report or DICOM object.
    pub kind: ItemKind,
    /// The reason code (for exams acked with images withheld: `images-withheld`).
    pub reason_code: &'static str,
}

/// What a purge did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Items whose raw data was deleted.
    pub purged: Vec<PurgeCandidate>,
    /// Items whose raw data could not be deleted (left for the next purge).
    pub failed: Vec<QueueId>,
}

impl PurgeReport {
    /// Purged items per reason code.
    pub fn by_reason(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for c in &self.purged {
            *m.entry(c.reason_code).or_default() += 1;
        }
        m
    }
}

/// Reason code recorded for an exam that was uploaded but keeps withheld images on the box.
const IMAGES_WITHHELD: &str = "images-withheld";

impl Db {
    /// Every quarantined item, daemon and offline, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Item>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, * FROM items WHERE state = 'quarantined' ORDER BY created_at, id",
                )
                .map_err(sql("quarantine list"))?;
            let mut rows = st.query([]).map_err(sql("quarantine list"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("quarantine list"))? {
                out.push(item_from_row(r)?);
            }
            Ok(out)
        })
    }

    /// Re-drive quarantined items whose cause was outside them (a hub refusal, a DICOM
    /// conflict decided by the operator): for each, `restore_raw` moves its raw data from
    /// quarantine back to the spool, then the item goes back to `deidentified` (its package is
    /// uploaded again) or `received` (through the gate), reason and attempts cleared, in one
    /// guarded transaction. One audit row lists what was re-driven.
    pub fn redrive(
        &self,
        which: &Redrive,
        mut restore_raw: impl FnMut(&QueueId) -> Result<(), String>,
    ) -> Result<RedriveReport, StateError> {
        let candidates: Vec<Item> = match which {
            Redrive::Reason(code) => self
                .quarantined()?
                .into_iter()
                .filter(|i| i.reason.as_ref().is_some_and(|r| r.code() == code))
                .collect(),
            Redrive::Ids(ids) => {
                let mut v = Vec::new();
                for id in ids {
                    v.push(self.get(id)?);
                }
                v
            }
        };
        let mut report = RedriveReport::default();
        for item in candidates {
            let target = match check_redrive(&item) {
                Ok(t) => t,
                Err(why) => {
                    report.refused.push((item.id, why));
                    continue;
                }
            };
            if restore_raw(&item.id).is_err() {
                report.refused.push((item.id, "raw data not found in quarantine"));
                continue;
            }
            let to = match target {
                RedriveTo::Upload => ItemState::Deidentified,
                RedriveTo::Gate => ItemState::Received,
            };
            let changed = self.with(|c| {
                c.execute(
                    "UPDATE items SET state = ?2, reason = NULL, attempts = 0, updated_at = ?3
                     WHERE id = ?1 AND state = 'quarantined' AND raw_purged_at IS NULL",
                    params![item.id.as_str(), to, now()],
                )
                .map_err(sql("redrive"))
            })?;
            if changed == 1 {
                report.redriven.push((item.id, target));
            } else {
                report.refused.push((item.id, "no longer quarantined"));
            }
        }
        if !report.redriven.is_empty() {
            let detail = serde_json::json!({
                "selection": match which {
                    Redrive::Reason(code) => serde_json::json!({ "reason": code }),
                    Redrive::Ids(_) => serde_json::json!("ids"),
                },
                "items": report.redriven.iter().map(|(id, to)| serde_json::json!({
                    "id": id.as_str(),
                    "to": match to { RedriveTo::Upload => "deidentified", RedriveTo::Gate => "received" },
                })).collect::<Vec<_>>(),
            });
            self.with(|c| {
                audit::insert_tx(c, AuditAction::Redrive, report.redriven.len() as u64, &detail)
            })?;
        }
        Ok(report)
    }

    /// Items whose raw data is kept in quarantine and has been there since before `cutoff`
    /// (RFC 3339): quarantined exams, reports and DICOM objects, and exams uploaded with
    /// images withheld. Oldest first.
    pub fn purge_candidates(&self, cutoff: &str) -> Result<Vec<PurgeCandidate>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, * FROM items
                     WHERE kind IN ('exam', 'report', 'dicom') AND raw_purged_at IS NULL
                       AND (state = 'quarantined' OR (state = 'acked' AND images_withheld > 0))
                       AND updated_at <= ?1
                     ORDER BY updated_at, id",
                )
                .map_err(sql("purge candidates"))?;
            let mut rows = st.query(params![cutoff]).map_err(sql("purge candidates"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("purge candidates"))? {
                let item = item_from_row(r)?;
                let reason_code = match (&item.state, &item.reason) {
                    (ItemState::Quarantined, Some(reason)) => reason.code(),
                    (ItemState::Quarantined, None) => "unknown",
                    _ => IMAGES_WITHHELD,
                };
                out.push(PurgeCandidate { id: item.id, kind: item.kind, reason_code });
            }
            Ok(out)
        })
    }

    /// The retention purge: for each item of [`Db::purge_candidates`] older than
    /// `older_than_days`, `remove_raw` deletes its raw data (a file already gone counts as
    /// deleted), then the item is marked purged. The items stay (ids and reasons remain for
    /// the record); one audit row holds ids, kinds, reason codes and counts.
    pub fn purge_raw(
        &self,
        older_than_days: u32,
        mut remove_raw: impl FnMut(&QueueId) -> Result<(), String>,
    ) -> Result<PurgeReport, StateError> {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(older_than_days));
        let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut report = PurgeReport::default();
        for c in self.purge_candidates(&cutoff)? {
            match remove_raw(&c.id) {
                Ok(()) => report.purged.push(c),
                Err(_) => report.failed.push(c.id),
            }
        }
        if report.purged.is_empty() && report.failed.is_empty() {
            return Ok(report);
        }
        let detail = serde_json::json!({
            "older_than_days": older_than_days,
            "items": report.purged.iter().map(|c| serde_json::json!({
                "id": c.id.as_str(), "kind": c.kind.as_str(), "reason": c.reason_code,
            })).collect::<Vec<_>>(),
            "by_reason": report.by_reason(),
            "failed": report.failed.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
        });
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let t = now();
            for p in &report.purged {
                tx.execute(
                    "UPDATE items SET raw_purged_at = ?2 WHERE id = ?1",
                    params![p.id.as_str(), t],
                )
                .map_err(sql("mark purged"))?;
            }
            audit::insert_tx(&tx, AuditAction::Purge, report.purged.len() as u64, &detail)?;
            tx.commit().map_err(sql("commit"))
        })?;
        Ok(report)
    }
}

/// Where a quarantined item may be re-driven to, or why not.
fn check_redrive(item: &Item) -> Result<RedriveTo, &'static str> {
    if item.state != ItemState::Quarantined {
        return Err("not quarantined");
    }
    if item.raw_purged_at.is_some() {
        return Err("raw data purged");
    }
    let Some(reason) = &item.reason else { return Err("no reason recorded") };
    match reason.redrive() {
        None => Err("its reason does not allow a re-drive"),
        Some(RedriveTo::Upload) if item.package_id.is_none() => Err("no package to upload"),
        Some(to) => Ok(to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ItemReason, NewItem, Origin, Update};
    use fgw_deid::QuarantineReason;
    use fgw_format::ids::PackageId;

    fn pkg() -> PackageId {
        PackageId::new("a".repeat(64)).unwrap()
    }

    /// An exam quarantined after de-identification, for `reason`.
    fn quarantined_exam(db: &Db, reason: ItemReason) -> QueueId {
        let item = NewItem::new(ItemKind::Exam, Origin::Daemon, "b/exams.csv row 1");
        db.insert(&item).unwrap();
        let up = Update { package_id: Some(pkg()), ..Default::default() };
        db.transition(&item.id, ItemState::Received, ItemState::Deidentified, up).unwrap();
        let q = Update { reason: Some(reason), ..Default::default() };
        db.transition(&item.id, ItemState::Deidentified, ItemState::Quarantined, q).unwrap();
        item.id
    }

    #[test]
    fn redrive_by_reason_and_by_id() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let refused = quarantined_exam(&db, ItemReason::HubRefused("PUT 413: too large".into()));
        let legacy = quarantined_exam(
            &db,
            ItemReason::parse("input-invalid: hub rejected package: uplink (403): unregistered")
                .unwrap(),
        );
        let gate = quarantined_exam(&db, QuarantineReason::FieldNotFound.into());
        let mut restored = Vec::new();
        let r = db
            .redrive(&Redrive::Reason("hub-refused".into()), |id| {
                restored.push(id.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(r.redriven.len(), 2);
        assert_eq!(restored.len(), 2);
        for id in [&refused, &legacy] {
            let item = db.get(id).unwrap();
            assert_eq!(item.state, ItemState::Deidentified);
            assert_eq!((item.reason, item.attempts), (None, 0));
            assert_eq!(item.package_id, Some(pkg()));
        }
        // What the gate refused is not re-drivable, by id either.
        let r = db.redrive(&Redrive::Ids(vec![gate.clone()]), |_| Ok(())).unwrap();
        assert_eq!(r.refused, vec![(gate.clone(), "its reason does not allow a re-drive")]);
        assert_eq!(db.get(&gate).unwrap().state, ItemState::Quarantined);
        let audit = db.audit().unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!((audit[0].action, audit[0].items), (AuditAction::Redrive, 2));
        assert!(audit[0].detail.contains(refused.as_str()));
    }

    #[test]
    fn purge_deletes_old_raw_data_once_and_audits_it() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let a = quarantined_exam(&db, QuarantineReason::FieldNotFound.into());
        let b = quarantined_exam(&db, ItemReason::DicomInstanceConflict);
        // Nothing is older than a day yet.
        assert_eq!(db.purge_raw(1, |_| Ok(())).unwrap(), PurgeReport::default());
        let mut removed = Vec::new();
        let r = db
            .purge_raw(0, |id| {
                removed.push(id.clone());
                Ok(())
            })
            .unwrap();
        // Oldest first, ties by id: both were quarantined within the same second here.
        let mut both = vec![a.clone(), b.clone()];
        both.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        removed.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(removed, both);
        assert_eq!(
            r.by_reason(),
            BTreeMap::from([("dicom-instance-conflict", 1), ("fov-not-found", 1)])
        );
        assert!(db.get(&a).unwrap().raw_purged_at.is_some());
        // Purged raw data is gone for good: not purged again, not re-drivable.
        assert!(db.purge_raw(0, |_| panic!("purged twice")).unwrap().purged.is_empty());
        let again = db.redrive(&Redrive::Ids(vec![b.clone()]), |_| Ok(())).unwrap();
        assert_eq!(again.refused, vec![(b, "raw data purged")]);
        let audit = db.audit().unwrap();
        assert_eq!(audit.len(), 1);
        let detail: serde_json::Value = serde_json::from_str(&audit[0].detail).unwrap();
        assert_eq!(detail["by_reason"]["fov-not-found"], 1);
        // Either order (ties by random id, as above); each item with its own reason.
        let items = detail["items"].as_array().unwrap();
        let of_a = items.iter().find(|i| i["id"] == a.as_str()).unwrap();
        assert_eq!(of_a["reason"], "fov-not-found");
    }
}
