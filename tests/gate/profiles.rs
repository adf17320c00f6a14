//! Vendor mapping profiles: the built-in `reference` and `vendor-b` profiles read the same
//! exams to the same reference-form values; profiles are validated at load; values a profile
//! cannot map pass through for the gate to flag.

use chrono::NaiveDate;
use fgw_deid::{deidentify_exam, parse_date, DeidContext, DeidOutcome, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_format::package::{ExamRecord, Manifest};
use fgw_gateway::config::GatewayConfig;
use fgw_ingest::export::{
    find_ready_batches, load_attachments, read_batch, BatchDir, ExportError, Profile, TextEncoding,
};
use fgw_records::{Column, RawExam};
use fgw_synth::{generate, SynthEncoding, SynthLayout, SynthOptions, SynthTruth};
use std::fs;
use std::path::Path;

const VENDOR_B_TOML: &str = include_str!("../../profiles/vendor-b.toml");

fn vendor_b() -> Profile {
    Profile::builtin("vendor-b").unwrap()
}

fn opts(layout: SynthLayout, encoding: SynthEncoding) -> SynthOptions {
    SynthOptions {
        seed: 11,
        exams: 25,
        images_per_exam: 2,
        width: 48,
        height: 32,
        encoding,
        layout,
        ..Default::default()
    }
}

/// Every exam of the single ready batch under `root`, with attachments.
fn read_all(root: &Path, profile: &Profile) -> (Vec<RawExam>, TextEncoding) {
    // Labelled by their own names: these tests are about layouts, not labels.
    let batches = find_ready_batches(root, profile, str::to_owned).unwrap();
    assert_eq!(batches.len(), 1, "one ready batch");
    let rows = read_batch(&batches[0], profile).unwrap();
    assert!(rows.errors.is_empty(), "{:?}", rows.errors);
    let mut exams = rows.exams;
    for e in &mut exams {
        load_attachments(&batches[0], e, rows.encoding, profile).unwrap();
    }
    (exams, rows.encoding)
}

/// Reference spellings of sex (男/M/1, 女/F/2) to one form, as the gate reads them.
fn sex(v: &str) -> &'static str {
    match v {
        "男" | "M" | "1" => "male",
        "女" | "F" | "2" => "female",
        _ => "other",
    }
}

/// The two exports hold the same exams: every column equal in reference form (dates equal
/// once parsed, sex equal once read), and the same images and reports.
fn assert_same(reference: &[RawExam], vendor: &[RawExam]) {
    assert_eq!(reference.len(), vendor.len());
    for (r, v) in reference.iter().zip(vendor) {
        assert_eq!(r.source.row, v.source.row);
        assert!(r.extra.is_empty() && v.extra.is_empty());
        for c in Column::ALL {
            let (a, b) = (r.fields[&c].as_str(), v.fields[&c].as_str());
            match c {
                Column::BirthDate | Column::ExamDate => {
                    assert_eq!(parse_date(a).unwrap(), parse_date(b).unwrap(), "{}", c.key());
                }
                Column::Sex => assert_eq!(sex(a), sex(b), "{}", c.key()),
                _ => assert_eq!(a, b, "{}", c.key()),
            }
        }
        // Vendor dates arrive rewritten in the reference YYYY/MM/DD form.
        assert_eq!(v.fields[&Column::ExamDate].len(), 10);
        assert!(matches!(v.fields[&Column::Sex].as_str(), "男" | "女"));
        let bytes = |e: &RawExam| e.images.iter().map(|i| i.bytes.clone()).collect::<Vec<_>>();
        assert_eq!(bytes(r), bytes(v));
        assert_eq!(r.report, v.report);
    }
}

fn truths_agree(a: &SynthTruth, b: &SynthTruth) {
    let ids = |t: &SynthTruth| t.exams.iter().map(|e| e.exam_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b));
}

#[test]
fn builtin_profiles_load() {
    let names = Profile::builtin_names();
    assert!(names.contains(&"reference") && names.contains(&"vendor-b"), "{names:?}");
    for n in names {
        assert_eq!(Profile::builtin(n).unwrap().id, n);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(Profile::load(&root.join("profiles/vendor-b.toml")).unwrap(), vendor_b());
    assert_eq!(Profile::load(&root.join("profiles/reference.toml")).unwrap(), Profile::reference());
    assert_eq!(Profile::reference().table, "exams.csv");
    let b = vendor_b();
    assert_eq!((b.table.as_str(), b.done_marker.as_str()), ("exam_list.txt", "END"));
    assert_eq!(Profile::from_setting("vendor-b", root).unwrap(), b);
    assert_eq!(Profile::from_setting("profiles/vendor-b.toml", root).unwrap(), b);
}

#[test]
fn both_layouts_give_the_same_values_utf8_and_cp932() {
    // Reference in CP932 vs vendor B in its own UTF-8 (no BOM), and the other way round
    // (vendor B read with `encoding = "auto"`, which the CP932 file needs).
    let auto_b = Profile::from_toml(
        "vendor-b-auto",
        &VENDOR_B_TOML.replace("encoding = \"utf-8\"", "encoding = \"auto\""),
    )
    .unwrap();
    for (ref_enc, b_enc, b_profile, b_expect) in [
        (SynthEncoding::Cp932, SynthEncoding::Utf8, vendor_b(), TextEncoding::Utf8),
        (SynthEncoding::Utf8Bom, SynthEncoding::Cp932, auto_b, TextEncoding::Cp932),
    ] {
        let (ra, rb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ta = generate(ra.path(), &opts(SynthLayout::Reference, ref_enc)).unwrap();
        let tb = generate(rb.path(), &opts(SynthLayout::VendorB, b_enc)).unwrap();
        truths_agree(&ta, &tb);
        let (a, _) = read_all(ra.path(), &Profile::reference());
        let (b, enc) = read_all(rb.path(), &b_profile);
        assert_eq!(enc, b_expect);
        assert_same(&a, &b);
        // The vendor files really are in the vendor layout.
        let batch = rb.path().join("20261125T2300");
        assert!(batch.join("END").is_file() && !batch.join("DONE").exists());
        assert!(!batch.join("exams.csv").exists());
        assert!(tb.exams.iter().all(|e| e.images.iter().all(|i| i.rel_path.contains("/img/"))));
        assert!(tb.exams.iter().any(|e| e.report.as_deref().is_some_and(|r| r.contains("/txt/"))));
        // The reference profile does not see the vendor batch at all (no DONE marker).
        let none = find_ready_batches(rb.path(), &Profile::reference(), str::to_owned).unwrap();
        assert!(none.is_empty());
    }
}

#[test]
fn vendor_b_utf8_profile_rejects_a_cp932_file_by_line() {
    let root = tempfile::tempdir().unwrap();
    let t = generate(root.path(), &opts(SynthLayout::VendorB, SynthEncoding::Cp932)).unwrap();
    let b = &find_ready_batches(root.path(), &vendor_b(), str::to_owned).unwrap()[0];
    let err = read_batch(b, &vendor_b()).unwrap_err();
    assert!(matches!(err, ExportError::Undecodable { encoding: TextEncoding::Utf8, .. }));
    let msg = err.to_string();
    assert!(msg.contains("20261125T2300/exam_list.txt") && msg.contains("line "), "{msg}");
    for id in t.all_identifiers() {
        assert!(!msg.contains(&id), "message leaks a value: {msg}");
    }
    // The same file with the encoding declared as CP932 reads.
    let cp932 = Profile::from_toml(
        "vendor-b-cp932",
        &VENDOR_B_TOML.replace("encoding = \"utf-8\"", "encoding = \"cp932\""),
    )
    .unwrap();
    let (exams, enc) = read_all(root.path(), &cp932);
    assert_eq!((enc, exams.len()), (TextEncoding::Cp932, 25));
}

#[test]
fn vendor_b_comma_separated_export_reads_the_same() {
    let (ra, rb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(ra.path(), &opts(SynthLayout::VendorB, SynthEncoding::Utf8)).unwrap();
    generate(rb.path(), &opts(SynthLayout::VendorB, SynthEncoding::Utf8)).unwrap();
    // Rewrite B's table with commas instead of tabs (same cells, RFC 4180 quoting).
    let table = rb.path().join("20261125T2300/exam_list.txt");
    let text = fs::read_to_string(&table).unwrap();
    assert!(text.starts_with("EXAM_NO\tPATIENT_NO\tPT_NAME\t"));
    let mut rdr =
        csv::ReaderBuilder::new().delimiter(b'\t').has_headers(false).from_reader(text.as_bytes());
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rdr.records() {
        w.write_record(&r.unwrap()).unwrap();
    }
    fs::write(&table, w.into_inner().unwrap()).unwrap();
    let (a, _) = read_all(ra.path(), &vendor_b());
    let (b, _) = read_all(rb.path(), &vendor_b());
    assert_eq!(a, b);
}

/// Write a finished vendor-B batch (tab-separated UTF-8) holding `rows` under `header`.
fn vendor_batch(root: &Path, header: &[&str], rows: &[Vec<&str>]) -> BatchDir {
    let dir = root.join("B1");
    fs::create_dir_all(&dir).unwrap();
    let mut text = header.join("\t") + "\n";
    for r in rows {
        text += &(r.join("\t") + "\n");
    }
    fs::write(dir.join("exam_list.txt"), text).unwrap();
    fs::write(dir.join("END"), b"").unwrap();
    BatchDir { name: "B1".into(), path: dir, label: "B1".into() }
}

#[test]
fn date_forms() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let cases = [
        ("19500102", d(1950, 1, 2)),
        ("1950/01/02", d(1950, 1, 2)),
        ("S25.01.02", d(1950, 1, 2)),
        ("昭和25年1月2日", d(1950, 1, 2)),
        ("R5.4.1", d(2023, 4, 1)),
        ("令和元年5月1日", d(2019, 5, 1)),
    ];
    let root = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<&str>> = cases
        .iter()
        .enumerate()
        .map(|(i, (v, _))| vec![["E1", "E2", "E3", "E4", "E5", "E6"][i], *v, "20261125"])
        .collect();
    let b = vendor_batch(root.path(), &["EXAM_NO", "BIRTH_YMD", "EXAM_YMD"], &rows);
    let got = read_batch(&b, &vendor_b()).unwrap();
    assert_eq!(got.exams.len(), cases.len());
    for (e, (written, want)) in got.exams.iter().zip(&cases) {
        let v = e.get(Column::BirthDate).unwrap();
        assert_eq!(parse_date(v), Ok(*want), "{written}");
        // The compact vendor form is rewritten; era and reference forms pass through.
        if *written == "19500102" {
            assert_eq!(v, "1950/01/02");
        } else {
            assert_eq!(v, *written);
        }
        assert_eq!(e.get(Column::ExamDate), Some("2026/11/25"));
    }
    // The reference profile leaves every form as written; the gate parses them alike.
    for (written, want) in cases {
        assert_eq!(Profile::reference().map_value(Column::BirthDate, written), written);
        assert_eq!(parse_date(written), Ok(want));
    }
}

fn write_profile(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn broken_profiles_name_profile_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown-key.toml",
            VENDOR_B_TOML.replace("patient_name = ", "patient_nam = "),
            "columns.patient_nam",
        ),
        (
            "bad-date.toml",
            VENDOR_B_TOML.replace("[\"%Y%m%d\", \"era\"]", "[\"%Y%m%Q\"]"),
            "dates.birth_date",
        ),
        ("no-id.toml", VENDOR_B_TOML.replace("txt/{exam_id}.txt", "txt/report.txt"), "report_file"),
        ("no-id-img.toml", VENDOR_B_TOML.replace("img/{exam_id}", "img"), "images_dir"),
        ("encoding.toml", VENDOR_B_TOML.replace("\"utf-8\"", "\"euc-jp\""), "encoding"),
        (
            "empty.toml",
            VENDOR_B_TOML.replace("comment = [\"REMARKS\", \"REMARK\"]", "comment = []"),
            "columns.comment",
        ),
    ];
    for (file, text, key) in cases {
        let path = write_profile(dir.path(), file, &text);
        let e = Profile::load(&path).unwrap_err().to_string();
        assert!(e.contains("vendor-b") && e.contains(file), "{e}");
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");

        // The same through the gateway configuration, at load time.
        let cfg = format!("facility_id = \"F0001\"\n[export]\nprofile = \"{file}\"\n");
        let e = GatewayConfig::from_toml(&dir.path().join("gateway.toml"), &cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("export.profile") && e.contains(key) && e.contains(file), "{e}");
    }
    let e = GatewayConfig::from_toml(
        &dir.path().join("gateway.toml"),
        "facility_id = \"F0001\"\n[export]\nprofile = \"vendor-q\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("export.profile") && e.contains("vendor-q") && e.contains("vendor-b"),
        "{e}"
    );

    let ok = |extra: &str| {
        GatewayConfig::from_toml(
            &dir.path().join("gateway.toml"),
            &format!("facility_id = \"F0001\"\n{extra}"),
        )
        .unwrap()
        .export
        .mapping
    };
    assert_eq!(ok(""), Profile::reference());
    assert_eq!(ok("[export]\nprofile = \"vendor-b\"\n"), vendor_b());
    write_profile(dir.path(), "mine.toml", VENDOR_B_TOML);
    assert_eq!(ok("[export]\nprofile = \"mine.toml\"\n"), vendor_b());
}

fn deid_record(e: &RawExam) -> ExamRecord {
    let fac = FacilityId::new("F0001").unwrap();
    let ps = Pseudonymizer::new(fgw_gateway::secrets::Secrets::from_bytes([7; 32]).pseudonym_key());
    let ctx = DeidContext {
        facility: &fac,
        pseudonymizer: &ps,
        policy: &Policy::default(),
        profile: "reference",
        revision: 1,
        pixels: &fgw_deid::pixels::PixelStage::new(Default::default()),
    };
    match deidentify_exam(e, &ctx) {
        DeidOutcome::Package { package, .. } => {
            Manifest::parse(package.manifest_bytes()).unwrap().exam().cloned().unwrap()
        }
        DeidOutcome::Quarantined { reason } => panic!("quarantined: {reason}"),
    }
}

#[test]
fn unmapped_vendor_values_pass_through_and_the_gate_flags_them() {
    let root = tempfile::tempdir().unwrap();
    let header = ["EXAM_NO", "EXAM_YMD", "GENDER", "IO", "HP", "EXAM_KIND", "AE", "WARD"];
    let rows = vec![
        vec!["E1", "20261125", "2", "I", "1", "CS", "NONE|後出血", "5F"],
        vec!["E2", "20261125", "3", "X", "5", "ZZ", "BLEED", "6F"],
    ];
    let b = vendor_batch(root.path(), &header, &rows);
    let got = read_batch(&b, &vendor_b()).unwrap();
    let (ok, odd) = (&got.exams[0], &got.exams[1]);
    assert_eq!(ok.get(Column::Sex), Some("女"));
    assert_eq!(ok.get(Column::InOut), Some("入院"));
    assert_eq!(ok.get(Column::HPylori), Some("現感染"));
    assert_eq!(ok.get(Column::ExamType), Some("下部消化管"));
    assert_eq!(ok.get(Column::AdverseEvents), Some("なし; 後出血"));
    // Unknown vendor columns are carried to the policy, not mapped.
    assert_eq!(ok.extra.get("WARD").map(String::as_str), Some("5F"));
    for (c, v) in [
        (Column::Sex, "3"),
        (Column::InOut, "X"),
        (Column::HPylori, "5"),
        (Column::ExamType, "ZZ"),
        (Column::AdverseEvents, "BLEED"),
    ] {
        assert_eq!(odd.get(c), Some(v), "{}", c.key());
    }

    let r = deid_record(ok);
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    assert_eq!(r.exam_type.as_deref(), Some("lower_gi"));
    let r = deid_record(odd);
    for k in ["sex", "in_out", "h_pylori", "exam_type"] {
        assert_eq!(r.flags.get(k).map(String::as_str), Some("not_in_vocabulary"), "{k}");
    }
}

#[test]
fn both_layouts_give_the_same_deidentified_records() {
    let (ra, rb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut o = opts(SynthLayout::Reference, SynthEncoding::Cp932);
    o.images_per_exam = 0;
    generate(ra.path(), &o).unwrap();
    o.layout = SynthLayout::VendorB;
    o.encoding = SynthEncoding::Utf8;
    generate(rb.path(), &o).unwrap();
    let (a, _) = read_all(ra.path(), &Profile::reference());
    let (b, _) = read_all(rb.path(), &vendor_b());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(deid_record(x), deid_record(y), "row {}", x.source.row);
    }
}

#[test]
fn offline_deid_reads_a_vendor_b_export_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    let mut o = opts(SynthLayout::VendorB, SynthEncoding::Utf8);
    o.exams = 6;
    o.images_per_exam = 1;
    generate(&input, &o).unwrap();
    let cfg_text = format!(
        "facility_id = \"F0001\"\nstate_dir = \"{}\"\n[export]\nprofile = \"vendor-b\"\n",
        tmp.path().join("state").display()
    );
    let cfg = GatewayConfig::from_toml(&tmp.path().join("gateway.toml"), &cfg_text).unwrap();
    let report = fgw_gateway::offline::run(&cfg, &input, &output, &|_, _| {}).unwrap();
    assert_eq!(report.counts.exams_in, 6);
    assert_eq!(report.counts.exams_out, 6, "{:?}", report.quarantine);
    assert_eq!(report.counts.images_in, 6);
}
