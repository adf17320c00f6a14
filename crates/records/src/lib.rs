//! Identifiable exam records as read from the department system (identifiable side only).
//!
//! Nothing here may be logged or serialized anywhere but the encrypted spool: `Debug` on
//! [`RawExam`] is redacted on purpose.

pub mod profile;
pub mod terms;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The columns of the reference export (`docs/department-export.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Column {
    /// `検査ID`.
    ExamId,
    /// `患者ID`.
    PatientId,
    /// `患者氏名`.
    PatientName,
    /// `患者カナ`.
    PatientKana,
    /// `生年月日`.
    BirthDate,
    /// `性別`.
    Sex,
    /// `検査日`.
    ExamDate,
    /// `検査開始時刻`.
    ExamStartTime,
    /// `検査種別`.
    ExamType,
    /// `依頼医`.
    ReferringPhysician,
    /// `施行医`.
    Operator,
    /// `入外区分`.
    InOut,
    /// `抗血栓薬`.
    Antithrombotic,
    /// `HP感染`.
    HPylori,
    /// `鎮静`.
    Sedation,
    /// `ASA`.
    Asa,
    /// `所見`.
    Findings,
    /// `診断`.
    Diagnoses,
    /// `処置`.
    Treatments,
    /// `偶発症`.
    AdverseEvents,
    /// `住所`.
    Address,
    /// `電話番号`.
    Phone,
    /// `コメント`.
    Comment,
}

/// What the spec says a column is; drives the de-identification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnClass {
    /// Identifies the patient directly (id, name, birth date, address, phone).
    DirectIdentifier,
    /// Identifies the exam, and through it the patient (検査ID).
    IndirectIdentifier,
    /// A staff member's name.
    PersonName,
    /// A calendar date.
    Date,
    /// A time of day.
    Time,
    /// A value from a small fixed set.
    Categorical,
    /// A list of terms, coded with the term list.
    Terms,
    /// Free text.
    FreeText,
}

impl Column {
    /// Every column, in the reference export's order.
    pub const ALL: [Column; 23] = [
        Column::ExamId,
        Column::PatientId,
        Column::PatientName,
        Column::PatientKana,
        Column::BirthDate,
        Column::Sex,
        Column::ExamDate,
        Column::ExamStartTime,
        Column::ExamType,
        Column::ReferringPhysician,
        Column::Operator,
        Column::InOut,
        Column::Antithrombotic,
        Column::HPylori,
        Column::Sedation,
        Column::Asa,
        Column::Findings,
        Column::Diagnoses,
        Column::Treatments,
        Column::AdverseEvents,
        Column::Address,
        Column::Phone,
        Column::Comment,
    ];

    /// Header name in the reference export.
    pub fn header(self) -> &'static str {
        match self {
            Column::ExamId => "検査ID",
            Column::PatientId => "患者ID",
            Column::PatientName => "患者氏名",
            Column::PatientKana => "患者カナ",
            Column::BirthDate => "生年月日",
            Column::Sex => "性別",
            Column::ExamDate => "検査日",
            Column::ExamStartTime => "検査開始時刻",
            Column::ExamType => "検査種別",
            Column::ReferringPhysician => "依頼医",
            Column::Operator => "施行医",
            Column::InOut => "入外区分",
            Column::Antithrombotic => "抗血栓薬",
            Column::HPylori => "HP感染",
            Column::Sedation => "鎮静",
            Column::Asa => "ASA",
            Column::Findings => "所見",
            Column::Diagnoses => "診断",
            Column::Treatments => "処置",
            Column::AdverseEvents => "偶発症",
            Column::Address => "住所",
            Column::Phone => "電話番号",
            Column::Comment => "コメント",
        }
    }

    /// The column of a header name (surrounding spaces and a BOM ignored).
    pub fn from_header(h: &str) -> Option<Column> {
        let h = h.trim().trim_start_matches('\u{feff}');
        Column::ALL.iter().copied().find(|c| c.header() == h)
    }

    /// Stable ASCII key used in reports and errors (never the value).
    pub fn key(self) -> &'static str {
        match self {
            Column::ExamId => "exam_id",
            Column::PatientId => "patient_id",
            Column::PatientName => "patient_name",
            Column::PatientKana => "patient_kana",
            Column::BirthDate => "birth_date",
            Column::Sex => "sex",
            Column::ExamDate => "exam_date",
            Column::ExamStartTime => "exam_start_time",
            Column::ExamType => "exam_type",
            Column::ReferringPhysician => "referring_physician",
            Column::Operator => "operator",
            Column::InOut => "in_out",
            Column::Antithrombotic => "antithrombotic",
            Column::HPylori => "h_pylori",
            Column::Sedation => "sedation",
            Column::Asa => "asa",
            Column::Findings => "findings",
            Column::Diagnoses => "diagnoses",
            Column::Treatments => "treatments",
            Column::AdverseEvents => "adverse_events",
            Column::Address => "address",
            Column::Phone => "phone",
            Column::Comment => "comment",
        }
    }

    /// What the spec says the column is.
    pub fn class(self) -> ColumnClass {
        use Column::*;
        match self {
            PatientId | PatientName | PatientKana | BirthDate | Address | Phone => {
                ColumnClass::DirectIdentifier
            }
            ExamId => ColumnClass::IndirectIdentifier,
            ReferringPhysician | Operator => ColumnClass::PersonName,
            ExamDate => ColumnClass::Date,
            ExamStartTime => ColumnClass::Time,
            Sex | InOut | Antithrombotic | HPylori | Sedation | Asa | ExamType => {
                ColumnClass::Categorical
            }
            Diagnoses | Treatments | AdverseEvents => ColumnClass::Terms,
            Findings | Comment => ColumnClass::FreeText,
        }
    }
}

/// Where a record came from: the batch's label, the table under it, and the 1-based data row
/// (header is row 0) plus the physical line it starts on. Logged and stored by the box, so it
/// never holds the batch folder's own name (the department system chooses it; it may carry a
/// patient's name or id): the reader is given a label for the batch and puts that here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The batch's label (the gateway's keyed label, `batch-` and 12 hex digits), never the
    /// folder's name.
    pub batch: String,
    /// The table under the batch's label, e.g. `batch-3f9c0a1b2c4d/exams.csv`.
    pub file: String,
    /// 1-based data row.
    pub row: u64,
    /// Physical line the row starts on.
    pub line: u64,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row {} (line {})", self.file, self.row, self.line)
    }
}

/// One image file belonging to an exam, as found in the export.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawImage {
    /// Position of the image within the exam (0-based, ordered by file name).
    pub index: u32,
    /// Path under the batch's label (`<label>/images/<検査ID>/<file>`). Contains identifiers
    /// (folder = 検査ID, the file's name): never logged or stored outside the spool.
    pub rel_path: String,
    /// The file's content.
    pub bytes: Vec<u8>,
}

/// One exam row with its images and report: identifiable. Decoded to UTF-8, values trimmed,
/// otherwise exactly as exported (normalization happens in `deid`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExam {
    /// Where the row came from.
    pub source: SourceRef,
    /// Reference-layout columns present in the row.
    pub fields: BTreeMap<Column, String>,
    /// Columns not in the reference layout, by header name. Dropped unless the policy keeps them.
    pub extra: BTreeMap<String, String>,
    /// The exam's images, in order.
    pub images: Vec<RawImage>,
    /// Images named in the export that could not be read (relative path, reason).
    pub missing_images: Vec<(String, String)>,
    /// The exam's report text, if the export has one.
    pub report: Option<String>,
}

impl RawExam {
    /// An exam holding only these fields (tests, tools): no images, no extra columns.
    pub fn with_fields(fields: &[(Column, &str)]) -> RawExam {
        RawExam {
            source: SourceRef { batch: "b".into(), file: "f".into(), row: 1, line: 2 },
            fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
            extra: BTreeMap::new(),
            images: vec![],
            missing_images: vec![],
            report: None,
        }
    }

    /// A field's value; `None` when absent or empty.
    pub fn get(&self, c: Column) -> Option<&str> {
        self.fields.get(&c).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for RawExam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print values: this type holds personal data.
        write!(
            f,
            "RawExam {{ source: {}, fields: {}, extra: {}, images: {} }}",
            self.source,
            self.fields.len(),
            self.extra.len(),
            self.images.len()
        )
    }
}

impl fmt::Debug for RawImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawImage {{ index: {}, bytes: {} }}", self.index, self.bytes.len())
    }
}

/// A free-text report that arrived on its own (HL7 v2 ORU^R01): identifiable. `fields` holds
/// the identifiers the message carries (PID: patient id, name, kana, birth date, address,
/// phone; OBR: exam id), keyed like export columns so the gate treats both alike.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawReport {
    /// Where it came from, without values: e.g. `hl7 from 10.0.0.5 message 17`.
    pub source: String,
    /// The identifiers the message carried.
    pub fields: BTreeMap<Column, String>,
    /// Observation date/time as sent (HL7 TS, e.g. `20261125091500`).
    pub observed: Option<String>,
    /// HL7 result status (OBR-25), e.g. `F`, `C`, `P`.
    pub status: Option<String>,
    /// Report text (OBX-5 of text observations joined by newlines), unescaped.
    pub text: String,
}

impl RawReport {
    /// A field's value; `None` when absent or empty.
    pub fn get(&self, c: Column) -> Option<&str> {
        self.fields.get(&c).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for RawReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RawReport {{ source: {}, fields: {}, text: {} chars }}",
            self.source,
            self.fields.len(),
            self.text.chars().count()
        )
    }
}
