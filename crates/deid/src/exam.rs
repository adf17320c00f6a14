//! One exam through the gate: build the de-identified record field by field (every output
//! field is either a pseudonym, a value from a closed vocabulary, a formatted date/number, or
//! scrubbed text), then verify it against the exam's identifiers and only then seal it.
//!
//! Unknown categorical values become `None` plus a flag naming the column; the value itself
//! is never carried, since a column holding something unexpected may hold anything.

use super::actions::{Action, Flag, Treatment};
use super::identifiers::IdentifierSet;
use super::policy::{ExamDatePolicy, ExamTimePolicy, FreeTextPolicy};
use super::*;
use fgw_format::package::{Background, ExamRecord, TermRef};
use fgw_records::terms::{TermCategory, TermList};
use fgw_records::{Column, RawExam};
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

const NOT_IN_VOCABULARY: &str = Flag::NotInVocabulary.as_str();
const UNPARSEABLE: &str = Flag::Unparseable.as_str();

/// One exam through the gate: a sealed package (with any withheld images) or a quarantine.
pub fn deidentify_exam(exam: &RawExam, ctx: &DeidContext) -> DeidOutcome {
    let quarantine = |key: &str| DeidOutcome::Quarantined {
        reason: QuarantineReason::RequiredFieldInvalid(key.to_string()),
    };
    let Some(exam_id) = exam.get(Column::ExamId).filter(|v| !norm(v).is_empty()) else {
        return quarantine(Column::ExamId.key());
    };
    let Some(exam_date) = exam.get(Column::ExamDate).and_then(|v| dates::parse_date(v).ok()) else {
        return quarantine(Column::ExamDate.key());
    };

    let ids = IdentifierSet::from_exam(exam);
    let (fac, ps, policy) = (ctx.facility, ctx.pseudonymizer, ctx.policy);
    let mut flags = BTreeMap::new();
    let mut actions = vec![Action::Column(Column::ExamId, Treatment::Pseudonymized)];
    let mut note = |c: Column, t: Treatment| actions.push(Action::Column(c, t));

    let patient_pid = exam.get(Column::PatientId).map(|v| ps.patient(fac, v));
    if patient_pid.is_some() {
        note(Column::PatientId, Treatment::Pseudonymized);
    }

    let age_at_exam = match exam.get(Column::BirthDate) {
        None => None,
        Some(v) => {
            note(Column::BirthDate, Treatment::AgeAtExam);
            match dates::parse_date(v) {
                Err(_) => {
                    flags.insert(Column::BirthDate.key().to_string(), UNPARSEABLE.into());
                    None
                }
                Ok(b) => {
                    let age = dates::age_at(b, exam_date);
                    if age.is_none() {
                        flags.insert(
                            Column::BirthDate.key().to_string(),
                            Flag::Implausible.as_str().into(),
                        );
                    }
                    age
                }
            }
        }
    };

    for c in [Column::PatientName, Column::PatientKana, Column::Address, Column::Phone] {
        if exam.get(c).is_some() {
            note(c, Treatment::Removed);
        }
    }

    let shift = date_shift(ctx, exam.get(Column::PatientId), exam_id, &mut flags);
    let exam_date_out = Some(format_date(exam_date, policy.exam_date, shift));
    note(
        Column::ExamDate,
        match policy.exam_date {
            ExamDatePolicy::Keep => Treatment::Kept,
            ExamDatePolicy::YearMonth => Treatment::YearMonth,
            ExamDatePolicy::Shift => Treatment::Shifted,
        },
    );

    let exam_start_time = match policy.exam_time {
        ExamTimePolicy::Drop => {
            if exam.get(Column::ExamStartTime).is_some() {
                note(Column::ExamStartTime, Treatment::Removed);
            }
            None
        }
        ExamTimePolicy::Keep => {
            exam.get(Column::ExamStartTime).and_then(|v| match dates::parse_time(v) {
                Ok(t) => Some(t.format("%H:%M").to_string()),
                Err(_) => {
                    flags.insert(Column::ExamStartTime.key().to_string(), UNPARSEABLE.into());
                    None
                }
            })
        }
    };

    let operator_pid = exam.get(Column::Operator).map(|v| ps.doctor(fac, v));
    if operator_pid.is_some() {
        note(Column::Operator, Treatment::Pseudonymized);
    }
    let referring_pid = exam.get(Column::ReferringPhysician).map(|v| ps.doctor(fac, v));
    if referring_pid.is_some() {
        note(Column::ReferringPhysician, Treatment::Pseudonymized);
    }

    let exam_type = exam.get(Column::ExamType).and_then(|v| {
        let t = TermList::embedded().lookup(TermCategory::ExamType, v).map(|t| t.code.clone());
        if t.is_none() {
            flags.insert(Column::ExamType.key().to_string(), NOT_IN_VOCABULARY.to_string());
        }
        t
    });
    let mut cat = |c: Column, map: fn(&str) -> Option<&'static str>| {
        let v = exam.get(c)?;
        let found = map(&norm(v).to_uppercase());
        if found.is_none() {
            flags.insert(c.key().to_string(), NOT_IN_VOCABULARY.to_string());
        }
        found.map(str::to_string)
    };
    let sex = cat(Column::Sex, sex);
    let in_out = cat(Column::InOut, in_out);
    let antithrombotic = cat(Column::Antithrombotic, antithrombotic);
    let h_pylori = cat(Column::HPylori, h_pylori);
    let sedation = cat(Column::Sedation, sedation);
    let asa = exam.get(Column::Asa).and_then(|v| {
        let a = asa(&norm(v).to_uppercase());
        if a.is_none() {
            flags.insert(Column::Asa.key().to_string(), NOT_IN_VOCABULARY.to_string());
        }
        a
    });

    // Term columns: scrub first, then map to the term list; what does not map is carried as
    // flagged (already scrubbed) text. Lower-GI exams give bare 腺腫/ポリープ their colon sense.
    let term_list = TermList::embedded();
    let organ = match exam_type.as_deref() {
        Some("lower_gi") => Some("colon"),
        Some("small_bowel") => Some("small_bowel"),
        Some("ercp") => Some("biliary"),
        _ => None,
    };
    let terms = |c: Column, cat: TermCategory| -> Vec<TermRef> {
        exam.get(c)
            .map(|v| {
                term_list
                    .split_terms(v)
                    .into_iter()
                    .map(|t| text::scrub(t.trim(), &ids).text)
                    .flat_map(|t| term_list.map_all_in(cat, &t, organ))
                    .filter(|t| !t.label.trim().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (diagnoses, treatments, adverse_events) = (
        terms(Column::Diagnoses, TermCategory::Diagnosis),
        terms(Column::Treatments, TermCategory::Treatment),
        terms(Column::AdverseEvents, TermCategory::AdverseEvent),
    );
    actions.push(Action::TermsScrubbedAndMapped);

    let free = |v: Option<&str>| match policy.free_text {
        FreeTextPolicy::ScrubAndVerify => {
            v.map(|t| text::scrub(t, &ids).text).filter(|t| !t.trim().is_empty())
        }
        FreeTextPolicy::Drop => None,
    };
    let findings_text = free(exam.get(Column::Findings));
    let findings =
        findings_text.as_deref().map(|t| term_list.extract_findings(t)).unwrap_or_default();
    let comment = free(exam.get(Column::Comment));
    let report = free(exam.report.as_deref().filter(|r| !r.trim().is_empty()));
    actions.push(Action::FreeText(policy.free_text));

    let keep: Vec<String> = policy.keep_extra_columns.iter().map(|h| norm(h)).collect();
    let mut extra = BTreeMap::new();
    let mut dropped = 0usize;
    for (header, value) in &exam.extra {
        if keep.contains(&norm(header)) {
            let v = text::scrub(value, &ids).text;
            if !v.trim().is_empty() {
                extra.insert(header.clone(), v);
            }
        } else {
            dropped += 1;
        }
    }
    if !extra.is_empty() {
        actions.push(Action::ExtraKept(extra.len()));
    }
    if dropped > 0 {
        actions.push(Action::ExtraDropped(dropped));
    }

    let imgs = super::exam_images::process(&exam.images, &ids, ctx.pixels);
    actions.extend(imgs.actions);
    let images = imgs.refs;
    let withheld = imgs.withheld;

    let record = ExamRecord {
        exam_pid: ps.exam(fac, exam_id),
        revision: ctx.revision,
        profile: ctx.profile.into(),
        terms_version: term_list.version().into(),
        patient_pid,
        age_at_exam,
        sex,
        exam_date: exam_date_out,
        date_policy: policy.exam_date.as_str().into(),
        exam_start_time,
        exam_type,
        in_out,
        background: Background { antithrombotic, h_pylori, sedation, asa },
        operator_pid,
        referring_pid,
        findings,
        diagnoses,
        treatments,
        adverse_events,
        findings_text,
        comment,
        report,
        extra,
        flags,
        images,
    };

    outcome(verify::verify_exam(record, &ids), ctx, actions, imgs.files, withheld)
}

/// The per-patient shift in days when the policy shifts dates (the exam's own key when the
/// patient id is missing, flagged), else 0.
pub(super) fn date_shift(
    ctx: &DeidContext,
    patient_id: Option<&str>,
    exam_id: &str,
    flags: &mut BTreeMap<String, String>,
) -> i64 {
    if ctx.policy.exam_date != ExamDatePolicy::Shift {
        return 0;
    }
    match patient_id {
        Some(p) => ctx.pseudonymizer.date_shift_days(ctx.facility, p),
        None => {
            flags.insert(Column::ExamDate.key().into(), Flag::ShiftWithoutPatient.as_str().into());
            ctx.pseudonymizer.date_shift_days(ctx.facility, &format!("exam:{exam_id}"))
        }
    }
}

/// A date as the policy releases it.
pub(super) fn format_date(d: chrono::NaiveDate, policy: ExamDatePolicy, shift_days: i64) -> String {
    match policy {
        ExamDatePolicy::Keep => d.format("%Y-%m-%d").to_string(),
        ExamDatePolicy::YearMonth => d.format("%Y-%m").to_string(),
        ExamDatePolicy::Shift => {
            (d + chrono::Duration::days(shift_days)).format("%Y-%m-%d").to_string()
        }
    }
}

/// NFKC, trimmed, inner whitespace removed: how categorical values and headers compare.
fn norm(s: &str) -> String {
    s.nfkc().filter(|c| !c.is_whitespace()).collect()
}

fn sex(v: &str) -> Option<&'static str> {
    match v {
        "男" | "男性" | "M" | "MALE" | "1" => Some("M"),
        "女" | "女性" | "F" | "FEMALE" | "2" => Some("F"),
        _ => None,
    }
}

fn in_out(v: &str) -> Option<&'static str> {
    match v {
        "入院" => Some("inpatient"),
        "外来" => Some("outpatient"),
        _ => None,
    }
}

fn antithrombotic(v: &str) -> Option<&'static str> {
    match v {
        "あり" | "有" | "有り" => Some("yes"),
        "なし" | "無" | "無し" => Some("no"),
        "不明" => Some("unknown"),
        _ => None,
    }
}

fn h_pylori(v: &str) -> Option<&'static str> {
    match v {
        "未感染" => Some("uninfected"),
        "現感染" => Some("current"),
        "既感染" => Some("past"),
        "不明" => Some("unknown"),
        _ => None,
    }
}

fn sedation(v: &str) -> Option<&'static str> {
    match v {
        "なし" | "無" | "無し" => Some("none"),
        "ミダゾラム" => Some("midazolam"),
        "プロポフォール" => Some("propofol"),
        "ジアゼパム" => Some("diazepam"),
        "ペチジン" => Some("pethidine"),
        "デクスメデトミジン" => Some("dexmedetomidine"),
        _ => None,
    }
}

/// `1`..`5`, optionally `ASA` prefixed or in roman numerals (Ⅱ is `II` after NFKC).
fn asa(v: &str) -> Option<u8> {
    let v = v.strip_prefix("ASA").unwrap_or(v);
    match v {
        "1" | "I" => Some(1),
        "2" | "II" => Some(2),
        "3" | "III" => Some(3),
        "4" | "IV" => Some(4),
        "5" | "V" => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::Pseudonymizer;
    use fgw_format::ids::FacilityId;
    use fgw_records::RawImage;

    fn raw(fields: &[(Column, &str)]) -> RawExam {
        RawExam::with_fields(fields)
    }

    fn run(e: &RawExam, policy: &Policy) -> DeidOutcome {
        let fac = FacilityId::new("F0001").unwrap();
        let ps = Pseudonymizer::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[3; 32]));
        deidentify_exam(
            e,
            &DeidContext {
                facility: &fac,
                pseudonymizer: &ps,
                policy,
                profile: "reference",
                revision: 1,
                pixels: &crate::pixels::PixelStage::new(policy.pixels.clone()),
            },
        )
    }

    fn record(o: DeidOutcome) -> ExamRecord {
        match o {
            DeidOutcome::Package { package, .. } => {
                package.manifest().exam().cloned().expect("exam")
            }
            DeidOutcome::Quarantined { reason } => panic!("quarantined: {reason}"),
        }
    }

    #[test]
    fn vocabularies_and_flags() {
        let e = raw(&[
            (Column::ExamId, "E1"),
            (Column::ExamDate, "2026/11/25"),
            (Column::BirthDate, "不明"),
            (Column::Sex, "ｍ"),
            (Column::ExamType, "ＥＲＣＰ"),
            (Column::InOut, "入院"),
            (Column::Antithrombotic, "たぶん"),
            (Column::HPylori, "既感染"),
            (Column::Sedation, "ペチジン"),
            (Column::Asa, "Ⅲ"),
        ]);
        let r = record(run(&e, &Policy::default()));
        assert_eq!(r.sex.as_deref(), Some("M"));
        assert_eq!(r.exam_type.as_deref(), Some("ercp"));
        assert_eq!(r.in_out.as_deref(), Some("inpatient"));
        assert_eq!(r.background.antithrombotic, None);
        assert_eq!(r.background.h_pylori.as_deref(), Some("past"));
        assert_eq!(r.background.sedation.as_deref(), Some("pethidine"));
        assert_eq!(r.background.asa, Some(3));
        assert_eq!(r.flags.get("antithrombotic").map(String::as_str), Some(NOT_IN_VOCABULARY));
        assert_eq!(r.flags.get("birth_date").map(String::as_str), Some(UNPARSEABLE));
        assert_eq!(r.exam_date.as_deref(), Some("2026-11-25"));
        assert_eq!(r.exam_start_time, None);
    }

    #[test]
    fn policies() {
        let mut e = raw(&[
            (Column::ExamId, "E1"),
            (Column::ExamDate, "R8.11.25"),
            (Column::ExamStartTime, "9:05"),
            (Column::Findings, "所見あり"),
        ]);
        e.extra.insert("部位".into(), "胃角".into());
        e.extra.insert("保険番号".into(), "X".into());
        let p = Policy {
            exam_date: ExamDatePolicy::YearMonth,
            exam_time: ExamTimePolicy::Keep,
            free_text: FreeTextPolicy::Drop,
            keep_extra_columns: vec!["部位".into()],
            ..Policy::default()
        };
        let r = record(run(&e, &p));
        assert_eq!(r.exam_date.as_deref(), Some("2026-11"));
        assert_eq!(r.exam_start_time.as_deref(), Some("09:05"));
        assert_eq!(r.findings_text, None);
        assert_eq!(r.extra.len(), 1);
        assert_eq!(r.extra.get("部位").map(String::as_str), Some("胃角"));
    }

    #[test]
    fn date_shift_is_per_patient_and_keeps_intervals() {
        let p = Policy { exam_date: ExamDatePolicy::Shift, ..Policy::default() };
        let day = |id: &str, pid: &str, date: &str| {
            let e =
                raw(&[(Column::ExamId, id), (Column::PatientId, pid), (Column::ExamDate, date)]);
            let r = record(run(&e, &p));
            assert_eq!(r.date_policy, "shift");
            chrono::NaiveDate::parse_from_str(r.exam_date.as_deref().unwrap(), "%Y-%m-%d").unwrap()
        };
        let a1 = day("E1", "0042", "2026/01/10");
        let a2 = day("E2", "42", "2026/03/11");
        assert_eq!((a2 - a1).num_days(), 60, "interval between one patient's exams survives");
        assert_ne!(a1, chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(), "date moved");
        let b = day("E3", "777", "2026/01/10");
        assert_ne!(a1, b, "another patient gets another offset (with this key)");
    }

    #[test]
    fn images_are_withheld() {
        let mut e = raw(&[(Column::ExamId, "E1"), (Column::ExamDate, "2026/11/25")]);
        e.images.push(RawImage { index: 0, rel_path: "x".into(), bytes: b"GIF89a".to_vec() });
        e.images.push(RawImage {
            index: 1,
            rel_path: "y".into(),
            bytes: vec![0xFF, 0xD8, 0xFF, 0xD9],
        });
        match run(&e, &Policy::default()) {
            DeidOutcome::Package { package, withheld } => {
                assert_eq!(package.manifest().exam().unwrap().images_withheld(), 2);
                assert!(package.files().is_empty());
                assert_eq!(withheld[0].reason, QuarantineReason::ImageFormatUnsupported);
                assert!(matches!(withheld[1].reason, QuarantineReason::ImageUnreadable(_)));
            }
            DeidOutcome::Quarantined { reason } => panic!("{reason}"),
        }
    }

    #[test]
    fn required_fields() {
        let q = |e: &RawExam| match run(e, &Policy::default()) {
            DeidOutcome::Quarantined { reason } => reason,
            DeidOutcome::Package { .. } => panic!("not quarantined"),
        };
        assert_eq!(
            q(&raw(&[(Column::ExamDate, "2026/11/25")])),
            QuarantineReason::RequiredFieldInvalid("exam_id".into())
        );
        assert_eq!(
            q(&raw(&[(Column::ExamId, "E1"), (Column::ExamDate, "2026/13/25")])),
            QuarantineReason::RequiredFieldInvalid("exam_date".into())
        );
    }
}
