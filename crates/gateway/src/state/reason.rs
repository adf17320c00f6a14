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
            _ => parse_quarantine(s).map(ItemReason::Quarantined),
        }
    }
}

/// The inverse of `QuarantineReason`'s `Display`: `code` or `code: detail`.
fn parse_quarantine(s: &str) -> Option<QuarantineReason> {
    use QuarantineReason as Q;
    let (code, detail) = match s.split_once(": ") {
        Some((code, detail)) => (code, Some(detail.to_string())),
        None => (s, None),
    };
    let reason = match (code, detail) {
        ("pixels-not-cleaned", None) => Q::PixelsNotCleaned,
        ("fov-not-found", None) => Q::FieldNotFound,
        ("image-format-unsupported", None) => Q::ImageFormatUnsupported,
        ("dicom-in-export", None) => Q::DicomInExport,
        ("identifier-in-pixels", Some(d)) => Q::IdentifierInPixels(d),
        ("pixel-stage-failed", Some(d)) => Q::PixelStageFailed(d),
        ("image-unreadable", Some(d)) => Q::ImageUnreadable(d),
        ("identifier-found", Some(d)) => Q::IdentifierFound(d),
        ("required-field-invalid", Some(d)) => Q::RequiredFieldInvalid(d),
        ("input-invalid", Some(d)) => Q::InputInvalid(d),
        _ => return None,
    };
    // The table above must agree with the gate's own codes.
    (reason.code() == code).then_some(reason)
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

    /// One of each variant. The match makes a new variant in the gate a compile error here,
    /// so `parse_quarantine` cannot silently fall behind.
    fn every_reason() -> Vec<Q> {
        let all = vec![
            Q::PixelsNotCleaned,
            Q::FieldNotFound,
            Q::IdentifierInPixels("patient_name".into()),
            Q::PixelStageFailed("ocr: engine".into()),
            Q::ImageUnreadable("jpeg: truncated".into()),
            Q::ImageFormatUnsupported,
            Q::IdentifierFound("findings: patient_id".into()),
            Q::RequiredFieldInvalid("exam_id".into()),
            Q::DicomInExport,
            Q::InputInvalid("b/exams.csv row 9: too many columns".into()),
        ];
        for r in &all {
            match r {
                Q::PixelsNotCleaned
                | Q::FieldNotFound
                | Q::IdentifierInPixels(_)
                | Q::PixelStageFailed(_)
                | Q::ImageUnreadable(_)
                | Q::ImageFormatUnsupported
                | Q::IdentifierFound(_)
                | Q::RequiredFieldInvalid(_)
                | Q::DicomInExport
                | Q::InputInvalid(_) => {}
            }
        }
        all
    }

    #[test]
    fn stored_text_round_trips() {
        for r in every_reason() {
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
