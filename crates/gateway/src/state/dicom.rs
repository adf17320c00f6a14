//! DICOM bookkeeping: instances already accepted (dedupe) and the pull's watermark and
//! moved studies per archive.

use super::items::insert_tx;
use super::row::{Cells, DATE};
use super::{now, sql, Db, NewItem, PullMark, StateError};
use chrono::NaiveDate;
use fgw_ingest::dicom_pull::StoreError as PullStoreError;
use rusqlite::{params, OptionalExtension};

impl Db {
    /// Whether a DICOM object with this instance key was already accepted.
    pub fn dicom_seen(&self, instance_key: &str) -> Result<bool, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM dicom_instances WHERE key = ?1",
                params![instance_key],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(sql("dicom instance seen"))
        })
    }

    /// Records a received DICOM object's item and its instance key in one transaction.
    /// Returns false, inserting nothing, when the key is already there (a duplicate that
    /// raced past [`Db::dicom_seen`]).
    pub fn insert_dicom(&self, item: &NewItem, instance_key: &str) -> Result<bool, StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let new = tx
                .execute(
                    "INSERT OR IGNORE INTO dicom_instances (key, item, created_at) VALUES (?1, ?2, ?3)",
                    params![instance_key, item.id.as_str(), now()],
                )
                .map_err(sql("insert dicom instance"))?;
            if new == 0 {
                return Ok(false);
            }
            insert_tx(&tx, item)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(true)
        })
    }

    /// The pull's start date and watermark for this archive, if it has pulled before.
    pub fn pull_mark(&self, archive: &str) -> Result<Option<PullMark>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT rowid, start_date, watermark FROM dicom_pull WHERE archive = ?1")
                .map_err(sql("get pull watermark"))?;
            let mut rows = st.query(params![archive]).map_err(sql("get pull watermark"))?;
            let Some(r) = rows.next().map_err(sql("get pull watermark"))? else {
                return Ok(None);
            };
            let cells = Cells::new(r, "dicom_pull")?;
            let start = cells.date("start_date")?.ok_or_else(|| cells.corrupt("start_date"))?;
            Ok(Some(PullMark { start, watermark: cells.date("watermark")? }))
        })
    }

    /// Sets the pull watermark and forgets the moved studies it now covers, in one
    /// transaction.
    pub fn set_pull_mark(&self, archive: &str, mark: PullMark) -> Result<(), StateError> {
        let day = |d: NaiveDate| d.format(DATE).to_string();
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            tx.execute(
                "INSERT INTO dicom_pull (archive, start_date, watermark, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(archive) DO UPDATE SET start_date = excluded.start_date,
                    watermark = excluded.watermark, updated_at = excluded.updated_at",
                params![archive, day(mark.start), mark.watermark.map(day), now()],
            )
            .map_err(sql("set pull watermark"))?;
            if let Some(w) = mark.watermark {
                tx.execute(
                    "DELETE FROM dicom_pull_studies WHERE archive = ?1 AND study_date <= ?2",
                    params![archive, day(w)],
                )
                .map_err(sql("prune pulled studies"))?;
            }
            tx.commit().map_err(sql("commit"))?;
            Ok(())
        })
    }

    /// `Some(instances)` (the count recorded when it was moved, if the archive gave one) for
    /// a study already moved and not yet under the watermark; `None` if not moved.
    pub fn pulled_study(
        &self,
        archive: &str,
        study_key: &str,
    ) -> Result<Option<Option<u32>>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, instances FROM dicom_pull_studies
                     WHERE archive = ?1 AND study_key = ?2",
                )
                .map_err(sql("get pulled study"))?;
            let mut rows =
                st.query(params![archive, study_key]).map_err(sql("get pulled study"))?;
            match rows.next().map_err(sql("get pulled study"))? {
                Some(r) => Ok(Some(Cells::new(r, "dicom_pull_studies")?.get("instances")?)),
                None => Ok(None),
            }
        })
    }

    /// Record a study moved from the archive (its date, and its instance count if known).
    pub fn record_pulled_study(
        &self,
        archive: &str,
        study_key: &str,
        study_date: NaiveDate,
        instances: Option<u32>,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO dicom_pull_studies (archive, study_key, study_date, instances, moved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(archive, study_key) DO UPDATE SET study_date = excluded.study_date,
                    instances = excluded.instances, moved_at = excluded.moved_at",
                params![archive, study_key, study_date.format(DATE).to_string(), instances, now()],
            )
            .map_err(sql("record pulled study"))?;
            Ok(())
        })
    }
}

/// The pull loop's watermark store is this database.
impl fgw_ingest::dicom_pull::PullStore for Db {
    fn pull_mark(&self, archive: &str) -> Result<Option<PullMark>, PullStoreError> {
        Db::pull_mark(self, archive).map_err(pull_store_error)
    }
    fn set_pull_mark(&self, archive: &str, mark: PullMark) -> Result<(), PullStoreError> {
        Db::set_pull_mark(self, archive, mark).map_err(pull_store_error)
    }
    fn pulled_study(
        &self,
        archive: &str,
        study_key: &str,
    ) -> Result<Option<Option<u32>>, PullStoreError> {
        Db::pulled_study(self, archive, study_key).map_err(pull_store_error)
    }
    fn record_pulled_study(
        &self,
        archive: &str,
        study_key: &str,
        study_date: NaiveDate,
        instances: Option<u32>,
    ) -> Result<(), PullStoreError> {
        Db::record_pulled_study(self, archive, study_key, study_date, instances)
            .map_err(pull_store_error)
    }
}

fn pull_store_error(e: StateError) -> PullStoreError {
    PullStoreError(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ItemKind, Origin};

    #[test]
    fn dicom_dedupe_and_pull_watermark() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let a = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert!(!db.dicom_seen("2.25.1").unwrap());
        assert!(db.insert_dicom(&a, "2.25.1").unwrap());
        assert!(db.dicom_seen("2.25.1").unwrap());
        let b = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert!(!db.insert_dicom(&b, "2.25.1").unwrap(), "same instance twice");
        assert!(matches!(db.get(&b.id), Err(StateError::NotFound { .. })));

        let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(db.pull_mark("PACS").unwrap(), None);
        let start = PullMark { start: day("2024-01-01"), watermark: None };
        db.set_pull_mark("PACS", start).unwrap();
        db.record_pulled_study("PACS", "k1", day("2024-01-01"), Some(3)).unwrap();
        db.record_pulled_study("PACS", "k2", day("2024-01-02"), None).unwrap();
        assert_eq!(db.pulled_study("PACS", "k1").unwrap(), Some(Some(3)));
        assert_eq!(db.pulled_study("PACS", "k2").unwrap(), Some(None));
        assert_eq!(db.pulled_study("OTHER", "k1").unwrap(), None);
        let mark = PullMark { watermark: Some(day("2024-01-01")), ..start };
        db.set_pull_mark("PACS", mark).unwrap();
        // Studies under the watermark are forgotten; later ones stay.
        assert_eq!(db.pulled_study("PACS", "k1").unwrap(), None);
        assert_eq!(db.pulled_study("PACS", "k2").unwrap(), Some(None));
        drop(db);
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        assert_eq!(db.pull_mark("PACS").unwrap(), Some(mark));
        assert_eq!(db.pull_mark("OTHER").unwrap(), None);
        // A date that does not parse is corruption, named by table, column and row.
        let raw = rusqlite::Connection::open(d.path().join("s.sqlite")).unwrap();
        raw.execute("UPDATE dicom_pull SET watermark = '2024-13-01'", []).unwrap();
        assert!(matches!(
            db.pull_mark("PACS"),
            Err(StateError::Corrupt { table: "dicom_pull", column: "watermark", rowid: 1 })
        ));
    }
}
