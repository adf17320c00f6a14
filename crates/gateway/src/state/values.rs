//! The closed sets of values the database stores as text, as enums. Each maps to the exact
//! text existing databases hold; reading any other text fails ([`super::StateError::Corrupt`]).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use std::fmt;

/// A stored text that is not one of the enum's values. Carries no value: it ends up in
/// [`super::StateError::Corrupt`], which names the row instead.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored value")]
pub(super) struct UnknownValue;

macro_rules! stored_text {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database (and shown by the operator commands).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The value stored as `s`, if it is one.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                $name::parse(value.as_str()?).ok_or_else(|| FromSqlError::Other(Box::new(UnknownValue)))
            }
        }
    };
}

stored_text! {
    /// Where an item is in its life (the module's state machine).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ItemState {
        /// Accepted and durable (spooled or, for a quarantined input, recorded).
        Received => "received",
        /// An exam with its exam key and revision.
        Normalized => "normalized",
        /// Through the gate; its package is in the outbox.
        Deidentified => "deidentified",
        /// The hub acknowledged the package.
        Acked => "acked",
        /// Kept on the box, with a reason.
        Quarantined => "quarantined",
        /// A later export of the same exam replaced it before upload.
        Superseded => "superseded",
    }
}

impl ItemState {
    /// Acked, quarantined and superseded items never move again.
    pub fn is_terminal(self) -> bool {
        matches!(self, ItemState::Acked | ItemState::Quarantined | ItemState::Superseded)
    }
}

stored_text! {
    /// What an item is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ItemKind {
        /// One exam row with its images and report.
        Exam => "exam",
        /// A row of exams.csv that could not be read.
        Row => "row",
        /// One image withheld from an exam's package.
        Image => "image",
        /// A DICOM file.
        Dicom => "dicom",
        /// A report received over HL7 (joined to its exam at the hub).
        Report => "report",
    }
}

stored_text! {
    /// Which upload queue an item waits in: today's work never waits behind history.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Lane {
        /// Today's work (the default): exams dated within `uplink_priority_days`, pushes,
        /// reports.
        Current => "current",
        /// History: exams dated earlier, objects of a DICOM pull catching up.
        Backlog => "backlog",
    }
}

stored_text! {
    /// Where an item was accepted: by the daemon, or by a one-shot `gateway deid` run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Origin {
        /// The daemon (`gateway run`).
        Daemon => "daemon",
        /// `gateway deid` (its items are only ever quarantine records).
        Offline => "offline",
    }
}

stored_text! {
    /// How far the daemon got with an export batch folder.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BatchState {
        /// Rows are being read; a restart resumes after the rows already recorded.
        Ingesting => "ingesting",
        /// Every row is recorded; waiting for its items to finish.
        Ingested => "ingested",
        /// Every item is acked or quarantined (the folder may have been deleted).
        Finished => "finished",
    }
}

stored_text! {
    /// Keys of the meta table (values shown by `gateway status`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum MetaKey {
        /// When the hub last acknowledged a package (RFC 3339).
        LastUploadAt => "last_upload_at",
        /// The last upload error (item id and error text, no personal data).
        LastError => "last_error",
        /// Set while the uplink is paused because the hub refused this box (authentication
        /// or authorization): when, and the hub's answer (no personal data). Cleared by the
        /// next accepted upload.
        UplinkPaused => "uplink_paused",
        /// Measured upload rate (bytes/s, a moving average over acknowledged packages):
        /// estimates the time to clear the backlog in `gateway status`.
        UploadRate => "upload_rate",
        /// Set while the daemon waits for room on the state directory's filesystem: when it
        /// began, and the reason codes (`disk-full`, `spool-quota`, …) comma-separated.
        /// Written when it can be (the disk may be too full even for this), cleared on resume
        /// and at start.
        StoragePaused => "storage_paused",
        /// Bytes of packages the hub acknowledged, all time (the heartbeat reports it).
        BytesUploaded => "bytes_uploaded",
        /// The class of the last upload error (`retry-later`, `box-refused`,
        /// `package-refused`): the heartbeat reports it, never the message.
        LastErrorClass => "last_error_class",
        /// The last policy release the box tried: JSON of the heartbeat's `UpdateReport`
        /// (version, outcome code, time).
        UpdatePolicy => "update_policy",
        /// The last OS release the box tried, likewise.
        UpdateOs => "update_os",
    }
}

/// An exam's key: the keyed pseudonym of its exam id, the same for every export of the exam.
/// Made by the gate service; in the database it finds an exam's earlier exports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ExamKey(String);

impl ExamKey {
    /// Wrap a pseudonym made by [`fgw_deid::Pseudonymizer::exam`].
    pub fn from_pseudonym(pseudonym: String) -> ExamKey {
        ExamKey(pseudonym)
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ToSql for ExamKey {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for ExamKey {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(ExamKey(value.as_str()?.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_texts_round_trip() {
        for s in ItemState::ALL {
            assert_eq!(ItemState::parse(s.as_str()), Some(*s));
        }
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::parse(k.as_str()), Some(*k));
        }
        for b in BatchState::ALL {
            assert_eq!(BatchState::parse(b.as_str()), Some(*b));
        }
        assert_eq!(ItemKind::parse("exams"), None);
        assert_eq!(Origin::parse("offline"), Some(Origin::Offline));
        assert_eq!(MetaKey::LastError.as_str(), "last_error");
    }
}
