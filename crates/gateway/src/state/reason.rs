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

/// Code of [`ItemReason::HubRefused`].
const HUB_REFUSED: &str = "hub-refused";

/// Code of [`ItemReason::DicomInstanceConflict`].
const DICOM_CONFLICT: &str = "dicom-instance-conflict";

/// How gateways before the 4xx classification stored a hub refusal (any 4xx, an unregistered
/// certificate included): an `input-invalid` whose detail starts so.
const LEGACY_HUB_REJECTED: &str = "input-invalid: hub rejected package: ";

/// Why an item is where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemReason {
    /// Kept on the box by the gate or the pipeline.
    Quarantined(QuarantineReason),
    /// The hub refused this package for good (400, 413, 422, an answer the protocol does not
    /// allow); detail: route, status and the hub's message (ids and reasons only). The package
    /// stays in the outbox and can be re-driven once the cause is fixed.
    HubRefused(String),
    /// A hub refusal as gateways before the classification stored it (every 4xx, also
    /// authentication failures): detail as the hub gave it. Re-drivable like
    /// [`ItemReason::HubRefused`]; only read from older databases.
    HubRejectedLegacy(String),
    /// A DICOM object whose SOP Instance UID was already accepted with other content: kept on
    /// the box (encrypted), neither dropped nor uploaded, until an operator decides
    /// (docs/decisions.md).
    DicomInstanceConflict,
    /// A later export of the same exam replaced it before upload.
    SupersededByReExport,
    /// Quarantined by a gateway from before the DICOM gate ("dicom-deid-pending"): DICOM
    /// files were kept on the box until it existed. Only read from older databases.
    DicomPendingRetired,
}

/// What `gateway quarantine redrive` does with an item of this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveTo {
    /// Its package is in the outbox: back to `deidentified`, uploaded again.
    Upload,
    /// It never went through the gate: back to `received`, through the gate and uploaded.
    Gate,
}

impl ItemReason {
    /// The codes of the reasons [`ItemReason::redrive`] allows.
    pub const REDRIVABLE_CODES: &'static [&'static str] = &[HUB_REFUSED, DICOM_CONFLICT];

    /// The reason stored as `s`, if this gateway knows it.
    pub fn parse(s: &str) -> Option<ItemReason> {
        match s {
            SUPERSEDED => return Some(ItemReason::SupersededByReExport),
            DICOM_PENDING => return Some(ItemReason::DicomPendingRetired),
            DICOM_CONFLICT => return Some(ItemReason::DicomInstanceConflict),
            _ => {}
        }
        if let Some(detail) = s.strip_prefix(LEGACY_HUB_REJECTED) {
            return Some(ItemReason::HubRejectedLegacy(detail.to_string()));
        }
        if let Some(detail) = s.strip_prefix(HUB_REFUSED).and_then(|d| d.strip_prefix(": ")) {
            return Some(ItemReason::HubRefused(detail.to_string()));
        }
        QuarantineReason::parse(s).map(ItemReason::Quarantined)
    }

    /// The stable code operators select by (`gateway quarantine redrive --reason CODE`), and
    /// the only part of a reason the audit records.
    pub fn code(&self) -> &'static str {
        match self {
            ItemReason::Quarantined(r) => r.code(),
            ItemReason::HubRefused(_) | ItemReason::HubRejectedLegacy(_) => HUB_REFUSED,
            ItemReason::DicomInstanceConflict => DICOM_CONFLICT,
            ItemReason::SupersededByReExport => SUPERSEDED,
            ItemReason::DicomPendingRetired => DICOM_PENDING,
        }
    }

    /// Whether, and where to, an item kept for this reason may be re-driven once its cause is
    /// fixed. Only causes outside the item: what the gate refused stays refused.
    pub fn redrive(&self) -> Option<RedriveTo> {
        match self {
            ItemReason::HubRefused(_) | ItemReason::HubRejectedLegacy(_) => Some(RedriveTo::Upload),
            ItemReason::DicomInstanceConflict => Some(RedriveTo::Gate),
            ItemReason::Quarantined(_)
            | ItemReason::SupersededByReExport
            | ItemReason::DicomPendingRetired => None,
        }
    }
}

impl From<QuarantineReason> for ItemReason {
    fn from(r: QuarantineReason) -> ItemReason {
        ItemReason::Quarantined(r)
    }
}

impl fmt::Display for ItemReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemReason::Quarantined(r) => r.fmt(f),
            ItemReason::HubRefused(d) => write!(f, "{HUB_REFUSED}: {d}"),
            ItemReason::HubRejectedLegacy(d) => write!(f, "{LEGACY_HUB_REJECTED}{d}"),
            ItemReason::DicomInstanceConflict => f.write_str(DICOM_CONFLICT),
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
        for r in [
            ItemReason::HubRefused("PUT /v1/objects 413: object too large".into()),
            ItemReason::HubRejectedLegacy(
                "uplink PUT /v1/packages: hub rejected the request (403): x".into(),
            ),
            ItemReason::DicomInstanceConflict,
        ] {
            assert_eq!(ItemReason::parse(&r.to_string()), Some(r));
        }
        assert_eq!(ItemReason::parse("hub-refused"), None, "detail missing");
    }

    #[test]
    fn only_causes_outside_the_item_are_redrivable() {
        // What every 4xx used to become, a wrong registration's 403 included.
        let legacy = "input-invalid: hub rejected package: uplink PUT /v1/objects: hub rejected \
                      the request (403): client certificate is not registered with this hub";
        let r = ItemReason::parse(legacy).unwrap();
        assert_eq!(r.code(), "hub-refused");
        assert_eq!(r.redrive(), Some(RedriveTo::Upload));
        assert_eq!(ItemReason::DicomInstanceConflict.redrive(), Some(RedriveTo::Gate));
        // Other input-invalid details stay what the gate said.
        let other = ItemReason::parse("input-invalid: b/exams.csv row 9: bad").unwrap();
        assert_eq!(other.redrive(), None);
        assert_eq!(ItemReason::Quarantined(Q::FieldNotFound).redrive(), None);
        assert_eq!(ItemReason::SupersededByReExport.redrive(), None);
        let redrivable = [ItemReason::HubRefused("x".into()), ItemReason::DicomInstanceConflict];
        let codes: Vec<&str> = redrivable.iter().map(ItemReason::code).collect();
        assert_eq!(codes, ItemReason::REDRIVABLE_CODES);
    }
}
