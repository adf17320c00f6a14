//! The audit table: operator actions on raw data (the retention purge, re-drives), with item
//! ids, reason codes and counts; never a value or a locator.

use super::row::Cells;
use super::{now, sql, Db, StateError};
use rusqlite::{params, Connection};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Raw data of quarantined items deleted (`gateway quarantine purge`, or the daemon's
    /// retention).
    Purge,
    /// Quarantined items sent back into the pipeline (`gateway quarantine redrive`).
    Redrive,
}

impl AuditAction {
    /// The text stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Purge => "purge",
            AuditAction::Redrive => "redrive",
        }
    }

    fn parse(s: &str) -> Option<AuditAction> {
        match s {
            "purge" => Some(AuditAction::Purge),
            "redrive" => Some(AuditAction::Redrive),
            _ => None,
        }
    }
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// What.
    pub action: AuditAction,
    /// How many items.
    pub items: u64,
    /// JSON: the item ids with their kind and reason code, counts per reason code, and the
    /// action's parameters.
    pub detail: String,
}

pub(super) fn insert_tx(
    c: &Connection,
    action: AuditAction,
    items: u64,
    detail: &serde_json::Value,
) -> Result<(), StateError> {
    c.execute(
        "INSERT INTO audit (at, action, items, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now(), action.as_str(), items as i64, detail.to_string()],
    )
    .map_err(sql("audit"))?;
    Ok(())
}

impl Db {
    /// The audit trail, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditEntry>, StateError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT rowid, at, action, items, detail FROM audit ORDER BY rowid")
                .map_err(sql("audit list"))?;
            let mut rows = st.query([]).map_err(sql("audit list"))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(sql("audit list"))? {
                let cells = Cells::new(r, "audit")?;
                let action: String = cells.get("action")?;
                let items: i64 = cells.get("items")?;
                out.push(AuditEntry {
                    at: cells.get("at")?,
                    action: AuditAction::parse(&action).ok_or_else(|| cells.corrupt("action"))?,
                    items: items as u64,
                    detail: cells.get("detail")?,
                });
            }
            Ok(out)
        })
    }
}
