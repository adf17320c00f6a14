//! The items table's `reason` column: why an item stays on the box (the gate's
//! [`QuarantineReason`], stored as its display text `code` or `code: detail`), or why it was
//! superseded.

use super::values::UnknownValue;
use fgw_deid::QuarantineReason;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Serialize, Serializer};
use std::fmt;

/// The text [`ItemReason::SupersededByReExport`] is stored as.
const SUPERSEDED: &str = "superseded-by-re-export";

/// The text a quarantine reason removed from the gate is stored as in older databases.
const DICOM_PENDING: &str = "dicom-deid-pending";

/// Why an item is where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemReason {
    /// Kept on the box by the gate or the pipeline.
    Quarantined(QuarantineReason),
    /// A later export of the same exam replaced it before upload.
    SupersededByReExport,
    /// Quarantined by a gateway from before the DICOM gate ("dicom-deid-pending"): DICOM
    /// files were kept on the box until it existed. Only read from older databases.
    DicomPendingRetired,
}

impl ItemReason {
    /// The reason stored as `s`, if this gateway knows it.
    pub fn parse(s: &str) -> Option<ItemReason> {
        match s {
            SUPERSEDED => Some(ItemReason::SupersededByReExport),
            DICOM_PENDING => Some(ItemReason::DicomPendingRetired),
            _ => QuarantineReason::parse(s).map(ItemReason::Quarantined),
        }
    }
}

impl fmt::Display for ItemReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemReason::Quarantined(r) => r.fmt(f),
            ItemReason::SupersededByReExport => f.write_str(SUPERSEDED),
            ItemReason::DicomPendingRetired => f.write_str(DICOM_PENDING),
        }
    }
}

/// As its stored text (`gateway quarantine show` prints it).
impl Serialize for ItemReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ToSql for ItemReason {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for ItemReason {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        ItemReason::parse(value.as_str()?)
            .ok_or_else(|| FromSqlError::Other(Box::new(UnknownValue)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuarantineReason as Q;

    fn some_reasons() -> Vec<Q> {
        // Every variant's text is checked by fgw-deid's `display_text_parses_back`; here,
        // that the stored text goes through `ItemReason` unchanged.
        vec![
            Q::FieldNotFound,
            Q::IdentifierInPixels("patient_name".into()),
            Q::InputInvalid("b/exams.csv row 9: too many columns".into()),
        ]
    }

    #[test]
    fn stored_text_round_trips() {
        for r in some_reasons() {
            let stored = ItemReason::Quarantined(r).to_string();
            assert_eq!(ItemReason::parse(&stored).map(|p| p.to_string()), Some(stored));
        }
        // A detail may itself hold ": ".
        let r = ItemReason::parse("input-invalid: a: b").unwrap();
        assert_eq!(r, ItemReason::Quarantined(Q::InputInvalid("a: b".into())));
        assert_eq!(ItemReason::parse(SUPERSEDED), Some(ItemReason::SupersededByReExport));
        assert_eq!(ItemReason::parse(DICOM_PENDING), Some(ItemReason::DicomPendingRetired));
        assert_eq!(ItemReason::parse("input-invalid"), None, "detail missing");
        assert_eq!(ItemReason::parse("bogus"), None);
    }
}
