//! The meta table: a few facts for `gateway status` (last upload, last error).

use super::row::Cells;
use super::{sql, Db, MetaKey, StateError};
use rusqlite::params;

impl Db {
    /// Set a meta value.
    pub fn set_meta(&self, key: MetaKey, value: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(sql("set meta"))?;
            Ok(())
        })
    }

    /// Remove a meta value (no error if unset).
    pub fn clear_meta(&self, key: MetaKey) -> Result<(), StateError> {
        self.with(|c| {
            c.execute("DELETE FROM meta WHERE key = ?1", params![key])
                .map_err(sql("clear meta"))?;
            Ok(())
        })
    }

    /// A meta value, if set.
    pub fn meta(&self, key: MetaKey) -> Result<Option<String>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT rowid, value FROM meta WHERE key = ?1")
                .map_err(sql("get meta"))?;
            let mut rows = st.query(params![key]).map_err(sql("get meta"))?;
            match rows.next().map_err(sql("get meta"))? {
                Some(r) => Ok(Some(Cells::new(r, "meta")?.get("value")?)),
                None => Ok(None),
            }
        })
    }
}
