//! Operator queries over the items kept on the box (`gateway quarantine`).

use super::items::item_from_row;
use super::{sql, Db, Item, StateError};

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
}
