//! DICOM de-identification (PS3.15 Basic profile + options). Test objects are built here with
//! dicom-object, not committed. Every output is parsed again with dicom-object and with DCMTK
//! `dcmdump` (package `dcmtk`), which must accept it.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use fgw_deid::dicom::Table;
use fgw_deid::dicom::{deidentify_dicom, DicomError, DicomOption, DicomPolicy, SafePrivate};
use fgw_deid::{DeidContext, Policy, Pseudonymizer, QuarantineReason};
use fgw_format::ids::FacilityId;
use proptest::prelude::*;
use ring::hmac;
use std::process::Command;

/// The marker planted in every text attribute; it is also the patient's name and id, so the
/// descriptor scrubber knows it as this patient's identifier.
const M: &str = "MRKQZX";
const M_NAME: &str = "MRKQZX^TARO=山田^太郎=やまだ^たろう";
const M_DATE: &str = "19230405";
const M_DT: &str = "19230405231459";
const M_AGE: &str = "093Y";
const M_UID_ROOT: &str = "1.2.392.200036.9116.7777777.";
const SC_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn pseudo(k: u8) -> Pseudonymizer {
    Pseudonymizer::new(hmac::Key::new(hmac::HMAC_SHA256, &[k; 32]))
}

fn run(bytes: &[u8], dicom: &DicomPolicy) -> Result<fgw_deid::dicom::DicomResult, DicomError> {
    run_key(bytes, dicom, 1)
}

fn run_key(
    bytes: &[u8],
    dicom: &DicomPolicy,
    k: u8,
) -> Result<fgw_deid::dicom::DicomResult, DicomError> {
    run_mode(bytes, dicom, k, fgw_deid::pixels::PixelMode::Clean)
}

fn run_mode(
    bytes: &[u8],
    dicom: &DicomPolicy,
    k: u8,
    mode: fgw_deid::pixels::PixelMode,
) -> Result<fgw_deid::dicom::DicomResult, DicomError> {
    let fac = FacilityId::new("F0001").unwrap();
    let ps = pseudo(k);
    let policy = Policy::default();
    let stage = fgw_deid::pixels::PixelStage::new(fgw_deid::pixels::PixelSettings {
        mode,
        ..Default::default()
    });
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &policy,
        profile: "test",
        revision: 1,
        pixels: &stage,
    };
    deidentify_dicom("test.dcm", bytes, &ctx, dicom)
}

fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, v.into())
}

fn sq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, Value::Sequence(DataSetSequence::new(items, Length::UNDEFINED)))
}

fn dict_vr(tag: Tag) -> Option<VR> {
    StandardDataDictionary.by_tag(tag).and_then(|e| e.vr().exact())
}

/// Marker value for a VR that can hold text; `None` for binary VRs.
fn marker_for(vr: VR, n: usize) -> Option<String> {
    Some(match vr {
        VR::PN => M_NAME.into(),
        VR::LO | VR::SH | VR::CS | VR::AE | VR::UC => M.into(),
        VR::ST | VR::LT | VR::UT => format!("seen by {M} at 090-1234-5678"),
        VR::UR => format!("http://{M}.example/"),
        VR::DA => M_DATE.into(),
        VR::TM => "231459".into(),
        VR::DT => M_DT.into(),
        VR::AS => M_AGE.into(),
        VR::UI => format!("{M_UID_ROOT}{n}"),
        _ => return None,
    })
}

/// An item carrying markers, for every sequence in the table and for the private block.
fn marker_item(n: usize) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        el(Tag(0x0010, 0x0010), VR::PN, M_NAME),
        el(Tag(0x0010, 0x0020), VR::LO, M),
        el(Tag(0x0008, 0x1155), VR::UI, format!("{M_UID_ROOT}9{n}")),
        el(Tag(0x0020, 0x4000), VR::LT, format!("{M} comment in an item")),
    ])
}

struct Build {
    study: String,
    instance: String,
    charset: &'static str,
    pixels: bool,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            study: format!("{M_UID_ROOT}1"),
            instance: format!("{M_UID_ROOT}2"),
            charset: "ISO_IR 192",
            pixels: false,
        }
    }
}

/// An object with a marker in every attribute of the table whose VR can hold text, markers in
/// every table sequence, a private block, and the comments.
fn marker_object(b: &Build) -> InMemDicomObject {
    let table = Table::get().unwrap();
    let mut obj = InMemDicomObject::new_empty();
    for (n, (tag, _rule)) in table.exact_tags().enumerate() {
        if tag.group() == 0x0002 {
            continue;
        }
        let Some(vr) = dict_vr(tag) else { continue };
        if vr == VR::SQ {
            obj.put(sq(tag, vec![marker_item(n)]));
        } else if let Some(v) = marker_for(vr, n + 100) {
            obj.put(el(tag, vr, v));
        }
    }
    for (tag, vr, v) in [
        (Tag(0x0008, 0x0005), VR::CS, b.charset.to_string()),
        (Tag(0x0008, 0x0016), VR::UI, SC_CLASS.into()),
        (Tag(0x0008, 0x0018), VR::UI, b.instance.clone()),
        (Tag(0x0020, 0x000D), VR::UI, b.study.clone()),
        (Tag(0x0020, 0x000E), VR::UI, format!("{M_UID_ROOT}3")),
        (Tag(0x0010, 0x0010), VR::PN, M_NAME.into()),
        (Tag(0x0010, 0x0020), VR::LO, M.into()),
        (Tag(0x0010, 0x0030), VR::DA, M_DATE.into()),
        (Tag(0x0010, 0x0040), VR::CS, "M".into()),
        (Tag(0x0008, 0x0020), VR::DA, "20240301".into()),
        (Tag(0x0008, 0x1030), VR::LO, format!("EGD {M}")),
        (Tag(0x0010, 0x4000), VR::LT, format!("{M} prefers mornings")),
        (Tag(0x0020, 0x4000), VR::LT, format!("image of {M}")),
        (Tag(0x0032, 0x4000), VR::LT, format!("study for {M}")),
        // Private block, creator and two elements (one text, one number).
        (Tag(0x0009, 0x0010), VR::LO, "FICTIVE ENDO 1.0".into()),
        (Tag(0x0009, 0x1001), VR::LO, M.into()),
    ] {
        obj.put(el(tag, vr, v));
    }
    obj.put(el(Tag(0x0009, 0x1003), VR::US, 7u16));
    obj.put(sq(Tag(0x0009, 0x1002), vec![marker_item(1)]));
    // A nested sequence two levels deep.
    let mut outer = marker_item(2);
    outer.put(sq(Tag(0x0010, 0x1002), vec![marker_item(3)]));
    obj.put(sq(Tag(0x0008, 0x1110), vec![outer]));
    if b.pixels {
        for (tag, v) in [
            (0x0002u16, 1u16),
            (0x0010, 2),
            (0x0011, 2),
            (0x0100, 8),
            (0x0101, 8),
            (0x0102, 7),
            (0x0103, 0),
        ] {
            obj.put(el(Tag(0x0028, tag), VR::US, v));
        }
        obj.put(el(Tag(0x0028, 0x0004), VR::CS, "MONOCHROME2"));
        obj.put(el(Tag(0x0028, 0x0301), VR::CS, "NO"));
        obj.put(DataElement::new(
            Tag(0x7FE0, 0x0010),
            VR::OB,
            PrimitiveValue::U8(vec![1u8, 2, 3, 4].into()),
        ));
    } else {
        // No image: drop what the table iteration put in the pixel/overlay groups.
        obj.remove_element(Tag(0x7FE0, 0x0010));
    }
    obj
}

fn to_bytes(obj: InMemDicomObject) -> Vec<u8> {
    let f = obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_LE)).unwrap();
    let mut out = Vec::new();
    f.write_all(&mut out).unwrap();
    out
}

fn dcmdump(bytes: &[u8]) -> String {
    dcmdump_with(bytes, &["+U8"]) // print UTF-8 text as is
}

fn dcmdump_with(bytes: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.dcm");
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("dcmdump")
        .args(args)
        .arg(&p)
        .output()
        .expect("dcmdump (apt package dcmtk) must be installed");
    assert!(out.status.success(), "dcmdump failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn parse(bytes: &[u8]) -> InMemDicomObject {
    OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(bytes)
        .unwrap()
        .into_inner()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

fn assert_no_marker(hay: &str, what: &str) {
    for m in [
        M,
        "山田",
        "太郎",
        "やまだ",
        "たろう",
        "TARO",
        M_DATE,
        M_AGE,
        M_UID_ROOT,
        "7777777",
        "090-1234",
        "FICTIVE",
    ] {
        assert!(!hay.contains(m), "{m} survived in {what}");
    }
}

#[test]
fn no_marker_survives_basic_profile_with_clean_descriptors() {
    let input = to_bytes(marker_object(&Build::default()));
    // The input really carries the markers (so the test tests something).
    assert!(dcmdump(&input).contains(M));
    let r = run(&input, &DicomPolicy::default()).unwrap();
    assert!(!r.has_pixel_data);
    assert_eq!(r.quarantine_reason(), None);
    assert_eq!(r.record.sop_class, SC_CLASS);
    assert!(r.record.study_uid.starts_with("2.25."));

    assert_no_marker(&String::from_utf8_lossy(&r.bytes), "output bytes");
    let dump = dcmdump(&r.bytes);
    assert_no_marker(&dump, "dcmdump");

    let out = parse(&r.bytes);
    assert_eq!(text(&out, Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
    assert_eq!(text(&out, Tag(0x0008, 0x0005)).as_deref(), Some("ISO_IR 192"));
    assert_eq!(text(&out, Tag(0x0020, 0x000D)).unwrap(), r.record.study_uid);
    for t in [Tag(0x0008, 0x0018), Tag(0x0020, 0x000E)] {
        assert!(text(&out, t).unwrap().starts_with("2.25."), "{t}");
    }
    // The package record names the object as the file does, and by shape only.
    assert_eq!(text(&out, Tag(0x0008, 0x0018)).as_ref(), Some(&r.record.sop_instance_uid));
    assert_eq!(text(&out, Tag(0x0020, 0x000E)).as_ref(), r.record.series_uid.as_ref());
    assert_eq!(fgw_deid::verify_dicom_record(&r.record), Ok(()));
    assert!(r.record.patient_pid.as_deref().is_some_and(|p| p.starts_with("p-")));
    assert!(dump.contains("113100") && dump.contains("113105"), "{dump}");
    assert!(dump.contains("fgw-deid"));
    // The private block is gone; descriptors survive with placeholders.
    assert!(out.get(Tag(0x0009, 0x0010)).is_none() && out.get(Tag(0x0009, 0x1003)).is_none());
    // The marker is both name and id: either placeholder.
    let desc = text(&out, Tag(0x0008, 0x1030)).unwrap();
    assert!(desc == "EGD [氏名]" || desc == "EGD [患者ID]", "{desc}");
    // Basic profile: study date emptied, birth date emptied, sex emptied.
    assert_eq!(text(&out, Tag(0x0008, 0x0020)).as_deref(), Some(""));
    assert_eq!(text(&out, Tag(0x0010, 0x0040)).as_deref(), Some(""));
    assert_eq!(text(&out, Tag(0x0028, 0x0303)).as_deref(), Some("REMOVED"));
}

#[test]
fn uids_stay_consistent_across_files_and_differ_between_inputs() {
    let a = run(&to_bytes(marker_object(&Build::default())), &DicomPolicy::default()).unwrap();
    let b_in = Build { instance: format!("{M_UID_ROOT}4"), ..Build::default() };
    let b = run(&to_bytes(marker_object(&b_in)), &DicomPolicy::default()).unwrap();
    let (oa, ob) = (parse(&a.bytes), parse(&b.bytes));
    assert_eq!(a.record.study_uid, b.record.study_uid);
    assert_eq!(text(&oa, Tag(0x0020, 0x000E)), text(&ob, Tag(0x0020, 0x000E)));
    assert_ne!(text(&oa, Tag(0x0008, 0x0018)), text(&ob, Tag(0x0008, 0x0018)));
    // Same run again (another day): same output UIDs.
    let again = run(&to_bytes(marker_object(&Build::default())), &DicomPolicy::default()).unwrap();
    assert_eq!(again.bytes, a.bytes);
    // Another box key: other UIDs.
    let other =
        run_key(&to_bytes(marker_object(&Build::default())), &DicomPolicy::default(), 2).unwrap();
    assert_ne!(other.record.study_uid, a.record.study_uid);
    // The file meta group follows the data set.
    let sop = text(&oa, Tag(0x0008, 0x0018)).unwrap();
    let meta = OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Always)
        .from_reader(&a.bytes[..])
        .unwrap();
    assert_eq!(meta.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), sop);
}

#[test]
fn options_change_behaviour() {
    // A plain object: the marker object has markers in attributes these options keep, which
    // the verification (rightly) refuses.
    let mut obj = small_object();
    for (tag, vr, v) in [
        (Tag(0x0010, 0x0040), VR::CS, "M"),
        (Tag(0x0008, 0x0020), VR::DA, "20240301"),
        (Tag(0x0008, 0x1030), VR::LO, "EGD"),
        (Tag(0x0009, 0x0010), VR::LO, "FICTIVE ENDO 1.0"),
        (Tag(0x0009, 0x1001), VR::LO, M),
    ] {
        obj.put(el(tag, vr, v));
    }
    obj.put(el(Tag(0x0009, 0x1003), VR::US, 7u16));
    obj.put(sq(Tag(0x0009, 0x1002), vec![marker_item(1)]));
    let input = to_bytes(obj);
    let p = |options: Vec<DicomOption>| DicomPolicy { options, safe_private: vec![] };

    let r = run(&input, &p(vec![DicomOption::RetainPatientCharacteristics])).unwrap();
    let out = parse(&r.bytes);
    assert_eq!(text(&out, Tag(0x0010, 0x0040)).as_deref(), Some("M"));
    dcmdump(&r.bytes);

    let r = run(&input, &p(vec![DicomOption::RetainLongitudinalModifiedDates])).unwrap();
    let out = parse(&r.bytes);
    let shifted = text(&out, Tag(0x0008, 0x0020)).unwrap();
    let fac = FacilityId::new("F0001").unwrap();
    let days = pseudo(1).date_shift_days(&fac, M);
    let want = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap() + chrono::Duration::days(days);
    assert_eq!(shifted, want.format("%Y%m%d").to_string());
    assert_eq!(text(&out, Tag(0x0028, 0x0303)).as_deref(), Some("MODIFIED"));
    assert!(dcmdump(&r.bytes).contains("113107"));

    let r = run(&input, &p(vec![DicomOption::RetainLongitudinalFullDates])).unwrap();
    assert_eq!(text(&parse(&r.bytes), Tag(0x0008, 0x0020)).as_deref(), Some("20240301"));

    // Without Clean Descriptors the study description goes.
    let r = run(&input, &p(vec![])).unwrap();
    assert!(parse(&r.bytes).get(Tag(0x0008, 0x1030)).is_none());

    // Safe private: only the listed element (and its creator) stays.
    let safe = DicomPolicy {
        options: vec![DicomOption::RetainSafePrivate],
        safe_private: vec![SafePrivate {
            creator: "FICTIVE ENDO 1.0".into(),
            group: 0x0009,
            element: 0x03,
        }],
    };
    let r = run(&input, &safe).unwrap();
    let out = parse(&r.bytes);
    assert!(out.get(Tag(0x0009, 0x1003)).is_some());
    assert!(out.get(Tag(0x0009, 0x0010)).is_some());
    assert!(out.get(Tag(0x0009, 0x1001)).is_none() && out.get(Tag(0x0009, 0x1002)).is_none());
    assert!(dcmdump(&r.bytes).contains("113111"));

    let bad = p(vec![
        DicomOption::RetainLongitudinalFullDates,
        DicomOption::RetainLongitudinalModifiedDates,
    ]);
    assert!(matches!(run(&input, &bad), Err(DicomError::Policy(_))));
}

#[test]
fn pixel_data_is_flagged_for_quarantine() {
    let r = run(
        &to_bytes(marker_object(&Build { pixels: true, ..Build::default() })),
        &DicomPolicy::default(),
    )
    .unwrap();
    assert!(r.has_pixel_data);
    assert_eq!(r.burned_in, fgw_deid::dicom::BurnedIn::No);
    // A 2x2 picture has no field of view: the pixel stage refuses it, the object stays.
    assert_eq!(r.quarantine_reason(), Some(QuarantineReason::FieldNotFound));
    assert_no_marker(&dcmdump(&r.bytes), "dcmdump");
}

/// Rows x Columns beyond the picture size limit: refused before any pixel is read.
#[test]
fn a_huge_declared_picture_is_refused_before_decoding() {
    let mut obj = marker_object(&Build { pixels: true, ..Build::default() });
    obj.put(el(Tag(0x0028, 0x0010), VR::US, 65535u16));
    obj.put(el(Tag(0x0028, 0x0011), VR::US, 65535u16));
    let r = run(&to_bytes(obj), &DicomPolicy::default()).unwrap();
    match r.quarantine_reason() {
        Some(QuarantineReason::PixelStageFailed(w)) => {
            assert!(w.contains("over the picture size limit"), "{w}")
        }
        other => panic!("{other:?}"),
    }
}

/// `\ISO 2022 IR 87` (ASCII first, kanji by code extension), as Japanese modalities write it.
#[test]
fn iso_2022_ir_87_names_are_found_and_output_is_utf8() {
    let mut obj = InMemDicomObject::from_element_iter([
        el(Tag(0x0008, 0x0005), VR::CS, "ISO 2022 IR 87"),
        el(Tag(0x0008, 0x0016), VR::UI, SC_CLASS),
        el(Tag(0x0008, 0x0018), VR::UI, format!("{M_UID_ROOT}5")),
        el(Tag(0x0020, 0x000D), VR::UI, format!("{M_UID_ROOT}6")),
        el(Tag(0x0010, 0x0010), VR::PN, "YAMADA^TARO=山田^太郎=やまだ^たろう"),
        el(Tag(0x0010, 0x0020), VR::LO, "00123456"),
        el(Tag(0x0008, 0x1030), VR::LO, "山田太郎 上部消化管"),
        el(Tag(0x0020, 0x4000), VR::LT, "やまだ たろう 様 0-IIc"),
    ]);
    obj.put(el(Tag(0x0008, 0x103E), VR::LO, "胃 前庭部"));
    let mut bytes = to_bytes(obj);
    // dicom-rs writes a single-valued IR 87; make it the standard `\ISO 2022 IR 87`.
    let needle = b"CS\x0e\x00ISO 2022 IR 87";
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("charset element");
    bytes.splice(at..at + needle.len(), b"CS\x10\x00\\ISO 2022 IR 87 ".iter().copied());
    assert!(bytes.windows(3).any(|w| w == b"\x1b$B"), "input must carry ISO 2022 escapes");
    // DCMTK's iconv build cannot convert ISO 2022 to UTF-8; it must still read the file.
    dcmdump_with(&bytes, &[]);

    let r = run(&bytes, &DicomPolicy::default()).unwrap();
    let dump = dcmdump(&r.bytes);
    for m in ["山田", "太郎", "やまだ", "たろう", "YAMADA", "\u{1b}"] {
        assert!(!dump.contains(m), "{m:?} survived: {dump}");
    }
    let out = parse(&r.bytes);
    assert_eq!(text(&out, Tag(0x0008, 0x0005)).as_deref(), Some("ISO_IR 192"));
    assert_eq!(text(&out, Tag(0x0008, 0x1030)).as_deref(), Some("[氏名] 上部消化管"));
    assert_eq!(text(&out, Tag(0x0008, 0x103E)).as_deref(), Some("胃 前庭部"));
    assert!(dump.contains("上部消化管"));
}

fn valid_small() -> Vec<u8> {
    to_bytes(small_object())
}

fn small_object() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        el(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 192"),
        el(Tag(0x0008, 0x0016), VR::UI, SC_CLASS),
        el(Tag(0x0008, 0x0018), VR::UI, format!("{M_UID_ROOT}7")),
        el(Tag(0x0010, 0x0010), VR::PN, M_NAME),
        el(Tag(0x0010, 0x0020), VR::LO, M),
        el(Tag(0x0020, 0x000D), VR::UI, format!("{M_UID_ROOT}8")),
        el(Tag(0x0020, 0x4000), VR::LT, format!("{M} comment")),
    ])
}

fn find(bytes: &[u8], tag: Tag) -> usize {
    let mut n = tag.group().to_le_bytes().to_vec();
    n.extend(tag.element().to_le_bytes());
    bytes.windows(4).rposition(|w| w == n.as_slice()).unwrap()
}

fn err(bytes: &[u8]) -> String {
    let e = run(bytes, &DicomPolicy::default()).expect_err("must be rejected");
    let s = e.to_string();
    assert!(s.starts_with("test.dcm: "), "{s}");
    assert!(!s.contains(M) && !s.contains("山田"), "value in error: {s}");
    // The quarantine reason carries the same value-free text.
    assert!(!e.quarantine_reason().to_string().contains(M));
    s
}

#[test]
fn malformed_inputs_are_reported_not_panicked() {
    let good = valid_small();
    assert!(run(&good, &DicomPolicy::default()).is_ok());

    assert!(err(&[]).contains("empty"));
    assert!(err(b"hello, this is not dicom at all").contains("DICM"));
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    err(&random);

    // Truncated in the middle of the last element.
    let s = err(&good[..good.len() - 5]);
    assert!(s.contains("(0020,4000)") && s.contains("exceeds"), "{s}");
    // Truncated inside a header.
    let at = find(&good, Tag(0x0010, 0x0020));
    err(&good[..at + 3]);

    // Element length beyond the end of the file.
    let mut long = good.clone();
    let at = find(&long, Tag(0x0010, 0x0010));
    long[at + 6..at + 8].copy_from_slice(&0xfff0u16.to_le_bytes());
    let s = err(&long);
    assert!(s.contains("(0010,0010)") && s.contains("exceeds"), "{s}");

    // Wrong VR.
    let mut vr = good.clone();
    let at = find(&vr, Tag(0x0010, 0x0020));
    vr[at + 4..at + 6].copy_from_slice(b"Q?");
    let s = err(&vr);
    assert!(s.contains("(0010,0020)") && s.contains("VR"), "{s}");

    // Sequence with an item length past its end.
    let mut nested = to_bytes(marker_object(&Build::default()));
    let at = find(&nested, Tag(0x0010, 0x1002)); // inside the nested item
    nested.truncate(at + 20);
    err(&nested);

    // Unsupported transfer syntax (deflate is not built in).
    let mut deflate = good.clone();
    let ts = b"1.2.840.10008.1.2.1\0";
    let at = deflate.windows(ts.len()).position(|w| w == ts).unwrap();
    deflate.splice(at..at + ts.len(), b"1.2.840.10008.1.2.1.99".iter().copied());
    // Fix the element length (20 -> 22); the group length is not needed by the reader.
    deflate[at - 2] = 22;
    let s = err(&deflate);
    assert!(s.contains("not supported") || s.contains("malformed"), "{s}");
}

fn withheld(bytes: &[u8]) -> fgw_deid::dicom::DicomResult {
    let withhold = fgw_deid::pixels::PixelMode::Withhold;
    run_mode(bytes, &DicomPolicy::default(), 1, withhold).expect("de-identified")
}

/// The header path takes Pixel Data that ends the file straight from the input (never parsed,
/// never copied through the object): what it writes must be what the whole-object path
/// writes, and the pixel element must be byte for byte the input's.
#[test]
fn pixel_data_at_the_end_passes_through_byte_for_byte() {
    use dicom_core::value::PixelFragmentSequence;
    use fgw_deid::dicom::{check_structure, TailPixels};
    let native = DataElement::new(
        Tag(0x7FE0, 0x0010),
        VR::OB,
        PrimitiveValue::U8((0..=255u8).cycle().take(4 * 64).collect()),
    );
    let encapsulated = DataElement::new(
        Tag(0x7FE0, 0x0010),
        VR::OB,
        Value::from(PixelFragmentSequence::new(vec![0], vec![vec![0xFF, 0xD8, 1, 2], vec![3, 0]])),
    );
    for (what, px, ts) in
        [("native", native, EXPLICIT_LE), ("encapsulated", encapsulated, "1.2.840.10008.1.2.4.50")]
    {
        let mut obj = small_object();
        obj.put(px);
        let f = obj.clone().with_meta(FileMetaTableBuilder::new().transfer_syntax(ts)).unwrap();
        let mut input = Vec::new();
        f.write_all(&mut input).unwrap();
        let start = find(&input, Tag(0x7FE0, 0x0010));
        let tail = check_structure("in", &input).unwrap().expect("pixel data ends the file");
        assert_eq!(tail.start, start, "{what}");
        assert_eq!(tail.encapsulated, what == "encapsulated");
        if tail.encapsulated {
            let frags: Vec<Vec<u8>> =
                tail.fragments(&input).into_iter().map(<[u8]>::to_vec).collect();
            assert_eq!(frags, vec![vec![0xFF, 0xD8, 1, 2], vec![3, 0]]);
        }

        let out = withheld(&input);
        assert!(out.has_pixel_data, "{what}");
        assert_eq!(out.quarantine_reason(), Some(QuarantineReason::PixelsNotCleaned));
        assert!(out.bytes.ends_with(&input[start..]), "{what}: pixel element changed");
        let out_tail: TailPixels = check_structure("out", &out.bytes).unwrap().expect("tail");
        assert_eq!(out.bytes.len() - out_tail.start, input.len() - start, "{what}");
        dcmdump(&out.bytes);

        // The same object with an element after Pixel Data goes the whole-object way; the
        // result has the same header and the same pixel data.
        let mut padded = obj;
        padded.put(DataElement::new(
            Tag(0xFFFC, 0xFFFC),
            VR::OB,
            PrimitiveValue::U8(vec![0; 8].into()),
        ));
        let f = padded.with_meta(FileMetaTableBuilder::new().transfer_syntax(ts)).unwrap();
        let mut input2 = Vec::new();
        f.write_all(&mut input2).unwrap();
        assert_eq!(check_structure("in", &input2).unwrap(), None, "{what}");
        let out2 = withheld(&input2);
        let (a, b) = (parse(&out.bytes), parse(&out2.bytes));
        assert_eq!(
            a.get(Tag(0x7FE0, 0x0010)).map(|e| e.value().clone()),
            b.get(Tag(0x7FE0, 0x0010)).map(|e| e.value().clone()),
            "{what}"
        );
        use dicom_core::header::Header;
        let header = |o: &InMemDicomObject| -> Vec<(Tag, String)> {
            o.iter()
                .filter(|e| e.tag() < Tag(0x7FE0, 0x0010))
                .map(|e| (e.tag(), format!("{:?}", e.value())))
                .collect()
        };
        assert_eq!(header(&a), header(&b), "{what}");
    }
}

/// Two top-level Pixel Data elements: malformed, reported, not passed through.
#[test]
fn a_second_pixel_data_element_is_rejected() {
    let mut obj = small_object();
    obj.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, PrimitiveValue::U8(vec![1, 2].into())));
    let mut bytes = to_bytes(obj);
    let at = find(&bytes, Tag(0x7FE0, 0x0010));
    let element = bytes[at..].to_vec();
    bytes.extend(element);
    let e = err(&bytes);
    assert!(e.contains("a second Pixel Data element"), "{e}");
}

/// Identifier sets are kept for the next objects of the same patient and exam, and never
/// reused for another.
#[test]
fn identifier_sets_are_reused_only_for_the_same_values() {
    use fgw_deid::dicom::identify;
    let a = small_object();
    let mut b = small_object();
    b.put(el(Tag(0x0010, 0x0020), VR::LO, "OTHERPID77"));
    let (a1, a2, b1) = (identify(&a), identify(&a), identify(&b));
    assert!(std::sync::Arc::ptr_eq(&a1, &a2));
    assert!(!std::sync::Arc::ptr_eq(&a1, &b1));
    let has = |sets: &[fgw_deid::identifiers::IdentifierSet], v: &str| {
        sets.iter().any(|s| s.variants().any(|(_, x)| x.eq_ignore_ascii_case(v)))
    };
    assert!(has(&b1, "OTHERPID77") && !has(&a1, "OTHERPID77"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random byte edits and truncations of a valid file: an error or a result, never a
    /// panic, and never a value in the error.
    #[test]
    fn random_mutations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut b = valid_small();
        for (i, v) in edits {
            let i = i.index(b.len());
            b[i] = v;
        }
        if truncate {
            let n = cut.index(b.len());
            b.truncate(n);
        }
        match run(&b, &DicomPolicy::default()) {
            // An edit may change the identifiers themselves, so only errors are checked.
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().contains(M)),
        }
    }
}

/// Attributes outside Table E.1-1 (issue 10, finding 8). Before: an unlisted UN or OB value
/// was kept byte for byte and never searched, unlisted dates were kept whatever the options
/// said, and kept text was searched only for the object's own identifiers, so another
/// person's phone number or e-mail address went out as written.
#[test]
fn unlisted_opaque_values_dates_and_contacts_do_not_survive() {
    let table = Table::get().unwrap();
    let record_key = Tag(0x0008, 0x041B); // OB, not in the table
    let unknown_un = Tag(0x0008, 0xFFF0); // in no dictionary
    let review_date = Tag(0x0014, 0x0102); // DA, not in the table
    let update_dt = Tag(0x0008, 0x041F); // DT, not in the table
    let manufacturer = Tag(0x0008, 0x0070); // LO, not in the table
    let model = Tag(0x0008, 0x1090); // LO, not in the table
    let icc = Tag(0x0028, 0x2000); // OB, not in the table, safe-listed
    for t in [record_key, unknown_un, review_date, update_dt, manufacturer, model, icc] {
        assert!(table.rule(t).is_none(), "{t} is listed: the test needs unlisted tags");
    }
    let mut obj = small_object();
    obj.put(el(Tag(0x0010, 0x0030), VR::DA, M_DATE));
    obj.put(el(record_key, VR::OB, PrimitiveValue::U8(b"OB MRKQZX 03-5550-1234 ".to_vec().into())));
    obj.put(el(unknown_un, VR::UN, PrimitiveValue::U8(b"UN MRKQZX ZQ-PLANT".to_vec().into())));
    obj.put(el(review_date, VR::DA, M_DATE));
    obj.put(el(update_dt, VR::DT, M_DT));
    obj.put(el(manufacturer, VR::LO, "ENDO Co. service 03-5550-1234"));
    obj.put(el(model, VR::LO, "CV-1500 ask kensa.desk@example.jp"));
    obj.put(el(icc, VR::OB, PrimitiveValue::U8(vec![0, 0, 2, 0x0C].into())));
    // The same in an item of an unlisted sequence (Referenced Image Navigation Sequence is
    // not in the table either).
    let nav = Tag(0x0048, 0x0200);
    assert!(table.rule(nav).is_none());
    obj.put(sq(
        nav,
        vec![InMemDicomObject::from_element_iter([
            el(manufacturer, VR::LO, "call 090-2222-3333"),
            el(unknown_un, VR::UN, PrimitiveValue::U8(b"ZQ-PLANT2".to_vec().into())),
        ])],
    ));
    let input = to_bytes(obj);
    let has = |b: &[u8], m: &[u8]| b.windows(m.len()).any(|w| w == m);
    assert!(has(&input, b"ZQ-PLANT") && has(&input, b"5550-1234") && has(&input, b"@example"));

    let r = run(&input, &DicomPolicy::default()).unwrap();
    for m in ["ZQ-PLANT", M, "5550-1234", "090-2222", "2222-3333", "kensa.desk", "@example", M_DATE]
    {
        assert!(!has(&r.bytes, m.as_bytes()), "{m} survived in the output bytes");
    }
    let out = parse(&r.bytes);
    for t in [record_key, unknown_un, review_date, update_dt] {
        assert!(out.get(t).is_none(), "{t} kept");
    }
    assert_eq!(text(&out, manufacturer).as_deref(), Some("ENDO Co. service [電話]"));
    assert_eq!(text(&out, model).as_deref(), Some("CV-1500 ask [メール]"));
    assert!(out.get(icc).is_some(), "the ICC profile renders the picture: kept");
    let dump = dcmdump(&r.bytes);
    assert!(!dump.contains("ZQ-PLANT") && !dump.contains("090-2222"), "{dump}");

    // Dates follow the longitudinal options as the table's dates do.
    let p = |o| DicomPolicy { options: vec![o], safe_private: vec![] };
    let shifted = run(&input, &p(DicomOption::RetainLongitudinalModifiedDates)).unwrap();
    let out = parse(&shifted.bytes);
    let days = pseudo(1).date_shift_days(&FacilityId::new("F0001").unwrap(), M);
    let want = chrono::NaiveDate::from_ymd_opt(1923, 4, 5).unwrap() + chrono::Duration::days(days);
    assert_eq!(text(&out, review_date).unwrap(), want.format("%Y%m%d").to_string());
    assert!(text(&out, update_dt).unwrap().ends_with("231459"));
    // Kept as they are, they are searched: the birth date in an unlisted date is found.
    let e = run(&input, &p(DicomOption::RetainLongitudinalFullDates)).unwrap_err();
    match e {
        DicomError::IdentifierFound { tag, kind, .. } => {
            assert_eq!(kind, "birth_date");
            assert!(tag == "(0008,041F)" || tag == "(0014,0102)", "{tag}");
        }
        other => panic!("{other}"),
    }
}
