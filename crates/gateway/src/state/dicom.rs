//! DICOM bookkeeping: instances already accepted (dedupe) and the pull's watermark and
//! moved studies per archive.

use super::items::insert_tx;
use super::row::{Cells, DATE};
use super::{now, sql, Db, ItemReason, ItemState, NewItem, PullMark, StateError};
use chrono::NaiveDate;
use fgw_ingest::dicom_pull::StoreError as PullStoreError;
use rusqlite::{params, Connection};

/// What the database knows of a received DICOM object's instance key and content digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DicomSeen {
    /// No object with this SOP Instance UID was accepted.
    New,
    /// This very object (same UID, same content) was accepted: a re-send, dropped.
    SameContent,
    /// An object with this UID but other content was accepted: this one is a conflict.
    OtherContent,
}

/// What [`Db::insert_dicom`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DicomInsert {
    /// A new instance: the item is `received`.
    Recorded,
    /// The same object was recorded first (a race): nothing inserted.
    Duplicate,
    /// Another object holds this UID: the item was recorded quarantined
    /// ([`ItemReason::DicomInstanceConflict`]); its raw data belongs in quarantine.
    Conflict,
}

/// The content digest a received DICOM object is deduplicated by, with its instance key:
/// SHA-256 (hex) of the data set, i.e. the Part-10 bytes after the file meta group. The meta
/// group is left out because the SCP writes the sending AE title into it: the same object
/// from two senders is the same content. Not a value of the object; it can only confirm a
/// copy of the very same bytes.
pub fn dicom_content_digest(part10: &[u8]) -> String {
    // Preamble (128), "DICM", then (0002,0000) UL with the meta group's length, explicit VR.
    let data_set = match part10.get(128..144) {
        Some(h) if &h[..4] == b"DICM" && h[4..8] == [2, 0, 0, 0] && &h[8..10] == b"UL" => {
            let len = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
            part10.get(144 + len..).unwrap_or(part10)
        }
        _ => part10,
    };
    fgw_format::ids::Sha256Hex::of(data_set).as_str().to_string()
}

/// Rows recorded before v3 carry this digest: their content is unknown.
const UNKNOWN_CONTENT: &str = "";

impl Db {
    /// Whether a DICOM object with this instance key (and this content) was accepted. Rows
    /// from before content digests count as the same content (re-sends were the common case).
    pub fn dicom_seen(&self, instance_key: &str, digest: &str) -> Result<DicomSeen, StateError> {
        self.with(|c| seen(c, instance_key, digest))
    }

    /// Records a received DICOM object's item and its instance key and digest in one
    /// transaction. A first object under the key is recorded `received`; the same object again
    /// inserts nothing; an object with other content under a known key is recorded
    /// quarantined (`dicom-instance-conflict`), so it is neither dropped nor uploaded.
    pub fn insert_dicom(
        &self,
        item: &NewItem,
        instance_key: &str,
        digest: &str,
    ) -> Result<DicomInsert, StateError> {
        self.with(|c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let outcome = match seen(&tx, instance_key, digest)? {
                DicomSeen::SameContent => return Ok(DicomInsert::Duplicate),
                DicomSeen::New => {
                    insert_tx(&tx, item)?;
                    DicomInsert::Recorded
                }
                DicomSeen::OtherContent => {
                    let conflict = NewItem {
                        state: ItemState::Quarantined,
                        reason: Some(ItemReason::DicomInstanceConflict),
                        ..item.clone()
                    };
                    insert_tx(&tx, &conflict)?;
                    DicomInsert::Conflict
                }
            };
            tx.execute(
                "INSERT INTO dicom_instances (key, content_sha256, item, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![instance_key, digest, item.id.as_str(), now()],
            )
            .map_err(sql("insert dicom instance"))?;
            tx.commit().map_err(sql("commit"))?;
            Ok(outcome)
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

fn seen(c: &Connection, instance_key: &str, digest: &str) -> Result<DicomSeen, StateError> {
    let mut st = c
        .prepare_cached("SELECT content_sha256 FROM dicom_instances WHERE key = ?1")
        .map_err(sql("dicom instance seen"))?;
    let digests = st
        .query_map(params![instance_key], |r| r.get::<_, String>(0))
        .map_err(sql("dicom instance seen"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("dicom instance seen"))?;
    Ok(if digests.is_empty() {
        DicomSeen::New
    } else if digests.iter().any(|d| d == digest || d == UNKNOWN_CONTENT) {
        DicomSeen::SameContent
    } else {
        DicomSeen::OtherContent
    })
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
        assert_eq!(db.dicom_seen("2.25.1", "aa").unwrap(), DicomSeen::New);
        assert_eq!(db.insert_dicom(&a, "2.25.1", "aa").unwrap(), DicomInsert::Recorded);
        assert_eq!(db.dicom_seen("2.25.1", "aa").unwrap(), DicomSeen::SameContent);
        let b = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert_eq!(db.insert_dicom(&b, "2.25.1", "aa").unwrap(), DicomInsert::Duplicate);
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

    #[test]
    fn same_instance_other_content_is_kept_as_a_conflict() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("s.sqlite")).unwrap();
        let first = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert_eq!(db.insert_dicom(&first, "2.25.7", "forged").unwrap(), DicomInsert::Recorded);
        // The real object, sent second under the same UID: recorded, quarantined, not dropped.
        assert_eq!(db.dicom_seen("2.25.7", "real").unwrap(), DicomSeen::OtherContent);
        let second = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert_eq!(db.insert_dicom(&second, "2.25.7", "real").unwrap(), DicomInsert::Conflict);
        let kept = db.get(&second.id).unwrap();
        assert_eq!(kept.state, ItemState::Quarantined);
        assert_eq!(kept.reason, Some(ItemReason::DicomInstanceConflict));
        assert_eq!(db.get(&first.id).unwrap().state, ItemState::Received);
        // Its re-send is a duplicate of it, not a third item.
        let again = NewItem::new(ItemKind::Dicom, Origin::Daemon, "dicom-scp");
        assert_eq!(db.insert_dicom(&again, "2.25.7", "real").unwrap(), DicomInsert::Duplicate);
    }

    #[test]
    fn digest_leaves_out_the_file_meta_group() {
        // Two Part-10 files of one data set, with meta groups of different lengths.
        let part10 = |meta: &[u8]| {
            let mut b = vec![0u8; 128];
            b.extend_from_slice(b"DICM");
            b.extend_from_slice(&[2, 0, 0, 0, b'U', b'L', 4, 0]);
            b.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            b.extend_from_slice(meta);
            b.extend_from_slice(b"the data set");
            b
        };
        let a = dicom_content_digest(&part10(b"AE ENDO1"));
        assert_eq!(a, dicom_content_digest(&part10(b"AE ARCHIVE01")));
        assert_ne!(a, dicom_content_digest(b"not a part-10 file"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn version_2_rows_count_as_the_same_content() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        drop(Db::open(&path).unwrap());
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute(
            "INSERT INTO dicom_instances (key, content_sha256, item, created_at)
             VALUES ('2.25.9', '', 'q-old', '2024-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(db.dicom_seen("2.25.9", "anything").unwrap(), DicomSeen::SameContent);
    }
}
