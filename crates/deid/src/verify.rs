//! The last check before a package is sealed: every string in the finished record (keys,
//! values, list items) is searched for this exam's identifiers and for contact patterns with
//! the same matcher the scrubber uses ([`text::find`]).
//!
//! Limits, by design: variants shorter than 2 chars (4 if all digits) are not searched, so a
//! 1-kanji surname or given name is caught only as part of the full name. Pseudonym fields
//! (`exam_pid`, `patient_pid`, `operator_pid`) are checked by shape instead of searched: they
//! are HMAC output and random hex could contain a short numeric id by chance.
//!
//! Structured fields the gate formats itself ([`STRUCTURED`]: `exam_date` as `YYYY-MM-DD`,
//! `exam_start_time` as `HH:MM`, policy names, codes) are searched for the exam's own
//! identifiers only: the generic date pattern would otherwise flag every exam date.
//!
//! This module is also the only maker of [`Verified`], the token a package is sealed from
//! ([`crate::DeidPackage`]): `verify_exam`, `verify_report` and `verify_dicom` return one only
//! when their check found nothing.

use super::identifiers::{searchable, IdentifierSet};
use super::pseudonym::is_pseudonym;
use super::text;
use fgw_format::package::{Body, DicomRecord, ExamRecord, ReportRecord};
use serde::Serialize;
use serde_json::Value;

/// A finished record that passed verification, held so that it cannot change after the
/// check. Its one constructor is private to this module and called only by the `verify_*`
/// functions below when they find nothing: holding one is the proof.
pub(crate) struct Verified {
    body: Body,
}

impl Verified {
    fn new(body: Body) -> Verified {
        Verified { body }
    }

    /// The verified record, for the seal.
    pub(crate) fn into_body(self) -> Body {
        self.body
    }
}

/// An exam record checked against the exam's own identifiers ([`verify_record`]).
pub(crate) fn verify_exam(record: ExamRecord, ids: &IdentifierSet) -> Result<Verified, Finding> {
    verify_record(&record, ids)?;
    Ok(Verified::new(Body::Exam(record)))
}

/// A report record checked against the message's own identifiers ([`verify_record`]).
pub(crate) fn verify_report(
    record: ReportRecord,
    ids: &IdentifierSet,
) -> Result<Verified, Finding> {
    verify_record(&record, ids)?;
    Ok(Verified::new(Body::Report(record)))
}

/// A DICOM object's record checked by shape ([`verify_dicom_record`]). Every value in it is
/// made by the gate; the object itself was searched for its identifiers by the DICOM gate.
pub(crate) fn verify_dicom(record: DicomRecord) -> Result<Verified, Finding> {
    verify_dicom_record(&record)?;
    Ok(Verified::new(Body::Dicom(record)))
}

/// Where an identifier was found: field path (`findings`, `diagnoses.1`, `extra.0`,
/// `extra.0.key`) and identifier kind (`patient_name`, `phone_pattern`, ...). Never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Path of the field in the record.
    pub field: String,
    /// Identifier kind or check that failed.
    pub kind: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.field, self.kind)
    }
}

const PSEUDONYM_FIELDS: [(&str, &str); 4] =
    [("exam_pid", "e-"), ("patient_pid", "p-"), ("operator_pid", "d-"), ("referring_pid", "d-")];

/// Verify any de-identified record (exam or report): a JSON object whose top-level
/// pseudonym fields have their shape and whose every other string is free of identifiers.
pub(crate) fn verify_record<T: Serialize>(record: &T, ids: &IdentifierSet) -> Result<(), Finding> {
    debug_assert!(ids.variants().all(|(_, v)| searchable(v)));
    let value = serde_json::to_value(record)
        .map_err(|_| Finding { field: "record".into(), kind: "unserializable" })?;
    let Value::Object(top) = value else {
        return Err(Finding { field: "record".into(), kind: "unserializable" });
    };
    for (key, v) in &top {
        if let Some((_, prefix)) = PSEUDONYM_FIELDS.iter().find(|(k, _)| k == key) {
            match v {
                Value::Null => continue,
                Value::String(s) if is_pseudonym(s, prefix) => continue,
                _ => return Err(Finding { field: key.clone(), kind: "pseudonym_shape" }),
            }
        }
        check_str(key, key, ids)?;
        walk(key, v, ids, !FREE_KEYED.contains(&key.as_str()))?;
    }
    Ok(())
}

/// Check a DICOM object's record by shape: every field is a remapped UID (`2.25.` + digits),
/// a keyed pseudonym, or a code the gate chose. Nothing free-form may pass.
pub fn verify_dicom_record(r: &DicomRecord) -> Result<(), Finding> {
    let fail = |field: &str, kind: &'static str| Err(Finding { field: field.into(), kind });
    let remapped = |u: &str| {
        u.len() <= 64
            && u.strip_prefix("2.25.")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    for (field, v) in [
        ("study_uid", Some(&r.study_uid)),
        ("series_uid", r.series_uid.as_ref()),
        ("sop_instance_uid", Some(&r.sop_instance_uid)),
    ] {
        if v.is_some_and(|u| !remapped(u)) {
            return fail(field, "uid_shape");
        }
    }
    // Class and transfer syntax UIDs are kept as sent: they name a class, not a patient.
    for (field, v) in [("sop_class", &r.sop_class), ("transfer_syntax", &r.transfer_syntax)] {
        if !fgw_format::ids::is_dicom_uid(v) {
            return fail(field, "uid_shape");
        }
    }
    if r.modality.as_deref().is_some_and(|m| !super::dicom::is_code(m)) {
        return fail("modality", "code_shape");
    }
    for (field, v, prefix) in
        [("patient_pid", &r.patient_pid, "p-"), ("exam_pid", &r.exam_pid, "e-")]
    {
        if v.as_deref().is_some_and(|p| !is_pseudonym(p, prefix)) {
            return fail(field, "pseudonym_shape");
        }
    }
    if !matches!(r.pixels.as_str(), "none" | "cleaned") {
        return fail("pixels", "code_shape");
    }
    Ok(())
}

/// Top-level maps whose keys come from the export (extra headers, column keys): their
/// entries are named by position, so no export text ends up in a quarantine reason.
const FREE_KEYED: [&str; 2] = ["extra", "flags"];

/// Field names (last path segment) whose values the gate formats itself: dates, times,
/// policy and version names, codes. Own identifiers are still searched there.
const STRUCTURED: [&str; 8] = [
    "exam_date",
    "exam_start_time",
    "observed_date",
    "date_policy",
    "terms_version",
    "profile",
    "code",
    "withheld",
];

/// `named`: the object's keys are the record's own field names (safe to print).
fn walk(path: &str, v: &Value, ids: &IdentifierSet, named: bool) -> Result<(), Finding> {
    match v {
        Value::String(s) => {
            let field = path.rsplit('.').next().unwrap_or(path);
            if named && STRUCTURED.contains(&field) {
                check_own(path, s, ids)
            } else {
                check_str(path, s, ids)
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(&format!("{path}.{i}"), item, ids, named)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (i, (k, item)) in map.iter().enumerate() {
                let p = if named { format!("{path}.{k}") } else { format!("{path}.{i}") };
                check_str(&format!("{p}.key"), k, ids)?;
                walk(&p, item, ids, named)?;
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn check_str(path: &str, s: &str, ids: &IdentifierSet) -> Result<(), Finding> {
    match text::find(s, ids).first() {
        Some(m) => Err(Finding { field: path.to_string(), kind: m.hit.key() }),
        None => Ok(()),
    }
}

fn check_own(path: &str, s: &str, ids: &IdentifierSet) -> Result<(), Finding> {
    match text::find_own(s, ids).first() {
        Some(m) => Err(Finding { field: path.to_string(), kind: m.hit.key() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::uids::{JPEG_BASELINE8_BIT, VL_ENDOSCOPIC_IMAGE_STORAGE};
    use fgw_format::package::{Background, TermRef};
    use fgw_records::{Column, RawExam};

    fn ids() -> IdentifierSet {
        let fields = [
            (Column::PatientName, "山田 太郎"),
            (Column::PatientId, "1125"),
            (Column::Operator, "林 一"),
        ];
        IdentifierSet::from_exam(&RawExam::with_fields(&fields))
    }

    fn term(label: &str) -> TermRef {
        TermRef { code: None, label: label.into(), unmapped: true }
    }

    fn record() -> ExamRecord {
        ExamRecord {
            exam_pid: format!("e-{}", "a1125b".repeat(4)),
            revision: 1,
            patient_pid: Some(format!("p-{}", "0".repeat(24))),
            sex: Some("M".into()),
            exam_date: Some("2026-11-25".into()),
            exam_type: Some("upper_gi".into()),
            background: Background { asa: Some(2), ..Default::default() },
            findings_text: Some("胃体下部小弯に0-Ⅱc病変。[医師]先生、林医院".into()),
            diagnoses: vec![term("早期胃癌")],
            ..Default::default()
        }
    }

    #[test]
    fn clean_record_passes() {
        // 1125 inside the pseudonym and inside 2026-11-25 is not the id; 林 alone is too short
        // to be searched as the operator's own name (and in 林医院 it names a clinic, which the
        // name finder without cues leaves too).
        assert_eq!(verify_record(&record(), &ids()), Ok(()));
    }

    #[test]
    fn finds_everywhere() {
        let mut r = record();
        r.diagnoses.push(term("山田様"));
        let f = verify_record(&r, &ids()).unwrap_err();
        assert_eq!(f, Finding { field: "diagnoses.1.label".into(), kind: "patient_name" });
        assert_eq!(f.to_string(), "diagnoses.1.label:patient_name");

        let mut r = record();
        r.extra.insert("備考".into(), "ID 1125".into());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().field, "extra.0");

        let mut r = record();
        r.extra.insert("山田太郎".into(), String::new());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().field, "extra.0.key");

        let mut r = record();
        r.comment = Some("TEL 090-1111-2222".into());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().kind, "phone_pattern");

        let mut r = record();
        r.flags.insert("sex".into(), "山田".into());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().field, "flags.0");
    }

    #[test]
    fn structured_fields_skip_patterns_not_own_identifiers() {
        let mut r = record();
        r.exam_start_time = Some("09:15".into());
        r.date_policy = "year-month".into();
        r.diagnoses[0].code = Some("2026-11".into());
        assert_eq!(verify_record(&r, &ids()), Ok(()));
        // The same date in free text is a pattern hit.
        r.comment = Some("前回 2026-11-25".into());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().kind, "date");
        // Own identifiers are searched in structured fields too.
        let mut r = record();
        r.exam_date = Some("山田".into());
        let f = verify_record(&r, &ids()).unwrap_err();
        assert_eq!(f, Finding { field: "exam_date".into(), kind: "patient_name" });
        // A pattern inside a free-keyed map is not structured even if named like one.
        let mut r = record();
        r.extra.insert("code".into(), "2026/11/25".into());
        assert_eq!(verify_record(&r, &ids()).unwrap_err().field, "extra.0");
    }

    #[test]
    fn placeholders_pass() {
        let mut r = record();
        r.findings_text =
            Some("[氏名]様、[医師]先生、Dr.[医師]、[日付]、[住所]、患者ID [番号]".into());
        assert_eq!(verify_record(&r, &ids()), Ok(()));
    }

    #[test]
    fn dicom_record_is_checked_by_shape() {
        use fgw_format::package::DicomRecord;
        let good = DicomRecord {
            study_uid: "2.25.1234".into(),
            series_uid: Some("2.25.99".into()),
            sop_instance_uid: "2.25.5".into(),
            sop_class: VL_ENDOSCOPIC_IMAGE_STORAGE.into(),
            transfer_syntax: JPEG_BASELINE8_BIT.into(),
            modality: Some("ES".into()),
            patient_pid: Some(format!("p-{}", "0".repeat(24))),
            exam_pid: None,
            pixels: "cleaned".into(),
        };
        assert_eq!(verify_dicom_record(&good), Ok(()));
        let bad = |f: fn(&mut DicomRecord), field: &str| {
            let mut r = good.clone();
            f(&mut r);
            assert_eq!(verify_dicom_record(&r).unwrap_err().field, field);
        };
        // An original (not remapped) instance UID links back to the archive.
        bad(|r| r.sop_instance_uid = "1.2.392.200036.9116.2.5".into(), "sop_instance_uid");
        bad(|r| r.series_uid = Some("2.25.x".into()), "series_uid");
        bad(|r| r.sop_class = "YAMADA".into(), "sop_class");
        bad(|r| r.modality = Some("山田".into()), "modality");
        bad(|r| r.exam_pid = Some("E2026112700042".into()), "exam_pid");
        bad(|r| r.pixels = "raw".into(), "pixels");
    }

    #[test]
    fn a_failed_check_makes_no_token() {
        let mut r = record();
        r.comment = Some("山田太郎".into());
        assert!(verify_exam(r, &ids()).is_err());
        assert!(verify_exam(record(), &ids()).is_ok());

        let report = fgw_format::package::ReportRecord {
            exam_pid: format!("e-{}", "0".repeat(24)),
            text: "ID 1125".into(),
            ..Default::default()
        };
        assert_eq!(verify_report(report, &ids()).err().map(|f| f.kind), Some("patient_id"));

        let dicom = DicomRecord {
            study_uid: "1.2.392.200036.9116.2.5".into(),
            sop_instance_uid: "2.25.5".into(),
            sop_class: VL_ENDOSCOPIC_IMAGE_STORAGE.into(),
            transfer_syntax: JPEG_BASELINE8_BIT.into(),
            pixels: "none".into(),
            ..Default::default()
        };
        assert_eq!(verify_dicom(dicom).err().map(|f| f.field), Some("study_uid".into()));
    }

    #[test]
    fn pseudonym_shape() {
        let mut r = record();
        r.patient_pid = Some("p-山田太郎".into());
        let f = verify_record(&r, &ids()).unwrap_err();
        assert_eq!(f, Finding { field: "patient_pid".into(), kind: "pseudonym_shape" });
    }
}
