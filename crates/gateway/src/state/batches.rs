//! The batches table: which export batch folders the daemon has read and finished.

use super::row::Cells;
use super::{now, sql, BatchState, Db, StateError};
use rusqlite::params;

impl Db {
    /// How far the daemon got with this batch; `None` if it has not seen it.
    pub fn batch_state(&self, name: &str) -> Result<Option<BatchState>, StateError> {
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
        name: &str,
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
    pub fn finished_batches(&self) -> Result<Vec<String>, StateError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn batch_states_are_stored_as_before_and_checked_on_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sqlite");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.batch_state("b1").unwrap(), None);
        db.set_batch("b1", BatchState::Ingesting, 0, 0).unwrap();
        db.set_batch("b1", BatchState::Ingested, 3, 1).unwrap();
        assert_eq!(db.batch_state("b1").unwrap(), Some(BatchState::Ingested));
        assert_eq!(db.finished_batches().unwrap(), vec!["b1".to_string()]);
        let raw = Connection::open(&path).unwrap();
        let s: String = raw.query_row("SELECT state FROM batches", [], |r| r.get(0)).unwrap();
        assert_eq!(s, "ingested");
        // The CHECK constraint keeps other texts out; a wrong type still reads as corrupt.
        raw.execute("UPDATE batches SET name = x'ff'", []).unwrap();
        assert!(matches!(
            db.finished_batches(),
            Err(StateError::Corrupt { table: "batches", column: "name", .. })
        ));
    }
}
