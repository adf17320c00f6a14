//! The items table: recording inputs and moving them through the state machine.

use super::row::Cells;
use super::{
    now, sql, BatchLabel, Db, ExamKey, ItemKind, ItemReason, ItemState, Lane, Origin, StateError,
};
use fgw_format::ids::{PackageId, QueueId};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// One row of the items table. `source` is a local locator (batch label, file, row; for
/// offline runs a position in the input): shown by `gateway quarantine show`, never reported
/// or uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The item's id (also its spool file name).
    pub id: QueueId,
    /// What it is.
    pub kind: ItemKind,
    /// Daemon or `gateway deid`.
    pub origin: Origin,
    /// Where it came from, locally.
    pub source: String,
    /// The label of the export batch it was read from ([`BatchLabel`]; a database of a
    /// gateway from before the labels may hold a folder name until it is relabelled).
    pub batch: Option<String>,
    /// Its row in the batch's table.
    pub row_no: Option<u64>,
    /// An exam's key, once normalized.
    pub exam_key: Option<ExamKey>,
    /// Which export of its exam this is (1 for the first).
    pub revision: u32,
    /// The exam an image item belongs to.
    pub parent: Option<QueueId>,
    /// An image item's index in its exam.
    pub image_index: Option<u32>,
    /// Where it is in the state machine.
    pub state: ItemState,
    /// Its package, once de-identified.
    pub package_id: Option<PackageId>,
    /// Why it is quarantined or superseded.
    pub reason: Option<ItemReason>,
    /// Images read with an exam.
    pub images_in: u32,
    /// Images of the exam kept on the box.
    pub images_withheld: u32,
    /// Upload attempts.
    pub attempts: u32,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// When the retention purge deleted its raw data (RFC 3339), if it did.
    pub raw_purged_at: Option<String>,
    /// Its upload queue.
    pub lane: Lane,
}

/// A new item to record.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// A fresh random id.
    pub id: QueueId,
    /// What it is.
    pub kind: ItemKind,
    /// Daemon or `gateway deid`.
    pub origin: Origin,
    /// Where it came from, locally (a batch named by its label, never its folder name).
    pub source: String,
    /// The label of the export batch it was read from.
    pub batch: Option<BatchLabel>,
    /// Its row in the batch's table.
    pub row_no: Option<u64>,
    /// The exam an image item belongs to.
    pub parent: Option<QueueId>,
    /// An image item's index in its exam.
    pub image_index: Option<u32>,
    /// Images read with an exam.
    pub images_in: u32,
    /// The state it starts in.
    pub state: ItemState,
    /// Why it starts quarantined.
    pub reason: Option<ItemReason>,
    /// Its upload queue (default [`Lane::Current`]).
    pub lane: Lane,
}

impl NewItem {
    /// An item accepted straight into quarantine (unreadable row, withheld image, …).
    pub fn quarantined(
        kind: ItemKind,
        origin: Origin,
        source: impl Into<String>,
        reason: impl Into<ItemReason>,
    ) -> NewItem {
        NewItem {
            state: ItemState::Quarantined,
            reason: Some(reason.into()),
            ..NewItem::new(kind, origin, source)
        }
    }

    /// A `received` item with a fresh id.
    pub fn new(kind: ItemKind, origin: Origin, source: impl Into<String>) -> NewItem {
        NewItem {
            id: QueueId::random(),
            kind,
            origin,
            source: source.into(),
            batch: None,
            row_no: None,
            parent: None,
            image_index: None,
            images_in: 0,
            state: ItemState::Received,
            reason: None,
            lane: Lane::Current,
        }
    }
}

/// Optional column updates that travel with a transition.
#[derive(Debug, Default, Clone)]
pub struct Update {
    /// The exam's key (normalization).
    pub exam_key: Option<ExamKey>,
    /// The exam's revision (normalization).
    pub revision: Option<u32>,
    /// The package made by the gate.
    pub package_id: Option<PackageId>,
    /// Why the item is quarantined.
    pub reason: Option<ItemReason>,
    /// How many images of the exam stay on the box.
    pub images_withheld: Option<u32>,
}

impl Db {
    /// Record a new item.
    pub fn insert(&self, item: &NewItem) -> Result<(), StateError> {
        self.with(|c| insert_tx(c, item))
    }

    /// Record several items in one transaction (an exam and its unreadable images): all or
    /// none, so a write refused for lack of space leaves nothing half recorded.
    pub fn insert_all(&self, items: &[NewItem]) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            for item in items {
                insert_tx(&tx, item)?;
            }
            tx.commit().map_err(sql("commit"))
        })
    }

    /// Was this row of this batch already accepted by the daemon (resume after a crash
    /// in the middle of ingesting a batch)?
    pub fn row_seen(&self, batch: &BatchLabel, row_no: u64) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM items WHERE origin='daemon' AND batch=?1 AND row_no=?2 AND kind IN ('exam','row')",
                params![batch, row_no as i64],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("row seen"))
        })
    }

    /// The item with this id.
    pub fn get(&self, id: &QueueId) -> Result<Item, StateError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT rowid, * FROM items WHERE id = ?1").map_err(sql("get item"))?;
            let mut rows = st.query(params![id.as_str()]).map_err(sql("get item"))?;
            match rows.next().map_err(sql("get item"))? {
                Some(r) => item_from_row(r),
                None => Err(StateError::NotFound { id: id.clone() }),
            }
        })
    }

    /// The daemon's items of this kind in this state: the current lane first, then the
    /// backlog, each oldest first (so a stage polling for work serves today's first).
    pub fn ids_in_state(
        &self,
        state: ItemState,
        kind: ItemKind,
    ) -> Result<Vec<QueueId>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT rowid, id FROM items WHERE state = ?1 AND kind = ?2 AND origin = 'daemon' ORDER BY lane = 'backlog', created_at, id")
                .map_err(sql("list by state"))?;
            let mut rows = st.query(params![state, kind]).map_err(sql("list by state"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("list by state"))? {
                out.push(Cells::new(r, "items")?.id("id", QueueId::new)?);
            }
            Ok(out)
        })
    }

    /// Move an item from `from` to `to` in one transaction; `set` adds column updates.
    pub fn transition(
        &self,
        id: &QueueId,
        from: ItemState,
        to: ItemState,
        set: Update,
    ) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            transition_tx(&tx, id, from, to, &set)?;
            tx.commit().map_err(sql("commit"))
        })
    }

    /// Normalization: give the exam its key and revision, and supersede any older export of
    /// the same exam that has not been uploaded yet, all in one transaction. The revision
    /// follows the gate service's supersede rule, as `gateway deid` does.
    pub fn normalize(&self, id: &QueueId, exam_key: &ExamKey) -> Result<u32, StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let previous: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(revision), 0) FROM items WHERE exam_key = ?1 AND id != ?2 AND kind = 'exam'",
                    params![exam_key, id.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql("revision"))?;
            let revision = crate::gate_service::next_revision(previous);
            tx.execute(
                "UPDATE items SET state = ?3, reason = ?4, updated_at = ?2
                 WHERE exam_key = ?1 AND kind = 'exam' AND state IN ('received','normalized','deidentified')",
                params![exam_key, now(), ItemState::Superseded, ItemReason::SupersededByReExport],
            )
            .map_err(sql("supersede"))?;
            let set =
                Update { exam_key: Some(exam_key.clone()), revision: Some(revision), ..Default::default() };
            transition_tx(&tx, id, ItemState::Received, ItemState::Normalized, &set)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(revision)
        })
    }

    /// Count one more upload attempt.
    pub fn bump_attempts(&self, id: &QueueId) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE items SET attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
                params![id.as_str(), now()],
            )
            .map_err(sql("attempts"))?;
            Ok(())
        })
    }

    /// How many items of this origin are in each state (every state present, 0 if none).
    pub fn counts(&self, origin: Origin) -> Result<BTreeMap<ItemState, u64>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT state, COUNT(*) AS n, MIN(rowid) AS rowid FROM items
                     WHERE origin = ?1 GROUP BY state",
                )
                .map_err(sql("counts"))?;
            let mut rows = st.query(params![origin]).map_err(sql("counts"))?;
            let mut out: BTreeMap<ItemState, u64> =
                ItemState::ALL.iter().map(|s| (*s, 0)).collect();
            while let Some(r) = rows.next().map_err(sql("counts"))? {
                let cells = Cells::new(r, "items")?;
                let n: i64 = cells.get("n")?;
                out.insert(cells.get("state")?, n as u64);
            }
            Ok(out)
        })
    }
}

impl Db {
    /// The packages the outbox must keep: those of items neither acknowledged nor superseded
    /// (de-identified and waiting, or quarantined with a package a redrive may upload).
    pub fn live_packages(&self) -> Result<HashSet<PackageId>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, package_id FROM items WHERE package_id IS NOT NULL
                     AND state NOT IN ('acked','superseded')",
                )
                .map_err(sql("live packages"))?;
            let mut rows = st.query([]).map_err(sql("live packages"))?;
            let mut out = HashSet::new();
            while let Some(r) = rows.next().map_err(sql("live packages"))? {
                let cells = Cells::new(r, "items")?;
                out.insert(cells.id("package_id", PackageId::new)?);
            }
            Ok(out)
        })
    }

    /// The daemon's items still to upload (received, normalized or de-identified exams,
    /// reports and DICOM objects) with their lanes, oldest first.
    pub fn pending_uploads(&self) -> Result<Vec<(QueueId, Lane)>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, id, lane FROM items WHERE origin = 'daemon'
                     AND state IN ('received','normalized','deidentified')
                     AND kind IN ('exam','report','dicom') ORDER BY created_at, id",
                )
                .map_err(sql("pending uploads"))?;
            let mut rows = st.query([]).map_err(sql("pending uploads"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("pending uploads"))? {
                let cells = Cells::new(r, "items")?;
                out.push((cells.id("id", QueueId::new)?, cells.get("lane")?));
            }
            Ok(out)
        })
    }
}

pub(super) fn insert_tx(c: &Connection, item: &NewItem) -> Result<(), StateError> {
    let t = now();
    c.execute(
        "INSERT INTO items (id, kind, origin, source, batch, row_no, parent, image_index,
                    images_in, state, reason, created_at, updated_at, lane)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
        params![
            item.id.as_str(),
            item.kind,
            item.origin,
            item.source,
            item.batch,
            item.row_no.map(|r| r as i64),
            item.parent.as_ref().map(|p| p.as_str()),
            item.image_index,
            item.images_in,
            item.state,
            item.reason,
            t,
            item.lane
        ],
    )
    .map_err(sql("insert item"))?;
    Ok(())
}

fn transition_tx(
    tx: &rusqlite::Transaction<'_>,
    id: &QueueId,
    from: ItemState,
    to: ItemState,
    set: &Update,
) -> Result<(), StateError> {
    let found: ItemState = {
        let mut st = tx
            .prepare_cached("SELECT rowid, state FROM items WHERE id = ?1")
            .map_err(sql("read state"))?;
        let mut rows = st.query(params![id.as_str()]).map_err(sql("read state"))?;
        match rows.next().map_err(sql("read state"))? {
            None => return Err(StateError::NotFound { id: id.clone() }),
            Some(r) => Cells::new(r, "items")?.get("state")?,
        }
    };
    if found != from {
        return Err(StateError::WrongState { id: id.clone(), expected: from, found });
    }
    tx.execute(
        "UPDATE items SET state = ?2, updated_at = ?3,
            exam_key = COALESCE(?4, exam_key), revision = COALESCE(?5, revision),
            package_id = COALESCE(?6, package_id), reason = COALESCE(?7, reason),
            images_withheld = COALESCE(?8, images_withheld)
         WHERE id = ?1",
        params![
            id.as_str(),
            to,
            now(),
            set.exam_key,
            set.revision,
            set.package_id.as_ref().map(|p| p.as_str()),
            set.reason,
            set.images_withheld
        ],
    )
    .map_err(sql("transition"))?;
    Ok(())
}

/// An item from a `SELECT rowid, * FROM items` row.
pub(super) fn item_from_row(r: &rusqlite::Row<'_>) -> Result<Item, StateError> {
    let c = Cells::new(r, "items")?;
    Ok(Item {
        id: c.id("id", QueueId::new)?,
        kind: c.get("kind")?,
        origin: c.get("origin")?,
        source: c.get("source")?,
        batch: c.get("batch")?,
        row_no: c.get::<Option<i64>>("row_no")?.map(|v| v as u64),
        exam_key: c.get("exam_key")?,
        revision: c.get("revision")?,
        parent: c.id_opt("parent", QueueId::new)?,
        image_index: c.get("image_index")?,
        state: c.get("state")?,
        package_id: c.id_opt("package_id", PackageId::new)?,
        reason: c.get("reason")?,
        images_in: c.get("images_in")?,
        images_withheld: c.get("images_withheld")?,
        attempts: c.get("attempts")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
        raw_purged_at: c.get("raw_purged_at")?,
        lane: c.get("lane")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_deid::QuarantineReason;

    fn key(s: &str) -> ExamKey {
        ExamKey::from_pseudonym(s.to_string())
    }

    #[test]
    fn transitions_are_guarded_and_reexports_supersede() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let b1 = BatchLabel::parse("batch-0000000000b1").unwrap();
        let mut a =
            NewItem::new(ItemKind::Exam, Origin::Daemon, "batch-0000000000b1/exams.csv row 1");
        a.batch = Some(b1.clone());
        a.row_no = Some(1);
        db.insert(&a).unwrap();
        assert_eq!(db.normalize(&a.id, &key("e-1")).unwrap(), 1);
        // Wrong expected state is refused.
        assert!(matches!(
            db.transition(&a.id, ItemState::Received, ItemState::Normalized, Update::default()),
            Err(StateError::WrongState { .. })
        ));
        let mut b =
            NewItem::new(ItemKind::Exam, Origin::Daemon, "batch-0000000000b2/exams.csv row 1");
        b.batch = BatchLabel::parse("batch-0000000000b2");
        b.row_no = Some(1);
        db.insert(&b).unwrap();
        assert_eq!(db.normalize(&b.id, &key("e-1")).unwrap(), 2);
        assert_eq!(db.get(&a.id).unwrap().state, ItemState::Superseded);
        assert_eq!(db.get(&a.id).unwrap().reason, Some(ItemReason::SupersededByReExport));
        assert_eq!(db.get(&b.id).unwrap().state, ItemState::Normalized);
        assert!(db.row_seen(&b1, 1).unwrap());
        assert!(!db.row_seen(&b1, 2).unwrap());
        // Reopening keeps data and does not re-run migrations.
        drop(db);
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        assert_eq!(db.counts(Origin::Daemon).unwrap()[&ItemState::Superseded], 1);
    }

    #[test]
    fn stored_text_is_unchanged_and_unknown_values_are_corruption() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let db = Db::open(&path).unwrap();
        let reason = QuarantineReason::InputInvalid("row 3: too few columns".into());
        let q = NewItem::quarantined(ItemKind::Row, Origin::Offline, "x", reason.clone());
        db.insert(&q).unwrap();
        let raw = Connection::open(&path).unwrap();
        let (kind, origin, state, stored): (String, String, String, String) = raw
            .query_row(
                "SELECT kind, origin, state, reason FROM items WHERE id = ?1",
                params![q.id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (kind.as_str(), origin.as_str(), state.as_str()),
            ("row", "offline", "quarantined")
        );
        assert_eq!(stored, "input-invalid: row 3: too few columns");
        assert_eq!(db.quarantined().unwrap()[0].reason, Some(ItemReason::Quarantined(reason)));

        raw.execute("UPDATE items SET kind = 'exams' WHERE id = ?1", params![q.id.as_str()])
            .unwrap();
        let e = db.get(&q.id).unwrap_err();
        assert!(
            matches!(e, StateError::Corrupt { table: "items", column: "kind", rowid: 1 }),
            "{e:?}"
        );
        assert!(!e.to_string().contains("exams"), "the value is not in the message: {e}");
        assert!(matches!(db.quarantined(), Err(StateError::Corrupt { column: "kind", .. })));
        raw.execute("UPDATE items SET kind = 'row', origin = 'elsewhere'", []).unwrap();
        assert!(db.counts(Origin::Daemon).is_ok());
        assert!(matches!(db.get(&q.id), Err(StateError::Corrupt { column: "origin", .. })));
        raw.execute("UPDATE items SET origin = 'offline', reason = 'gone-fishing'", []).unwrap();
        assert!(matches!(db.get(&q.id), Err(StateError::Corrupt { column: "reason", .. })));
        raw.execute("UPDATE items SET reason = NULL, id = 'q1'", []).unwrap();
        assert!(matches!(db.quarantined(), Err(StateError::Corrupt { column: "id", .. })));
    }
}
