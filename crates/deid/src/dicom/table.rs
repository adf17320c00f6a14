//! PS3.15 Table E.1-1 as data: `data/dicom/ps3.15-table-e1-1.json` (embedded at build time)
//! parsed into one [`Rule`] per record. Nothing here is hand-written per attribute.
//!
//! Combined actions of the Basic profile are resolved once, conservatively, and the same way
//! for every attribute, since the box cannot know which IOD a file claims to conform to:
//!
//! | table | here | why |
//! |---|---|---|
//! | `X/Z`, `X/Z/D`, `Z/D` | Z | empty destroys the value as fully as removal and keeps Type 2 attributes present |
//! | `X/D` | D | a fixed dummy carries no information and keeps a Type 1 attribute valid |
//! | `X/Z/U*` | U | keep the sequence; its items go through the table and their UIDs are remapped |
//!
//! When several selected options give an action for one attribute (e.g. Retain Device
//! Identity `K` and Modified Dates `C` on Calibration Date), the most conservative wins
//! ([`Action::strictness`]).

use super::options::{DicomOption, DicomPolicy};
use dicom_core::Tag;
use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE_JSON: &str = include_str!("../../../../data/dicom/ps3.15-table-e1-1.json");

/// How a cleaned (`C`) value is cleaned: depends on the option column that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clean {
    /// Shift dates by the patient's offset (Retain Longitudinal Modified Dates).
    ShiftDates,
    /// Scrub text with the object's own identifiers and the generic patterns.
    Text,
}

/// What the profile does to one attribute (a Table E.1-1 action code, resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// X: remove the attribute.
    Remove,
    /// Z: keep the attribute with an empty value.
    Empty,
    /// D: replace with a fixed dummy of the same VR.
    Dummy,
    /// C: clean (see [`Clean`]).
    Clean(Clean),
    /// U: replace UIDs with keyed `2.25` UIDs; on a sequence, keep it and process its items.
    Uid,
    /// K: keep (sequences: process their items).
    Keep,
}

impl Action {
    /// Higher is more conservative.
    pub fn strictness(self) -> u8 {
        match self {
            Action::Remove => 5,
            Action::Empty => 4,
            Action::Dummy => 3,
            Action::Clean(_) => 2,
            Action::Uid => 1,
            Action::Keep => 0,
        }
    }
}

/// One record of the table.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Attribute name as in the standard (for messages and tests).
    pub name: String,
    /// Action of the Basic profile column.
    pub basic: Action,
    /// Actions of the option columns present on this record.
    pub options: Vec<(DicomOption, Action)>,
}

impl Rule {
    /// The action under `policy`: the strictest selected option action, else the basic one.
    pub fn action(&self, policy: &DicomPolicy) -> Action {
        self.options
            .iter()
            .filter(|(o, _)| policy.has(*o))
            .map(|(_, a)| *a)
            .max_by_key(|a| a.strictness())
            .unwrap_or(self.basic)
    }
}

/// What a record's tag column selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Selector {
    Exact(Tag),
    /// `(50XX,XXXX)`-style: `tag & mask == value` on the 32-bit tag, even groups only
    /// (repeating groups are even; odd ones are private).
    Pattern {
        mask: u32,
        value: u32,
    },
    /// `(GGGG,EEEE) WHERE GGGG IS ODD`.
    Private,
}

/// Why the embedded table did not parse (a build defect, caught by the tests).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TableError {
    #[error("table JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("table record '{name}': tag '{tag}' is not (GGGG,EEEE)")]
    Tag { name: String, tag: String },
    #[error("table record '{name}': action '{action}' in column {column} is unknown")]
    Action { name: String, column: &'static str, action: String },
    #[error("table record '{name}': tag listed twice")]
    Duplicate { name: String },
}

#[derive(serde::Deserialize)]
struct Record {
    name: String,
    tag: String,
    #[serde(rename = "basicProfile")]
    basic: String,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

/// Table E.1-1 parsed: rules by exact tag, by repeating-group pattern, and for private tags.
pub struct Table {
    exact: HashMap<Tag, Rule>,
    patterns: Vec<(u32, u32, Rule)>,
    private: Option<Rule>,
    records: usize,
}

impl Table {
    /// The embedded table, parsed once.
    pub fn get() -> Result<&'static Table, String> {
        static T: OnceLock<Result<Table, String>> = OnceLock::new();
        T.get_or_init(|| Table::parse(TABLE_JSON).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| e.clone())
    }

    fn parse(json: &str) -> Result<Table, TableError> {
        let records: Vec<Record> = serde_json::from_str(json)?;
        let mut t =
            Table { exact: HashMap::new(), patterns: Vec::new(), private: None, records: 0 };
        for r in records {
            let basic = basic_action(&r.basic).ok_or_else(|| TableError::Action {
                name: r.name.clone(),
                column: "basicProfile",
                action: r.basic.clone(),
            })?;
            let mut options = Vec::new();
            for o in DicomOption::ALL {
                let Some(v) = r.rest.get(o.column()) else { continue };
                let a = match v.as_str() {
                    Some("K") => Action::Keep,
                    Some("C") if o == DicomOption::RetainLongitudinalModifiedDates => {
                        Action::Clean(Clean::ShiftDates)
                    }
                    Some("C") => Action::Clean(Clean::Text),
                    _ => {
                        return Err(TableError::Action {
                            name: r.name.clone(),
                            column: o.column(),
                            action: v.to_string(),
                        })
                    }
                };
                options.push((o, a));
            }
            let rule = Rule { name: r.name.clone(), basic, options };
            match selector(&r.tag)
                .ok_or_else(|| TableError::Tag { name: r.name.clone(), tag: r.tag.clone() })?
            {
                Selector::Exact(tag) => {
                    if t.exact.insert(tag, rule).is_some() {
                        return Err(TableError::Duplicate { name: r.name });
                    }
                }
                Selector::Pattern { mask, value } => t.patterns.push((mask, value, rule)),
                Selector::Private => t.private = Some(rule),
            }
            t.records += 1;
        }
        Ok(t)
    }

    /// Rule for a public (even-group) tag, if the table lists it.
    pub fn rule(&self, tag: Tag) -> Option<&Rule> {
        if let Some(r) = self.exact.get(&tag) {
            return Some(r);
        }
        let v = (u32::from(tag.group()) << 16) | u32::from(tag.element());
        self.patterns
            .iter()
            .find(|(m, val, _)| v & m == *val && tag.group().is_multiple_of(2))
            .map(|(_, _, r)| r)
    }

    /// The private-attributes record.
    pub fn private(&self) -> Option<&Rule> {
        self.private.as_ref()
    }

    /// Number of records parsed.
    pub fn len(&self) -> usize {
        self.records
    }

    /// No records parsed.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Every exact tag the table lists (for tests and tools).
    pub fn exact_tags(&self) -> impl Iterator<Item = (Tag, &Rule)> {
        self.exact.iter().map(|(t, r)| (*t, r))
    }
}

/// Basic-profile action, combined forms resolved as documented at the top of this module.
fn basic_action(s: &str) -> Option<Action> {
    Some(match s {
        "X" => Action::Remove,
        "Z" | "X/Z" | "X/Z/D" | "Z/D" => Action::Empty,
        "D" | "X/D" => Action::Dummy,
        "K" => Action::Keep,
        "U" | "X/Z/U*" => Action::Uid,
        "C" => Action::Clean(Clean::Text),
        _ => return None,
    })
}

/// `(0008,0020)`, `(50XX,XXXX)`, `(GGGG,EEEE) WHERE GGGG IS ODD`.
fn selector(s: &str) -> Option<Selector> {
    if s.to_ascii_uppercase().starts_with("(GGGG,EEEE)") {
        return Some(Selector::Private);
    }
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    let (g, e) = inner.split_once(',')?;
    if g.len() != 4 || e.len() != 4 {
        return None;
    }
    let mut mask = 0u32;
    let mut value = 0u32;
    for c in g.chars().chain(e.chars()) {
        mask <<= 4;
        value <<= 4;
        if c.eq_ignore_ascii_case(&'x') {
            continue;
        }
        let d = c.to_digit(16)?;
        mask |= 0xf;
        value |= d;
    }
    if mask == u32::MAX {
        Some(Selector::Exact(Tag((value >> 16) as u16, (value & 0xffff) as u16)))
    } else {
        Some(Selector::Pattern { mask, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::tags;

    #[test]
    fn embedded_table_parses_every_record() {
        let t = Table::get().unwrap();
        assert_eq!(t.len(), 621);
        assert!(t.private().is_some());
        let study_date = t.rule(tags::STUDY_DATE).unwrap();
        assert_eq!(study_date.basic, Action::Empty);
        let mut p = DicomPolicy::default();
        assert_eq!(study_date.action(&p), Action::Empty);
        p.options.push(DicomOption::RetainLongitudinalModifiedDates);
        assert_eq!(study_date.action(&p), Action::Clean(Clean::ShiftDates));
        // Curve data and overlays by pattern, even groups only (repeating groups: no single
        // dictionary constant).
        assert_eq!(t.rule(Tag(0x5002, 0x3000)).unwrap().basic, Action::Remove);
        assert_eq!(t.rule(Tag(0x6000, 0x3000)).unwrap().basic, Action::Remove);
        assert!(t.rule(Tag(0x6001, 0x3000)).is_none());
        assert_eq!(t.rule(tags::REFERENCED_IMAGE_SEQUENCE).unwrap().basic, Action::Uid);
        assert_eq!(t.rule(tags::PATIENT_NAME).unwrap().basic, Action::Empty);
    }

    #[test]
    fn strictest_selected_option_wins() {
        let t = Table::get().unwrap();
        // Calibration Date: device identity K, modified dates C.
        let r = t.rule(tags::DATE_OF_LAST_CALIBRATION).unwrap();
        let p = DicomPolicy {
            options: vec![
                DicomOption::RetainDeviceIdentity,
                DicomOption::RetainLongitudinalModifiedDates,
            ],
            safe_private: vec![],
        };
        assert_eq!(r.action(&p), Action::Clean(Clean::ShiftDates));
    }

    #[test]
    fn selectors() {
        assert_eq!(selector("(0010,0010)"), Some(Selector::Exact(tags::PATIENT_NAME)));
        assert_eq!(
            selector("(60XX,4000)"),
            Some(Selector::Pattern { mask: 0xff00_ffff, value: 0x6000_4000 })
        );
        assert_eq!(selector("(GGGG,EEEE) WHERE GGGG IS ODD"), Some(Selector::Private));
        assert_eq!(selector("0010,0010"), None);
        assert!(basic_action("Q").is_none());
    }
}
