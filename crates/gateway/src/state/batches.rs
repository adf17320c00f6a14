//! The batches table: which export batch folders the daemon has read and finished, each by
//! its [`BatchLabel`] (never the folder's own name).

use super::row::Cells;
use super::values::UnknownValue;
use super::{now, sql, BatchState, Db, StateError};
use ring::hmac;
use rusqlite::params;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use std::fmt;

/// An export batch folder as the box names it: `batch-` and the first 12 hex digits of
/// HMAC-SHA-256 of the folder's name under the box's batch label key
/// ([`crate::secrets::Secrets::batch_label_key`]). The department system chooses folder names
/// and may put a patient's name or id in one, so the state, logs, errors and reports carry
/// this label instead; the same name gives the same label on the same box, so a re-scan finds
/// its batch and rows are de-duplicated as before. 48 bits: a collision between two folders
/// of one box is negligible, and a label cannot be turned back into the name without the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchLabel(String);

impl BatchLabel {
    const PREFIX: &'static str = "batch-";
    /// Hex digits of the MAC kept.
    const DIGITS: usize = 12;

    /// The label of the batch folder named `folder` under `key`.
    pub fn of(key: &hmac::Key, folder: &str) -> BatchLabel {
        let tag = hmac::sign(key, folder.as_bytes());
        let hex: String =
            tag.as_ref()[..Self::DIGITS / 2].iter().map(|b| format!("{b:02x}")).collect();
        BatchLabel(format!("{}{hex}", Self::PREFIX))
    }

    /// `text` as a label, if it has a label's shape (`batch-` and 12 lowercase hex digits).
    pub fn parse(text: &str) -> Option<BatchLabel> {
        let hex = text.strip_prefix(Self::PREFIX)?;
        let shaped = hex.len() == Self::DIGITS
            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        shaped.then(|| BatchLabel(text.to_owned()))
    }

    /// The stored (and shown) text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ToSql for BatchLabel {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for BatchLabel {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        BatchLabel::parse(value.as_str()?)
            .ok_or_else(|| FromSqlError::Other(Box::new(UnknownValue)))
    }
}

/// SQLite `GLOB` matching exactly the label shape (used to find what is not a label).
const LABEL_GLOB: &str =
    "batch-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]";

impl Db {
    /// How far the daemon got with this batch; `None` if it has not seen it.
    pub fn batch_state(&self, name: &BatchLabel) -> Result<Option<BatchState>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT rowid, state FROM batches WHERE name = ?1")
                .map_err(sql("batch state"))?;
            let mut rows = st.query(params![name]).map_err(sql("batch state"))?;
            match rows.next().map_err(sql("batch state"))? {
                Some(r) => Ok(Some(Cells::new(r, "batches")?.get("state")?)),
                None => Ok(None),
            }
        })
    }

    /// Record a batch's state with its row and row-error counts.
    pub fn set_batch(
        &self,
        name: &BatchLabel,
        state: BatchState,
        rows: u64,
        row_errors: u64,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO batches (name, state, rows, row_errors, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state, rows = excluded.rows,
                   row_errors = excluded.row_errors, updated_at = excluded.updated_at",
                params![name, state, rows as i64, row_errors as i64, now()],
            )
            .map_err(sql("set batch"))?;
            Ok(())
        })
    }

    /// Batches that are fully ingested and whose items are all in a terminal state.
    pub fn finished_batches(&self) -> Result<Vec<BatchLabel>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT rowid, name FROM batches b WHERE state = ?1 AND NOT EXISTS
                       (SELECT 1 FROM items i WHERE i.batch = b.name AND i.origin = 'daemon'
                          AND i.state IN ('received','normalized','deidentified'))",
                )
                .map_err(sql("finished batches"))?;
            let mut rows =
                st.query(params![BatchState::Ingested]).map_err(sql("finished batches"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("finished batches"))? {
                out.push(Cells::new(r, "batches")?.get("name")?);
            }
            Ok(out)
        })
    }

    /// Once, for databases written before batches were labelled (development boxes; issue
    /// 10): every `batches.name` and `items.batch` that is not label-shaped becomes
    /// `label(name)`, and where an item's `source` or `reason` names such a batch (the name
    /// followed by `/` at the start or after a space, or the whole `source`), the name becomes
    /// the label. One transaction; returns how many batch names were relabelled (0 once done).
    /// Offline-run items of a batch the daemon never read are not found (no batch column).
    /// The names do not linger in the file: space they leave is zeroed (`secure_delete`) and
    /// the WAL is checkpointed and emptied.
    pub fn relabel_batches(&self, label: impl Fn(&str) -> BatchLabel) -> Result<usize, StateError> {
        let op = "relabel batches";
        self.with(|c| {
            let was: i64 =
                c.pragma_query_value(None, "secure_delete", |r| r.get(0)).map_err(sql(op))?;
            c.pragma_update(None, "secure_delete", 1).map_err(sql(op))?;
            let done = relabel_tx(c, &label);
            c.pragma_update(None, "secure_delete", was).map_err(sql(op))?;
            let n = done?;
            if n > 0 {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(sql(op))?;
            }
            Ok(n)
        })
    }
}

/// [`Db::relabel_batches`] in one transaction.
fn relabel_tx(
    c: &mut rusqlite::Connection,
    label: &impl Fn(&str) -> BatchLabel,
) -> Result<usize, StateError> {
    let op = "relabel batches";
    let tx = c.transaction().map_err(sql(op))?;
    let found: Vec<String> = {
        let mut st = tx
            .prepare(
                "SELECT name FROM batches WHERE typeof(name) = 'text' AND NOT name GLOB ?1
                 UNION SELECT batch FROM items WHERE typeof(batch) = 'text'
                   AND NOT batch GLOB ?1",
            )
            .map_err(sql(op))?;
        let rows = st.query_map(params![LABEL_GLOB], |r| r.get(0)).map_err(sql(op))?;
        rows.collect::<Result<_, _>>().map_err(sql(op))?
    };
    if found.is_empty() {
        return Ok(0);
    }
    // Longest first, so a name that ends another (`T1` in `x T1`) is not met inside it.
    let mut map: Vec<(String, BatchLabel)> = found
        .into_iter()
        .map(|raw| {
            let l = label(&raw);
            (raw, l)
        })
        .collect();
    map.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    for (raw, l) in &map {
        tx.execute("UPDATE batches SET name = ?1 WHERE name = ?2", params![l, raw])
            .map_err(sql(op))?;
        tx.execute("UPDATE items SET batch = ?1 WHERE batch = ?2", params![l, raw])
            .map_err(sql(op))?;
    }
    let texts: Vec<(i64, Option<String>, Option<String>)> = {
        let mut st = tx
            .prepare(
                "SELECT rowid, CASE WHEN typeof(source) = 'text' THEN source END,
                   CASE WHEN typeof(reason) = 'text' THEN reason END FROM items",
            )
            .map_err(sql(op))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(sql(op))?;
        rows.collect::<Result<_, _>>().map_err(sql(op))?
    };
    for (rowid, source, reason) in texts {
        let new_source = source.as_deref().and_then(|s| relabel_text(s, &map, true));
        let new_reason = reason.as_deref().and_then(|s| relabel_text(s, &map, false));
        if new_source.is_none() && new_reason.is_none() {
            continue;
        }
        tx.execute(
            "UPDATE items SET source = COALESCE(?1, source), reason = COALESCE(?2, reason)
             WHERE rowid = ?3",
            params![new_source, new_reason, rowid],
        )
        .map_err(sql(op))?;
    }
    tx.commit().map_err(sql(op))?;
    Ok(map.len())
}

/// `text` with each batch name of `map` that starts a path (`<name>/` at the start or after a
/// space) replaced by its label, and, when `whole`, a text that is exactly a name replaced;
/// `None` when nothing changed.
fn relabel_text(text: &str, map: &[(String, BatchLabel)], whole: bool) -> Option<String> {
    if whole {
        if let Some((_, l)) = map.iter().find(|(raw, _)| raw == text) {
            return Some(l.to_string());
        }
    }
    let mut out = text.to_owned();
    for (raw, l) in map {
        let needle = format!("{raw}/");
        let mut at = 0;
        while let Some(i) = out[at..].find(&needle).map(|i| i + at) {
            let starts_path = i == 0 || out[..i].ends_with(' ');
            if starts_path {
                out.replace_range(i..i + raw.len(), l.as_str());
                at = i + l.as_str().len() + 1;
            } else {
                at = i + needle.len();
            }
        }
    }
    (out != text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ItemKind, ItemReason, NewItem, Origin};
    use fgw_deid::QuarantineReason;
    use rusqlite::Connection;

    fn key(k: &[u8]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, k)
    }

    #[test]
    fn labels_are_keyed_stable_and_never_the_name() {
        let (k1, k2) = (key(b"one"), key(b"two"));
        let name = "20261126T0100_QXMARKBATCH鏑木";
        let l = BatchLabel::of(&k1, name);
        assert_eq!(l, BatchLabel::of(&k1, name), "same folder, same box: same label");
        assert_ne!(l, BatchLabel::of(&k1, "20261126T0100"));
        assert_ne!(l, BatchLabel::of(&k2, name), "another box labels it otherwise");
        assert!(l.as_str().starts_with("batch-") && l.as_str().len() == 18, "{l}");
        assert!(!l.as_str().contains("QXMARK") && !l.as_str().contains("2026"), "{l}");
        assert_eq!(BatchLabel::parse(l.as_str()), Some(l.clone()));
        for bad in ["20261125T2300", "batch-", "batch-0123456789AB", "batch-0123456789abc", "x"] {
            assert_eq!(BatchLabel::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn batch_states_are_stored_as_before_and_checked_on_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let db = Db::open(&path).unwrap();
        let b1 = BatchLabel::of(&key(b"k"), "b1");
        assert_eq!(db.batch_state(&b1).unwrap(), None);
        db.set_batch(&b1, BatchState::Ingesting, 0, 0).unwrap();
        db.set_batch(&b1, BatchState::Ingested, 3, 1).unwrap();
        assert_eq!(db.batch_state(&b1).unwrap(), Some(BatchState::Ingested));
        assert_eq!(db.finished_batches().unwrap(), vec![b1.clone()]);
        let raw = Connection::open(&path).unwrap();
        let s: String = raw.query_row("SELECT state FROM batches", [], |r| r.get(0)).unwrap();
        assert_eq!(s, "ingested");
        let n: String = raw.query_row("SELECT name FROM batches", [], |r| r.get(0)).unwrap();
        assert_eq!(n, b1.as_str());
        // A name that is not a label, or of the wrong type, reads as corrupt.
        raw.execute("UPDATE batches SET name = '20261125T2300'", []).unwrap();
        assert!(matches!(
            db.finished_batches(),
            Err(StateError::Corrupt { table: "batches", column: "name", .. })
        ));
        raw.execute("UPDATE batches SET name = x'ff'", []).unwrap();
        assert!(matches!(
            db.finished_batches(),
            Err(StateError::Corrupt { table: "batches", column: "name", .. })
        ));
    }

    /// A database of a gateway from before the labels holds folder names; opening relabels
    /// them (batch columns, and the names in sources and reasons), once.
    #[test]
    fn folder_names_of_an_older_database_are_relabelled() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let db = Db::open(&path).unwrap();
        let k = key(b"k");
        let (marked, short, longer) = ("20261126T0100_QXMARK鏑木", "B1", "AB1");
        let old = |name: &str| BatchLabel(name.to_owned());
        // As the old gateway wrote them: names where labels are now.
        for name in [marked, short, longer] {
            db.set_batch(&old(name), BatchState::Ingested, 1, 1).unwrap();
        }
        let row = |name: &str, n: u64| {
            let file = format!("{name}/exams.csv row {n} (line {})", n + 1);
            let reason = QuarantineReason::UnsafeEntry(format!(
                "{name}/reports/{{exam_id}}.txt of {file}: symlink"
            ));
            let mut item = NewItem::quarantined(ItemKind::Exam, Origin::Daemon, file, reason);
            item.batch = Some(old(name));
            item.row_no = Some(n);
            item
        };
        let items = [row(marked, 3), row(short, 1), row(longer, 1)];
        for item in &items {
            db.insert(item).unwrap();
        }
        let image = NewItem::quarantined(
            ItemKind::Image,
            Origin::Daemon,
            format!("{marked}/exams.csv row 3 (line 4): missing image 0"),
            QuarantineReason::InputInvalid("image unreadable: cannot read: other".into()),
        );
        db.insert(&image).unwrap();
        let undone = NewItem::quarantined(
            ItemKind::Row,
            Origin::Offline,
            marked,
            QuarantineReason::InputInvalid("batch has no DONE marker (export incomplete)".into()),
        );
        db.insert(&undone).unwrap();

        assert_eq!(db.relabel_batches(|n| BatchLabel::of(&k, n)).unwrap(), 3);
        assert_eq!(db.relabel_batches(|n| BatchLabel::of(&k, n)).unwrap(), 0, "once");
        let (lm, ls, ll) =
            (BatchLabel::of(&k, marked), BatchLabel::of(&k, short), BatchLabel::of(&k, longer));
        // Batch state and row de-duplication work by label.
        assert_eq!(db.batch_state(&lm).unwrap(), Some(BatchState::Ingested));
        assert!(db.row_seen(&lm, 3).unwrap() && db.row_seen(&ls, 1).unwrap());
        let got = |id| db.get(id).unwrap();
        assert_eq!(got(&items[0].id).source, format!("{lm}/exams.csv row 3 (line 4)"));
        assert_eq!(got(&items[0].id).batch.as_deref(), Some(lm.as_str()));
        let reason = |id| got(id).reason.unwrap().to_string();
        assert_eq!(
            reason(&items[0].id),
            format!("unsafe-entry: {lm}/reports/{{exam_id}}.txt of {lm}/exams.csv row 3 (line 4): symlink")
        );
        // `B1/` inside `AB1/` is not B1's.
        assert!(reason(&items[2].id).starts_with(&format!("unsafe-entry: {ll}/reports")));
        assert!(reason(&items[1].id).starts_with(&format!("unsafe-entry: {ls}/reports")));
        assert_eq!(
            got(&image.id).source,
            format!("{lm}/exams.csv row 3 (line 4): missing image 0")
        );
        assert_eq!(got(&undone.id).source, lm.as_str());
        assert!(matches!(got(&undone.id).reason, Some(ItemReason::Quarantined(_))));
        // Nor in the file's free space or its WAL.
        for suffix in ["", "-wal"] {
            let bytes = std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default();
            for planted in ["QXMARK", "鏑木"] {
                let found = bytes.windows(planted.len()).any(|w| w == planted.as_bytes());
                assert!(!found, "{planted} left in s.sqlite{suffix}");
            }
        }
        // No folder name is left in a stored text.
        let raw = Connection::open(&path).unwrap();
        let left: i64 = raw
            .query_row(
                "SELECT (SELECT count(*) FROM batches WHERE instr(name, 'B1') OR instr(name, 'QXMARK'))
                      + (SELECT count(*) FROM items WHERE instr(batch, 'B1') OR instr(source, 'B1')
                           OR instr(reason, 'B1') OR instr(source, 'QXMARK') OR instr(reason, 'QXMARK'))",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }
}
