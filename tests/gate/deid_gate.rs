//! The gate end to end: exams with identifiers planted in every column and in free text in
//! every spelling must come out with none of them, clinical wording intact, deterministically.

use fgw_deid::identifiers::{fold, IdentifierSet};
use fgw_deid::text::scrub;
use fgw_deid::{
    deidentify_exam, DeidContext, DeidOutcome, Policy, Pseudonymizer, QuarantineReason,
};
use fgw_format::ids::FacilityId;
use fgw_format::package::{Body, Manifest};
use fgw_records::{Column, RawExam, RawImage, SourceRef};
use proptest::prelude::*;
use std::collections::BTreeMap;

const FINDINGS: &str =
    "胃体下部小弯に0-Ⅱc病変。大きさ10mm。\nたかはし はなこ様、ID 123456、TEL 090-1234-5678、\
昭和25年1月2日生。依頼: 佐藤先生。自宅 京都市上京区。";
const COMMENT: &str =
    "連絡先 hanako.t@example.jp 〒602-8570 ﾀｶﾊｼ様 (S25/1/2) 検査ID:E2026112500123";
const REPORT: &str =
    "報告書\r\n患者: 髙橋花子 (ﾀｶﾊｼ ﾊﾅｺ)\r\n生年月日: 1950/1/2\r\n所見: 早期胃癌 0-Ⅱc。\r\n\
施行医 鈴木 次郎、ID００１２３４５６";

fn exam() -> RawExam {
    let fields = [
        (Column::ExamId, "E2026112500123"),
        (Column::PatientId, "00123456"),
        (Column::PatientName, "髙橋　花子"),
        (Column::PatientKana, "ﾀｶﾊｼ ﾊﾅｺ"),
        (Column::BirthDate, "S25.01.02"),
        (Column::Sex, "PLANTED-SEX-Q"),
        (Column::ExamDate, "2026/11/25"),
        (Column::ExamStartTime, "09:15"),
        (Column::ExamType, "上部消化管"),
        (Column::ReferringPhysician, "佐藤 一郎"),
        (Column::Operator, "鈴木 次郎"),
        (Column::InOut, "PLANTEDINOUT"),
        (Column::Antithrombotic, "ワーファリン内服 高橋"),
        (Column::HPylori, "PLANTEDHP"),
        (Column::Sedation, "PLANTEDSEDATION"),
        (Column::Asa, "PLANTED7"),
        (Column::Findings, FINDINGS),
        (Column::Diagnoses, "早期胃癌 0-Ⅱc; 逆流性食道炎；高橋様の家族歴;  "),
        (Column::Treatments, "ESD; 生検"),
        (Column::AdverseEvents, "なし"),
        (Column::Address, "京都府京都市上京区丸太町通烏丸西入ル御所八幡町１０３"),
        (Column::Phone, "０９０‐１２３４‐５６７８"),
        (Column::Comment, COMMENT),
    ];
    let mut extra = BTreeMap::new();
    extra.insert("保険者番号".to_string(), "PLANTED-INSURANCE-31415926".to_string());
    RawExam {
        source: SourceRef {
            batch: "20261125T2300".into(),
            file: "exams.csv".into(),
            row: 1,
            line: 2,
        },
        fields: fields.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        extra,
        images: vec![RawImage {
            index: 0,
            rel_path: "images/E2026112500123/1.jpg".into(),
            bytes: tiny_jpeg(),
        }],
        missing_images: vec![],
        report: Some(REPORT.to_string()),
    }
}

/// Strings planted above that must not survive, raw or folded.
const PLANTED: &[&str] = &[
    "髙橋",
    "高橋",
    "花子",
    "ﾀｶﾊｼ",
    "タカハシ",
    "たかはし",
    "はなこ",
    "00123456",
    "123456",
    "０１２３４５６",
    "090-1234-5678",
    "09012345678",
    "1234-5678",
    "京都府",
    "京都市",
    "上京区",
    "丸太町",
    "御所八幡町",
    "S25",
    "昭和25",
    "1950",
    "E2026112500123",
    "2026112500123",
    "佐藤",
    "一郎",
    "鈴木",
    "次郎",
    "PLANTED",
    "hanako",
    "example.jp",
    "602-8570",
    "6028570",
    "31415926",
    "保険者番号",
    "ワーファリン",
    "images/",
];

const CLINICAL: &[&str] = &[
    "胃体下部小弯に0-Ⅱc病変",
    "大きさ10mm",
    "早期胃癌 0-Ⅱc",
    "逆流性食道炎",
    "ESD",
    "生検",
    "家族歴",
];

fn facility() -> FacilityId {
    FacilityId::new("F0001").unwrap()
}

fn pseudonymizer() -> Pseudonymizer {
    Pseudonymizer::new(fgw_gateway::secrets::Secrets::from_bytes([42; 32]).pseudonym_key())
}

fn run(e: &RawExam, policy: &Policy, revision: u32) -> DeidOutcome {
    let fac = facility();
    let ps = pseudonymizer();
    deidentify_exam(
        e,
        &DeidContext {
            facility: &fac,
            pseudonymizer: &ps,
            policy,
            profile: "reference",
            revision,
            pixels: &fgw_deid::pixels::PixelStage::new(policy.pixels.clone()),
        },
    )
}

fn package(o: DeidOutcome) -> (Vec<u8>, String) {
    match o {
        DeidOutcome::Package { package, .. } => {
            (package.manifest_bytes().to_vec(), package.id().to_string())
        }
        DeidOutcome::Quarantined { reason } => panic!("quarantined: {reason}"),
    }
}

/// Manifest text with the pseudonyms blanked: random hex may contain a short digit string by
/// chance; pseudonyms are checked by shape instead.
fn searchable_text(bytes: &[u8]) -> String {
    let mut m = Manifest::parse(bytes).unwrap();
    let Body::Exam(e) = &mut m.body else { panic!("not an exam package") };
    for (v, prefix) in [
        (Some(&mut e.exam_pid), "e-"),
        (e.patient_pid.as_mut(), "p-"),
        (e.operator_pid.as_mut(), "d-"),
        (e.referring_pid.as_mut(), "d-"),
    ] {
        let v = v.expect("pseudonym present");
        assert!(fgw_deid::is_pseudonym(v, prefix), "{prefix}");
        v.clear();
    }
    String::from_utf8(m.to_bytes()).unwrap()
}

#[test]
fn no_planted_identifier_survives() {
    let (bytes, _) = package(run(&exam(), &Policy::default(), 1));
    let text = searchable_text(&bytes);
    let (folded, _) = fold(&text);
    for p in PLANTED {
        assert!(!text.contains(p), "raw {p}");
        assert!(!folded.contains(&fold(p).0), "folded {p}");
    }
    for c in CLINICAL {
        assert!(text.contains(c), "clinical word lost: {c}");
    }
    let m = Manifest::parse(&bytes).unwrap();
    let r = m.exam().unwrap();
    assert_eq!(r.age_at_exam, Some(fgw_format::package::Age::Years(76)));
    assert_eq!(r.exam_date.as_deref(), Some("2026-11-25"));
    assert_eq!(r.exam_start_time, None);
    assert_eq!(r.exam_type.as_deref(), Some("upper_gi"));
    assert_eq!(r.adverse_events.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), vec!["なし"]);
    // 早期胃癌 0-Ⅱc is two codes; 逆流性食道炎 one; the family-history item does not map and
    // travels as scrubbed, flagged text.
    let codes: Vec<Option<&str>> = r.diagnoses.iter().map(|t| t.code.as_deref()).collect();
    assert_eq!(r.diagnoses.len(), 4, "{:?}", r.diagnoses);
    assert!(codes[..3].iter().all(Option::is_some), "{codes:?}");
    assert!(r.diagnoses[3].unmapped && r.diagnoses[3].label.contains("[氏名]"));
    for k in ["sex", "in_out", "antithrombotic", "h_pylori", "sedation", "asa"] {
        assert_eq!(r.flags.get(k).map(String::as_str), Some("not_in_vocabulary"), "{k}");
    }
    assert!(r.extra.is_empty());
    assert_eq!(r.images_withheld(), 1);
    assert!(m.files.is_empty());
    for a in [
        "patient_id:pseudonymized",
        "birth_date:age_at_exam",
        "patient_name:removed",
        "exam_id:pseudonymized",
        "operator:pseudonymized",
        "referring_physician:pseudonymized",
        "free_text:scrubbed",
        "extra_dropped:1",
        "pixels:withheld:1",
    ] {
        assert!(m.deid.actions.iter().any(|x| x == a), "{a}");
    }
    assert!(r.findings_text.as_deref().unwrap().contains("[氏名]様"));
    assert!(r.report.as_deref().unwrap().contains("[生年月日]"));
}

#[test]
fn a_frame_without_a_field_of_view_is_withheld_not_uploaded() {
    // The test JPEG is a small dark frame: no field can be placed, so nothing is released.
    match run(&exam(), &Policy::default(), 1) {
        DeidOutcome::Package { package, withheld } => {
            assert!(package.files().is_empty());
            assert_eq!(withheld.len(), 1);
            assert_eq!(withheld[0].reason, QuarantineReason::FieldNotFound);
        }
        DeidOutcome::Quarantined { reason } => panic!("{reason}"),
    }
}

#[test]
fn withhold_mode_keeps_every_image_on_the_box() {
    let mut policy = Policy::default();
    policy.pixels.mode = fgw_deid::pixels::PixelMode::Withhold;
    match run(&exam(), &policy, 1) {
        DeidOutcome::Package { package, withheld } => {
            assert!(package.files().is_empty());
            assert_eq!(withheld[0].reason, QuarantineReason::PixelsNotCleaned);
        }
        DeidOutcome::Quarantined { reason } => panic!("{reason}"),
    }
}

#[test]
fn deterministic_and_revision_changes_id() {
    let (a, ida) = package(run(&exam(), &Policy::default(), 1));
    let (b, idb) = package(run(&exam(), &Policy::default(), 1));
    assert_eq!(a, b);
    assert_eq!(ida, idb);
    let (_, idc) = package(run(&exam(), &Policy::default(), 2));
    assert_ne!(ida, idc);
}

#[test]
fn same_patient_same_pseudonym_across_spellings() {
    let mut e2 = exam();
    e2.fields.insert(Column::PatientId, "１２３４５６".into());
    e2.fields.insert(Column::ExamId, "E2026112600001".into());
    let m1 = Manifest::parse(&package(run(&exam(), &Policy::default(), 1)).0).unwrap();
    let m2 = Manifest::parse(&package(run(&e2, &Policy::default(), 1)).0).unwrap();
    let (e1, e2) = (m1.exam().unwrap(), m2.exam().unwrap());
    assert_eq!(e1.patient_pid, e2.patient_pid);
    assert_ne!(e1.exam_pid, e2.exam_pid);
}

#[test]
fn missing_required_fields_quarantine() {
    let mut e = exam();
    e.fields.remove(&Column::ExamDate);
    match run(&e, &Policy::default(), 1) {
        DeidOutcome::Quarantined { reason } => {
            assert_eq!(reason, QuarantineReason::RequiredFieldInvalid("exam_date".into()))
        }
        DeidOutcome::Package { .. } => panic!("not quarantined"),
    }
    let mut e = exam();
    e.fields.insert(Column::ExamId, "  ".into());
    assert!(matches!(
        run(&e, &Policy::default(), 1),
        DeidOutcome::Quarantined { reason: QuarantineReason::RequiredFieldInvalid(k) } if k == "exam_id"
    ));
}

#[test]
fn verify_quarantines_what_scrub_does_not_touch() {
    // A kept extra column whose header carries the patient's name: headers are not scrubbed,
    // so the verifier must stop the package, naming only field and kind.
    let mut e = exam();
    e.extra.insert("高橋メモ".into(), "特記なし".into());
    let policy = Policy { keep_extra_columns: vec!["高橋メモ".into()], ..Policy::default() };
    match run(&e, &policy, 1) {
        DeidOutcome::Quarantined { reason } => {
            assert_eq!(
                reason,
                QuarantineReason::IdentifierFound("extra.0.key:patient_name".into())
            );
            let shown = format!("{reason} {reason:?}");
            assert!(!shown.contains("高橋"));
        }
        DeidOutcome::Package { .. } => panic!("not quarantined"),
    }
}

#[test]
fn kept_extra_columns_are_scrubbed() {
    let mut e = exam();
    e.extra.insert("部位".into(), "胃角 高橋様".into());
    let policy = Policy { keep_extra_columns: vec!["部位".into()], ..Policy::default() };
    let m = Manifest::parse(&package(run(&e, &policy, 1)).0).unwrap();
    assert_eq!(m.exam().unwrap().extra.get("部位").map(String::as_str), Some("胃角 [氏名]様"));
}

#[test]
fn drop_policy_drops_free_text() {
    let policy = Policy { free_text: fgw_deid::FreeTextPolicy::Drop, ..Policy::default() };
    let m = Manifest::parse(&package(run(&exam(), &policy, 1)).0).unwrap();
    let e = m.exam().cloned().unwrap();
    assert_eq!((e.findings_text, e.comment, e.report), (None, None, None));
}

/// A baseline JPEG of 8x8 grey with an EXIF segment naming the patient.
fn tiny_jpeg() -> Vec<u8> {
    use image::ImageEncoder;
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut plain)
        .write_image(&[128u8; 64], 8, 8, image::ExtendedColorType::L8)
        .unwrap();
    let mut j = plain[..2].to_vec();
    let payload = "Exif\0\0髙橋花子 00123456".as_bytes();
    j.extend_from_slice(&[0xFF, 0xE1]);
    j.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    j.extend_from_slice(payload);
    j.extend_from_slice(&plain[2..]);
    j
}

// --- property: planted identifiers in clinical-ish text never survive scrubbing ---

const PHRASES: &[&str] = &[
    "胃体下部小弯に0-Ⅱc病変",
    "大きさ10mm",
    "ESD施行",
    "生検2個",
    "Hb 12.3",
    "3日後",
    "ピロリ除菌後",
    "逆流性食道炎 LA-A",
    "萎縮 C-2",
    "経過観察",
];

/// (planted spelling, what must not be found afterwards in folded output)
const FORMS: &[(&str, &str)] = &[
    ("髙橋花子", "高橋花子"),
    ("高橋 花子", "高橋"),
    ("髙橋　花子様", "花子"),
    ("たかはし", "たかはし"),
    ("ﾊﾅｺ", "はなこ"),
    ("タカハシ　ハナコ", "はなこ"),
    ("00123456", "123456"),
    ("１２３４５６", "123456"),
    ("ID0123456", "123456"),
    ("090-1234-5678", "09012345678"),
    ("０９０‐１２３４‐５６７８", "09012345678"),
    ("(090)1234-5678", "09012345678"),
    ("090ー1234ー5678", "09012345678"),
    ("昭和25年1月2日", "昭和25年1月2日"),
    ("S25.1.2", "S25.1.2"),
    ("s25/01/02", "S25/01/02"),
    ("1950/01/02", "1950/01/02"),
    ("1950年1月2日", "1950年1月2日"),
    ("19500102", "19500102"),
    ("E2026112500123", "E2026112500123"),
    ("佐藤先生", "佐藤"),
    ("鈴木Dr", "鈴木"),
    ("京都市上京区", "京都市上京区"),
    ("hanako.t@example.jp", "@EXAMPLE.JP"),
    ("〒602-8570", "6028570"),
    ("075-231-5171", "0752315171"),
];

const SEPARATORS: &[&str] = &["。", "、", " ", "\n", "　", "に", "：", "（", "）"];

#[derive(Debug, Clone)]
enum Piece {
    Clinical(usize),
    Planted(usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        (0..PHRASES.len()).prop_map(Piece::Clinical),
        (0..FORMS.len()).prop_map(Piece::Planted),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn scrub_removes_planted_identifiers(
        pieces in proptest::collection::vec((piece(), 0..SEPARATORS.len()), 1..16)
    ) {
        let ids = IdentifierSet::from_exam(&exam());
        let mut text = String::new();
        for (p, sep) in &pieces {
            match p {
                Piece::Clinical(i) => text.push_str(PHRASES[*i]),
                Piece::Planted(i) => text.push_str(FORMS[*i].0),
            }
            text.push_str(SEPARATORS[*sep]);
        }
        let out = scrub(&text, &ids).text;
        let (folded, _) = fold(&out);
        for (p, _) in &pieces {
            match p {
                Piece::Planted(i) => {
                    let core = fold(FORMS[*i].1).0;
                    prop_assert!(!folded.contains(&core), "planted form {} survived", i);
                }
                Piece::Clinical(i) => {
                    prop_assert!(out.contains(PHRASES[*i]), "clinical phrase {} damaged", i);
                }
            }
        }
    }
}
