//! `gateway deid INPUT_DIR OUTPUT_DIR` on the reference export with bad parts mixed in:
//! malformed rows, a batch in the wrong encoding, an unreadable image and a DICOM file that
//! is recognised by content. Errors name file and row; the rest goes through; report.json
//! has the documented shape and no personal data; manifests validate against the schema.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::path::Path;
use std::process::Command;

fn setup_input(input: &Path) -> synth::SynthTruth {
    let opts = SynthOptions {
        exams: 8,
        images_per_exam: 2,
        width: 96,
        height: 80,
        ..SynthOptions::default()
    };
    let truth = synth::generate(&input.join("export"), &opts).unwrap();
    let batch = input.join("export").join(&opts.batch);
    // A malformed row appended to the good batch: too few fields.
    let mut csv = std::fs::read(batch.join("exams.csv")).unwrap();
    csv.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("E999,001,\r\n").0);
    std::fs::write(batch.join("exams.csv"), csv).unwrap();
    // An image that is not an image, in the first exam's folder.
    let first = &truth.exams[0];
    std::fs::write(
        batch.join("images").join(&first.exam_id).join("99.jpg"),
        b"\xFF\xD8\xFF\xE0\x00\x10JFIF-truncated",
    )
    .unwrap();
    // A batch in a wrong encoding (EUC-JP bytes are not valid CP932 everywhere).
    let bad = input.join("export").join("20261125T2359");
    std::fs::create_dir_all(&bad).unwrap();
    let mut euc = encoding_rs::EUC_JP.encode("検査ID,患者ID\r\nE1,1\r\n").0.into_owned();
    euc.extend_from_slice(b"\x85\x40\xff\xfe\r\n");
    std::fs::write(bad.join("exams.csv"), euc).unwrap();
    std::fs::write(bad.join("DONE"), b"").unwrap();
    // A DICOM file with a misleading name, elsewhere in the tree.
    let mut dcm = vec![0u8; 128];
    dcm.extend_from_slice(b"DICM");
    dcm.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, 0, 0, 0, 0]);
    std::fs::create_dir_all(input.join("pacs")).unwrap();
    std::fs::write(input.join("pacs").join("notes.txt"), dcm).unwrap();
    truth
}

#[test]
fn gateway_deid_reports_bad_input_and_processes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    let truth = setup_input(&input);
    // `gateway deid` needs no hub; the uplink section keeps its defaults.
    let gw = Gateway::new(
        &tmp.path().join("gw"),
        "https://localhost:8443",
        &tmp.path().join("pki"),
        &input,
        "",
    );
    let out = gw.cmd().arg("deid").arg(&input).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("report.json")).unwrap()).unwrap();
    let c = &report["counts"];
    let n = truth.exams.len() as u64;
    assert_eq!(c["exams_in"], n, "{report:#}");
    assert_eq!(c["exams_out"], n);
    assert_eq!(c["images_in"], 2 * n + 1);
    // Every readable synthetic frame passes the pixel stage (no burned-in text in them).
    assert_eq!(c["images_out"], 2 * n);
    assert_eq!(c["dicom_in"], 1);
    assert_eq!(c["dicom_out"], 0);
    let q = report["quarantine"].as_array().unwrap();
    assert_eq!(c["quarantined"], q.len() as u64);
    let reasons: Vec<&str> = q.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    // Batches by their labels, never by their folders' names (issue 10).
    let (good, bad) = (gw.batch_label("20261125T2300"), gw.batch_label("20261125T2359"));
    assert!(has(&format!("{good}/exams.csv row 9")), "malformed row not named: {reasons:#?}");
    assert!(
        has(&format!("{bad}/exams.csv")) && has("line"),
        "bad encoding not named: {reasons:#?}"
    );
    assert!(!has("20261125T23"), "a batch folder's name in a reason: {reasons:#?}");
    assert!(has("image-unreadable"), "{reasons:#?}");
    // The fake DICOM file (a bare meta header) is read by the DICOM gate and refused by
    // position, never by its (possibly identifying) file name.
    assert!(has("dicom file 1"), "{reasons:#?}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("pixels-not-cleaned")).count(), 0);

    // The quarantine id resolves to the original location only locally.
    let dicom_id =
        q.iter().find(|e| e["reason"].as_str().unwrap().contains("dicom file 1")).unwrap()["id"]
            .as_str()
            .unwrap();
    let show = gw.cmd().args(["quarantine", "show", dicom_id]).output().unwrap();
    // By its position in the walk, as the daemon would: a file name can hold a patient's
    // name, so it is kept nowhere (issue 10, finding 10).
    let shown = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(shown.contains("dicom file 1") && !shown.contains("notes.txt"), "{shown}");
    assert!(!String::from_utf8_lossy(&std::fs::read(output.join("report.json")).unwrap())
        .contains("notes.txt"));

    // No personal data in the report or the packages.
    let ids = truth.all_identifiers();
    for (p, bytes) in all_files(&output) {
        for id in &ids {
            for form in byte_forms(id) {
                assert!(
                    !contains(&bytes, &form),
                    "{} carries planted identifier {id:?}",
                    p.display()
                );
            }
        }
    }

    // Every manifest validates against the published JSON Schema and hashes to its name.
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/package-manifest.schema.json");
    let manifests = all_files(&output.join("packages"));
    assert_eq!(manifests.len() as u64, n);
    for (p, bytes) in &manifests {
        let id = p.file_stem().unwrap().to_str().unwrap();
        assert_eq!(fgw_format::ids::Sha256Hex::of(bytes).as_str(), id);
    }
    validate_manifests(&schema, &output.join("packages"));
}

/// Every manifest in `dir` validates against the published JSON Schema (python3-jsonschema).
fn validate_manifests(schema: &Path, dir: &Path) {
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import json,sys,glob,jsonschema\n\
             s=json.load(open(sys.argv[1]))\n\
             for p in glob.glob(sys.argv[2]+'/*.json'): jsonschema.validate(json.load(open(p)), s)\n",
        )
        .arg(schema)
        .arg(dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "schema: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn gateway_deid_output_is_exactly_what_the_daemon_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    let opts = SynthOptions {
        exams: 6,
        images_per_exam: 1,
        width: 64,
        height: 64,
        ..SynthOptions::default()
    };
    synth::generate(&export, &opts).unwrap();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    assert!(gw.run_until_idle(std::time::Duration::from_secs(120)).status.success());
    let uploaded: std::collections::BTreeSet<String> = hub
        .list(&root.join("op-pki"), FACILITY)
        .iter()
        .map(|r| r["package_id"].as_str().unwrap().to_string())
        .collect();
    let out = gw.cmd().arg("deid").arg(&export).arg(root.join("out")).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/report.json")).unwrap()).unwrap();
    let offline: std::collections::BTreeSet<String> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(uploaded.len(), 6);
    assert_eq!(offline, uploaded);
}

#[test]
fn gateway_deid_bad_usage_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = Gateway::new(tmp.path(), "https://localhost:8443", tmp.path(), tmp.path(), "");
    let out = gw
        .cmd()
        .arg("deid")
        .arg(tmp.path().join("missing"))
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing") && err.contains("not a directory"), "{err}");
    // Output inside input is refused (it would re-read its own output next time).
    std::fs::create_dir_all(tmp.path().join("in")).unwrap();
    let out = gw
        .cmd()
        .arg("deid")
        .arg(tmp.path().join("in"))
        .arg(tmp.path().join("in/o"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Missing arguments: clap's usage error.
    let out = gw.cmd().arg("deid").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_check_names_the_bad_key() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "facility_id = \"F0001\"\n").unwrap();
    let out = Command::new(gateway_bin()).args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "facility_id = \"F0001\"\n[pipeline]\nchannel_capacity = 0\n").unwrap();
    let out = Command::new(gateway_bin()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pipeline.channel_capacity") && err.contains("1 to 4096"), "{err}");
    let out = Command::new(hub_bin()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success(), "hub accepted a gateway config");
}

#[test]
fn gateway_deid_reads_real_dicom_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // A JPEG Baseline DICOM made by DCMTK, with identifiers in its header.
    let jpg = tmp.path().join("frame.jpg");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 4, 80]))
        .save(&jpg)
        .unwrap();
    let dcm = input.join("YAMADA_TARO.dcm");
    let made = Command::new("img2dcm")
        .args(["-i", "JPEG", "-k", "PatientName=YAMADA^TARO", "-k", "PatientID=00424242"])
        .arg(&jpg)
        .arg(&dcm)
        .output()
        .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let output = tmp.path().join("out");
    let gw = Gateway::new(&tmp.path().join("gw"), "https://localhost:8443", tmp.path(), &input, "");
    let out = gw.cmd().arg("deid").arg(&input).arg(&output).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(output.join("report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["counts"]["dicom_in"], 1);
    // Its pixels pass the stage (no border, no text): one package holding one object.
    assert_eq!(report["counts"]["dicom_out"], 1, "{text}");
    assert_eq!(report["quarantine"].as_array().unwrap().len(), 0, "{text}");
    let id = report["packages"][0].as_str().unwrap();
    let manifest = std::fs::read(output.join("packages").join(format!("{id}.json"))).unwrap();
    let m = fgw_format::package::Manifest::parse(&manifest).unwrap();
    assert_eq!(m.kind(), fgw_format::package::Kind::Dicom);
    let d = m.dicom().unwrap();
    assert!(d.sop_instance_uid.starts_with("2.25.") && d.patient_pid.is_some(), "{d:?}");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/package-manifest.schema.json");
    validate_manifests(&schema, &output.join("packages"));
    let object = output.join("objects").join(m.files[0].sha256.as_str());
    let dump = Command::new("dcmdump").arg(&object).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("(0012,0062) CS [YES]"), "{dump}");
    let all: Vec<u8> = all_files(&output).into_iter().flat_map(|(_, b)| b).collect();
    for leak in ["YAMADA", "00424242", "424242"] {
        assert!(!text.contains(leak));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(leak));
        assert!(!dump.contains(leak), "dcmdump shows {leak}");
        assert!(!contains(&all, leak.as_bytes()), "the output holds {leak}");
    }
}
