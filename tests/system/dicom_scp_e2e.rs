//! A modality (DCMTK `storescu -xy`, JPEG Baseline) sends to the running gateway's SCP, with
//! the hub running. An endoscope frame with the patient's name and id burned in beside the
//! field is accepted once spooled, de-identified (header per PS3.15, overlay masked by the
//! pixel stage), packaged and acknowledged by the hub; `dcmdump` reads what the hub stored and
//! finds none of the planted identifiers. A frame with no field of view stays on the box,
//! encrypted, with its reason. Nothing of either header reaches the logs.

use crate::common;
use common::*;
use fgw_synth::overlay::{draw_text, encode_jpeg, render, system_font, FontChoice, Fov, Rng};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NAME: &str = "KABURAGI^RURIKO";
const PATIENT_ID: &str = "00987123";
const ACCESSION: &str = "E2026112700042";

fn img2dcm(jpg: &Path, dcm: &Path) {
    let made = Command::new("img2dcm")
        .args(["-i", "JPEG"])
        .args(["-k", &format!("PatientName={NAME}"), "-k", &format!("PatientID={PATIENT_ID}")])
        .args(["-k", &format!("AccessionNumber={ACCESSION}"), "-k", "Modality=ES"])
        .args(["-k", &format!("StudyDescription=EGD {NAME}")])
        .arg(jpg)
        .arg(dcm)
        .output()
        .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

#[test]
fn stored_objects_are_uploaded_or_kept_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // A processor frame: the field on the right, the overlay in the black border.
    let mut img = render(&mut Rng::new(5), 640, 480, Fov::Circle);
    let font = system_font(FontChoice::NotoSansCjkJp).unwrap();
    for (i, line) in [&format!("ID:{PATIENT_ID}"), "KABURAGI RURIKO"].iter().enumerate() {
        draw_text(&mut img, &font, 20.0, 8, 20 + 28 * i as i32, line, [235, 235, 235]);
    }
    let jpg = root.join("frame.jpg");
    std::fs::write(&jpg, encode_jpeg(&img, 90).unwrap()).unwrap();
    let endo = root.join("endo.dcm");
    img2dcm(&jpg, &endo);
    // No field anywhere: the stage cannot tell where text may be.
    let dark = root.join("dark.jpg");
    image::RgbImage::new(64, 48).save(&dark).unwrap();
    let dark_dcm = root.join("dark.dcm");
    img2dcm(&dark, &dark_dcm);

    let port = free_port();
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(&format!(
        "[dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nae_title = \"FGW\"\n\
         allowed_peers = [\"127.0.0.1/32\"]\n"
    ));
    std::fs::write(&gw.config, cfg).unwrap();
    let log = root.join("gw.log");
    let mut child = gw.spawn_run(&log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&log).unwrap());
        assert!(Instant::now() < deadline, "scp never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("storescu")
        .args(["-xy", "-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &port.to_string()])
        .arg(&endo)
        .arg(&dark_dcm)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = gw.status_json();
        if st["counts"]["quarantined"] == 1 && st["counts"]["acked"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "objects never finished: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The hub lists the object by remapped UIDs and keyed pseudonyms only.
    let listing = hub.list_of(&root.join("op-pki"), FACILITY, "dicom");
    assert_eq!(listing.len(), 1, "{listing:#?}");
    let row = &listing[0];
    for field in ["study_uid", "series_uid", "sop_instance_uid"] {
        assert!(row[field].as_str().unwrap().starts_with("2.25."), "{row}");
    }
    assert!(row["exam_pid"].as_str().unwrap().starts_with("e-"), "{row}");
    hub.stop();

    // What the hub stored: one Part-10 object, read by dcmdump.
    let stored: Vec<_> = hub
        .stored()
        .into_iter()
        .filter(|(_, b)| b.len() > 132 && &b[128..132] == b"DICM")
        .collect();
    assert_eq!(stored.len(), 1);
    // A copy in a file: on the national stores the object lives in S3.
    let stored_copy = root.join("stored.dcm");
    std::fs::write(&stored_copy, &stored[0].1).unwrap();
    let dump = Command::new("dcmdump").arg(&stored_copy).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("(0012,0062) CS [YES]"), "Patient Identity Removed: {dump}");
    assert!(dump.contains("(0028,0301) CS [NO]"), "Burned In Annotation: {dump}");

    let q = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    let q = String::from_utf8_lossy(&q.stdout).into_owned();
    assert!(q.contains("dicom") && q.contains("fov-not-found"), "{q}");
    // Raw bytes: the uploaded one deleted, the withheld one kept encrypted in quarantine/.
    assert_eq!(gw.spool_files(), 0);
    let kept = all_files(&gw.state_dir().join("quarantine"));
    assert_eq!(kept.len(), 1);
    let logs = std::fs::read(&log).unwrap();
    let hub_all: Vec<u8> =
        all_files(&hub.dir).into_iter().chain(hub.stored()).flat_map(|(_, b)| b).collect();
    for m in ["KABURAGI", "RURIKO", PATIENT_ID, "987123", ACCESSION] {
        for form in byte_forms(m) {
            assert!(!contains(&logs, &form), "log carries {m}");
            assert!(!contains(&kept[0].1, &form), "quarantine copy is not encrypted");
            assert!(!contains(&hub_all, &form), "the hub holds {m}");
        }
        assert!(!q.contains(m));
        assert!(!dump.contains(m), "dcmdump shows {m}");
    }

    researchers_take_the_object(root, &hub, &row["sop_instance_uid"], &stored[0].1);
}

/// Researchers' export of the DICOM part (issue 15): `hub export --format dicom` writes the
/// stored object as a Part 10 file named by its remapped UIDs, and stores it into a real
/// Orthanc (in its own network namespace: Orthanc listens on all interfaces), where it is
/// found by its SOP Instance UID through Orthanc's REST API. Both exports are in the log.
fn researchers_take_the_object(root: &Path, hub: &Hub, sop: &serde_json::Value, bytes: &[u8]) {
    let sop = sop.as_str().unwrap();
    let out = root.join("research");
    let export = |cmd: &mut Command, out: &Path| -> serde_json::Value {
        let done = cmd
            .args(["export", "--config"])
            .arg(&hub.config)
            .args(["--facility", FACILITY, "--from", "2000-01-01", "--to", "2099-12-31"])
            .args(["--date-field", "received", "--format", "dicom", "--researcher", "suzuki"])
            .arg(out)
            .output()
            .unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        serde_json::from_slice(&done.stdout).unwrap()
    };
    let report = export(&mut Command::new(hub_bin()), &out);
    assert_eq!(report["rows"], 1, "{report}");
    let files = all_files(&out);
    assert_eq!(files.len(), 1);
    assert!(files[0].0.ends_with(format!("{sop}.dcm")), "{:?}", files[0].0);
    assert_eq!(files[0].1, bytes, "the exported file is the stored object");

    if scaled_stores::active() {
        // The namespace reaches no PostgreSQL or S3 on the host's loopback; the Orthanc part
        // runs on the embedded stores (the default suite).
        return;
    }
    super::netns::require("Orthanc", "orthanc");
    let mut ns = super::netns::Netns::new();
    let odb = root.join("orthanc-db");
    let cfg = root.join("orthanc.json");
    let orthanc = serde_json::json!({
        "Name": "research-archive", "StorageDirectory": odb, "IndexDirectory": odb,
        "HttpPort": 8042, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
        "DicomPort": 4242, "Plugins": [],
    });
    std::fs::write(&cfg, serde_json::to_vec_pretty(&orthanc).unwrap()).unwrap();
    let mut c = ns.cmd("Orthanc");
    c.arg(&cfg);
    let olog = root.join("orthanc.log");
    let opid = ns.spawn(c, &olog);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rest(&ns, "/system").is_none() {
        assert!(ns.alive(opid), "Orthanc exited: {}", std::fs::read_to_string(&olog).unwrap());
        assert!(Instant::now() < deadline, "Orthanc's REST API never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut c = ns.cmd(hub_bin());
    c.args(["export", "--config"])
        .arg(&hub.config)
        .args(["--facility", FACILITY, "--from", "2000-01-01", "--to", "2099-12-31"])
        .args(["--date-field", "received", "--format", "dicom", "--researcher", "suzuki"])
        .args(["--orthanc", "http://127.0.0.1:8042"])
        .arg(root.join("research-2"));
    let done = c.output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let found = ns
        .cmd("curl")
        .args(["-sf", "-X", "POST", "http://127.0.0.1:8042/tools/find", "-d"])
        .arg(format!(r#"{{"Level":"Instance","Query":{{"SOPInstanceUID":"{sop}"}}}}"#))
        .output()
        .unwrap();
    let found: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "Orthanc holds the object: {found}");
    let instances = rest(&ns, "/instances").unwrap();
    assert_eq!(instances.as_array().unwrap().len(), 1);

    let log: Vec<serde_json::Value> = serde_json::from_slice(
        &run_ok(
            Command::new(hub_bin())
                .args(["exports", "--config"])
                .arg(&hub.config)
                .args(["--researcher", "suzuki"]),
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1]["destination"].as_str().unwrap().contains("http://127.0.0.1:8042"));
}

/// GET on Orthanc's REST API inside the namespace; `None` until it answers.
fn rest(ns: &super::netns::Netns, path: &str) -> Option<serde_json::Value> {
    let out =
        ns.cmd("curl").args(["-sf", &format!("http://127.0.0.1:8042{path}")]).output().ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}
