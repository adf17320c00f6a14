//! A report that arrived on its own (HL7 ORU^R01) through the gate: the identifiers the
//! message carries (PID, OBR) build the identifier set, the text is scrubbed and verified,
//! and the package names its exam by the same keyed pseudonym the exam gets, so the hub joins
//! them without the box keeping any link.

use super::actions::{Action, Flag, Treatment};
use super::exam::{date_shift, format_date};
use super::identifiers::IdentifierSet;
use super::policy::FreeTextPolicy;
use super::*;
use fgw_format::package::ReportRecord;
use fgw_records::{Column, RawReport};
use std::collections::BTreeMap;

/// A report on its own through the gate: a sealed package or a quarantine.
pub fn deidentify_report(report: &RawReport, ctx: &DeidContext) -> DeidOutcome {
    let Some(exam_id) = report.get(Column::ExamId) else {
        return DeidOutcome::Quarantined {
            reason: QuarantineReason::RequiredFieldInvalid("exam_id".into()),
        };
    };
    let ids = IdentifierSet::from_fields(&report.fields);
    let (fac, ps, policy) = (ctx.facility, ctx.pseudonymizer, ctx.policy);
    let mut flags = BTreeMap::new();
    let mut actions = vec![Action::Column(Column::ExamId, Treatment::Pseudonymized)];
    let patient_pid = report.get(Column::PatientId).map(|v| ps.patient(fac, v));
    if patient_pid.is_some() {
        actions.push(Action::Column(Column::PatientId, Treatment::Pseudonymized));
    }
    let observed_date = report.observed.as_deref().and_then(|ts| match parse_hl7_date(ts) {
        Some(d) => {
            let shift = date_shift(ctx, report.get(Column::PatientId), exam_id, &mut flags);
            Some(format_date(d, policy.exam_date, shift))
        }
        None => {
            flags.insert("observed_date".into(), Flag::Unparseable.as_str().into());
            None
        }
    });
    let status = match report.status.as_deref().map(str::trim) {
        Some("F") => "final",
        Some("C") => "corrected",
        Some("P") => "preliminary",
        Some("X") => "cancelled",
        Some("A") => "partial",
        Some("") | None => "unknown",
        Some(_) => {
            flags.insert("status".into(), Flag::NotInVocabulary.as_str().into());
            "unknown"
        }
    };
    let text = match policy.free_text {
        FreeTextPolicy::ScrubAndVerify => {
            actions.push(Action::FreeText(FreeTextPolicy::ScrubAndVerify));
            text::scrub(&report.text, &ids).text
        }
        FreeTextPolicy::Drop => {
            actions.push(Action::FreeText(FreeTextPolicy::Drop));
            String::new()
        }
    };
    let terms = fgw_records::terms::TermList::embedded();
    let findings = terms.extract_findings(&text);
    let record = ReportRecord {
        exam_pid: ps.exam(fac, exam_id),
        patient_pid,
        status: status.into(),
        observed_date,
        date_policy: policy.exam_date.as_str().into(),
        terms_version: terms.version().into(),
        text,
        findings,
        diagnoses: Vec::new(),
        flags,
    };
    outcome(verify::verify_report(record, &ids), ctx, actions, Vec::new(), Vec::new())
}

/// HL7 TS `YYYYMMDD[HHMM[SS[.S]]][+ZZZZ]`: the date part.
fn parse_hl7_date(ts: &str) -> Option<chrono::NaiveDate> {
    let d = ts.trim().get(..8)?;
    chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_format::ids::FacilityId;

    fn report(text: &str) -> RawReport {
        let fields = [
            (Column::ExamId, "E2026112500123"),
            (Column::PatientId, "00123456"),
            (Column::PatientName, "山田 太郎"),
            (Column::PatientKana, "ヤマダ タロウ"),
            (Column::BirthDate, "1950/01/02"),
        ];
        RawReport {
            source: "hl7 test".into(),
            fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
            observed: Some("20261125091500".into()),
            status: Some("F".into()),
            text: text.into(),
        }
    }

    fn run(r: &RawReport) -> DeidOutcome {
        let fac = FacilityId::new("F1").unwrap();
        let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[3; 32]));
        let policy = Policy::default();
        deidentify_report(
            r,
            &DeidContext {
                facility: &fac,
                pseudonymizer: &ps,
                policy: &policy,
                profile: "hl7",
                revision: 1,
                pixels: &crate::pixels::PixelStage::new(Default::default()),
            },
        )
    }

    #[test]
    fn report_joins_its_exam_by_the_same_pseudonym() {
        let DeidOutcome::Package { package, .. } =
            run(&report("山田太郎様。胃体下部に0-Ⅱc。ID 00123456"))
        else {
            panic!("quarantined")
        };
        let m = package.manifest();
        let r = m.report().unwrap();
        let fac = FacilityId::new("F1").unwrap();
        let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[3; 32]));
        assert_eq!(r.exam_pid, ps.exam(&fac, "E2026112500123"));
        assert_eq!(r.status, "final");
        assert_eq!(r.observed_date.as_deref(), Some("2026-11-25"));
        let json = String::from_utf8(package.manifest_bytes().to_vec()).unwrap();
        for leak in ["山田", "00123456", "123456", "E2026112500123"] {
            assert!(!json.contains(leak), "{leak}");
        }
        assert!(json.contains("0-Ⅱc") || json.contains("0-IIc"));
    }

    #[test]
    fn report_without_exam_id_is_quarantined() {
        let mut r = report("x");
        r.fields.remove(&Column::ExamId);
        assert!(matches!(run(&r), DeidOutcome::Quarantined { .. }));
    }
}
