//! The columns of the exam table, each with its type and meaning: one list that the Parquet
//! schema, the rows and the data dictionary (`data-dictionary.json`, docs/export.md) are all
//! made from, so they cannot drift apart.

use chrono::DateTime;
use fgw_format::package::protocol::ExamListing;
use fgw_format::package::{Age, ExamRecord, Manifest, TermRef};
use serde::Serialize;

/// One current exam as exported: the hub's listing of it and its manifest.
pub(crate) struct ExamRow<'a> {
    pub(crate) facility: &'a str,
    pub(crate) listing: &'a ExamListing,
    pub(crate) manifest: &'a Manifest,
    pub(crate) exam: &'a ExamRecord,
}

/// A column's Parquet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ColumnType {
    /// UTF-8 string (`BYTE_ARRAY`, `STRING`).
    String,
    /// 32-bit signed integer.
    Int32,
    /// Boolean.
    Boolean,
    /// Milliseconds since the epoch, UTC (`INT64`, `TIMESTAMP(MILLIS, true)`).
    TimestampMillisUtc,
    /// A JSON document in a UTF-8 string (`BYTE_ARRAY`, `JSON`).
    Json,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Str(String),
    I32(i32),
    Bool(bool),
    TsMillis(i64),
}

/// A column: name, type, whether it may be null, what it means, and how to read it off a row.
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) ty: ColumnType,
    pub(crate) nullable: bool,
    pub(crate) doc: &'static str,
    pub(crate) get: fn(&ExamRow<'_>) -> Value,
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}
fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |v| Value::Str(v.clone()))
}
fn count(n: usize) -> Value {
    Value::I32(i32::try_from(n).unwrap_or(i32::MAX))
}
fn json<T: Serialize>(v: &T) -> Value {
    Value::Str(serde_json::to_string(v).expect("records serialize"))
}
fn terms(v: &[TermRef]) -> Value {
    json(&v)
}

/// The exam table. Order is the file's column order.
pub(crate) const COLUMNS: &[Column] = &[
    Column { name: "facility_id", ty: ColumnType::String, nullable: false,
        doc: "The facility (training institution) the exam comes from.",
        get: |r| s(r.facility) },
    Column { name: "exam_pid", ty: ColumnType::String, nullable: false,
        doc: "Keyed pseudonym of the department's exam id (`e-` + 24 hex); stable across re-exports of the exam.",
        get: |r| s(&r.exam.exam_pid) },
    Column { name: "revision", ty: ColumnType::Int32, nullable: false,
        doc: "Revision of the exam this row is (the current one: highest revision, later arrival on ties).",
        get: |r| Value::I32(i32::try_from(r.listing.revision).unwrap_or(i32::MAX)) },
    Column { name: "package_id", ty: ColumnType::String, nullable: false,
        doc: "SHA-256 of the package manifest this row was read from (provenance).",
        get: |r| s(r.listing.package_id.as_str()) },
    Column { name: "received_at", ty: ColumnType::TimestampMillisUtc, nullable: false,
        doc: "When the hub received this revision (UTC).",
        get: |r| DateTime::parse_from_rfc3339(&r.listing.received_at)
            .map_or(Value::Null, |t| Value::TsMillis(t.timestamp_millis())) },
    Column { name: "patient_pid", ty: ColumnType::String, nullable: true,
        doc: "Keyed pseudonym of the hospital patient id (`p-` + 24 hex), scoped to the facility: links a patient's exams within one facility only.",
        get: |r| opt(&r.exam.patient_pid) },
    Column { name: "age_years", ty: ColumnType::Int32, nullable: true,
        doc: "Age in whole years on the exam date, below 90; null at 90 and above (see age_90_plus) or when unknown.",
        get: |r| match r.exam.age_at_exam { Some(Age::Years(y)) => Value::I32(i32::from(y)), _ => Value::Null } },
    Column { name: "age_90_plus", ty: ColumnType::Boolean, nullable: false,
        doc: "True when the patient was 90 or older (the exact age is not kept).",
        get: |r| Value::Bool(matches!(r.exam.age_at_exam, Some(Age::Bucket(_)))) },
    Column { name: "sex", ty: ColumnType::String, nullable: true,
        doc: "`M` or `F`.",
        get: |r| opt(&r.exam.sex) },
    Column { name: "exam_date", ty: ColumnType::String, nullable: true,
        doc: "Exam date: `YYYY-MM-DD` (policy keep or shift) or `YYYY-MM` (policy year-month); see date_policy.",
        get: |r| opt(&r.exam.exam_date) },
    Column { name: "date_policy", ty: ColumnType::String, nullable: false,
        doc: "How the box treated dates: `keep`, `shift` (a per-patient offset of ±1–182 days, constant for one patient) or `year-month`.",
        get: |r| s(&r.exam.date_policy) },
    Column { name: "exam_start_time", ty: ColumnType::String, nullable: true,
        doc: "`HH:MM` when the policy keeps it.",
        get: |r| opt(&r.exam.exam_start_time) },
    Column { name: "exam_type", ty: ColumnType::String, nullable: true,
        doc: "Exam type code from the society's term list (e.g. `upper_gi`).",
        get: |r| opt(&r.exam.exam_type) },
    Column { name: "in_out", ty: ColumnType::String, nullable: true,
        doc: "In- or outpatient.",
        get: |r| opt(&r.exam.in_out) },
    Column { name: "antithrombotic", ty: ColumnType::String, nullable: true,
        doc: "Antithrombotic medication (background item).",
        get: |r| opt(&r.exam.background.antithrombotic) },
    Column { name: "h_pylori", ty: ColumnType::String, nullable: true,
        doc: "H. pylori status (background item).",
        get: |r| opt(&r.exam.background.h_pylori) },
    Column { name: "sedation", ty: ColumnType::String, nullable: true,
        doc: "Sedation (background item).",
        get: |r| opt(&r.exam.background.sedation) },
    Column { name: "asa", ty: ColumnType::Int32, nullable: true,
        doc: "ASA physical status class (1–6).",
        get: |r| r.exam.background.asa.map_or(Value::Null, |a| Value::I32(i32::from(a))) },
    Column { name: "operator_pid", ty: ColumnType::String, nullable: true,
        doc: "Keyed pseudonym of the endoscopist (`d-` + 24 hex).",
        get: |r| opt(&r.exam.operator_pid) },
    Column { name: "referring_pid", ty: ColumnType::String, nullable: true,
        doc: "Keyed pseudonym of the referring doctor (`d-` + 24 hex).",
        get: |r| opt(&r.exam.referring_pid) },
    Column { name: "findings", ty: ColumnType::Json, nullable: false,
        doc: "Findings by site: JSON array of {site: term, terms: [term], text}; a term is {code, label, unmapped}.",
        get: |r| json(&r.exam.findings) },
    Column { name: "diagnoses", ty: ColumnType::Json, nullable: false,
        doc: "Diagnoses: JSON array of terms {code, label, unmapped}; code is null when the source spelling did not map (label is then scrubbed free text).",
        get: |r| terms(&r.exam.diagnoses) },
    Column { name: "treatments", ty: ColumnType::Json, nullable: false,
        doc: "Treatments: JSON array of terms.",
        get: |r| terms(&r.exam.treatments) },
    Column { name: "adverse_events", ty: ColumnType::Json, nullable: false,
        doc: "Adverse events: JSON array of terms.",
        get: |r| terms(&r.exam.adverse_events) },
    Column { name: "findings_text", ty: ColumnType::String, nullable: true,
        doc: "Free-text findings as written, after the box removed personal information.",
        get: |r| opt(&r.exam.findings_text) },
    Column { name: "comment", ty: ColumnType::String, nullable: true,
        doc: "Free-text comment, scrubbed.",
        get: |r| opt(&r.exam.comment) },
    Column { name: "report", ty: ColumnType::String, nullable: true,
        doc: "Free-text report, scrubbed.",
        get: |r| opt(&r.exam.report) },
    Column { name: "extra", ty: ColumnType::Json, nullable: false,
        doc: "Extra columns the facility's policy keeps: JSON object by source header name (empty by default).",
        get: |r| json(&r.exam.extra) },
    Column { name: "flags", ty: ColumnType::Json, nullable: false,
        doc: "Values the box could not accept, by column key, e.g. {\"asa\": \"not_in_vocabulary\"}; the value itself is never kept.",
        get: |r| json(&r.exam.flags) },
    Column { name: "images_total", ty: ColumnType::Int32, nullable: false,
        doc: "Images of the exam at the department, sent or withheld.",
        get: |r| count(r.exam.images.len()) },
    Column { name: "images_withheld", ty: ColumnType::Int32, nullable: false,
        doc: "Images kept on the box (burned-in text it could not clear, a failed check); they never left the hospital.",
        get: |r| Value::I32(i32::try_from(r.listing.images_withheld).unwrap_or(i32::MAX)) },
    Column { name: "reports", ty: ColumnType::Int32, nullable: false,
        doc: "HL7 report packages received for this exam.",
        get: |r| Value::I32(i32::try_from(r.listing.reports).unwrap_or(i32::MAX)) },
    Column { name: "dicom_objects", ty: ColumnType::Int32, nullable: false,
        doc: "DICOM objects received whose accession number maps to this exam (see the DICOM export).",
        get: |r| Value::I32(i32::try_from(r.listing.dicom_objects).unwrap_or(i32::MAX)) },
    Column { name: "profile", ty: ColumnType::String, nullable: false,
        doc: "Vendor mapping profile the box read the department's export with.",
        get: |r| s(&r.exam.profile) },
    Column { name: "terms_version", ty: ColumnType::String, nullable: false,
        doc: "Version of the term lists the codes come from.",
        get: |r| s(&r.exam.terms_version) },
    Column { name: "deid_policy_id", ty: ColumnType::String, nullable: false,
        doc: "De-identification policy the box applied.",
        get: |r| s(&r.manifest.deid.policy_id) },
    Column { name: "deid_policy_version", ty: ColumnType::Int32, nullable: false,
        doc: "That policy's version (a policy release).",
        get: |r| Value::I32(i32::try_from(r.manifest.deid.policy_version).unwrap_or(i32::MAX)) },
    Column { name: "deid_tool_version", ty: ColumnType::String, nullable: false,
        doc: "Version of the gateway software that made the package.",
        get: |r| s(&r.manifest.deid.tool_version) },
];

/// One entry of `data-dictionary.json`.
#[derive(Debug, Serialize)]
pub(crate) struct DictionaryEntry {
    pub(crate) name: &'static str,
    #[serde(rename = "type")]
    pub(crate) ty: ColumnType,
    pub(crate) nullable: bool,
    pub(crate) description: &'static str,
}

/// The data dictionary of [`COLUMNS`].
pub(crate) fn dictionary() -> Vec<DictionaryEntry> {
    COLUMNS
        .iter()
        .map(|c| DictionaryEntry {
            name: c.name,
            ty: c.ty,
            nullable: c.nullable,
            description: c.doc,
        })
        .collect()
}
