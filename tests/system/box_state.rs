//! Issue 10, findings 6, 9 and 10: the box's secret and its offline state.
//!
//! - A missing root secret with state on the box is refused, not regenerated (before: a new
//!   one was made silently, changing every pseudonym and stranding the spool).
//! - `gateway deid` runs without a configuration, with an ephemeral key it states (before: it
//!   failed, printing the OS error twice), and a missing `--config` file is named once.
//! - `gateway deid` keeps only the daemon's kind of locators in state.sqlite: no 検査ID, no
//!   input path or file name (before: absolute paths of images and DICOM files), and the
//!   database files are owner-only.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Planted in the name of a DICOM file that `gateway deid` quarantines.
const FILE_MARKER: &str = "QXFILEMARK_YAMADA";

/// An export (two exams, one with an undecodable image in its `images/<検査ID>/` folder), a
/// batch without DONE, and a DICOM file whose name carries [`FILE_MARKER`] and whose content
/// is refused. Returns the planted 検査ID.
fn input(root: &Path) -> String {
    let opts =
        SynthOptions { exams: 2, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    let truth = synth::generate(&root.join("export"), &opts).unwrap();
    let exam_id = truth.exams[0].exam_id.clone();
    let batch = root.join("export").join(&opts.batch);
    std::fs::write(batch.join("images").join(&exam_id).join("99.jpg"), b"\xFF\xD8\xFF\xE0trunc")
        .unwrap();
    let undone = root.join("export").join("20261125T2359");
    std::fs::create_dir_all(&undone).unwrap();
    std::fs::write(undone.join("exams.csv"), b"x\r\n").unwrap();
    let mut dcm = vec![0u8; 128];
    dcm.extend_from_slice(b"DICM");
    dcm.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0, 0, 0, 0, 0]);
    std::fs::create_dir_all(root.join("pacs")).unwrap();
    std::fs::write(root.join("pacs").join(format!("{FILE_MARKER}.dcm")), dcm).unwrap();
    exam_id
}

fn box_gateway(root: &Path, watch: &Path) -> Gateway {
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    Gateway::new(&root.join("gw"), "https://127.0.0.1:1", &root.join("gw-pki"), watch, "")
}

#[test]
fn a_missing_root_secret_with_state_on_the_box_is_refused_not_regenerated() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    input(&root.join("in"));
    let watch = root.join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let gw = box_gateway(root, &watch);
    // State made with the box's secret: quarantined items of a `gateway deid` run.
    let out = gw.cmd().arg("deid").arg(root.join("in")).arg(root.join("out1")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = gw.state_dir().join("secrets").join("root.key");
    let original = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();

    let daemon = gw.cmd().args(["run", "--exit-when-idle"]).output().unwrap();
    let offline =
        gw.cmd().arg("deid").arg(root.join("in")).arg(root.join("out2")).output().unwrap();
    for out in [&daemon, &offline] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without its root secret: {err}");
        assert!(err.contains(&key.display().to_string()), "names the missing file: {err}");
        assert!(err.contains("state.sqlite"), "says which state exists: {err}");
        assert!(
            err.contains("pseudonym") && err.contains("Restore"),
            "says why and what to do: {err}"
        );
    }
    assert!(!key.exists(), "a new root secret was generated");

    // Restoring the backup is the fix.
    std::fs::write(&key, &original).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = gw.cmd().arg("deid").arg(root.join("in")).arg(root.join("out3")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn gateway_deid_without_a_config_uses_an_ephemeral_key_and_says_so() {
    assert!(
        !Path::new("/etc/facility-gateway/gateway.toml").exists(),
        "this test needs a machine without the box's default configuration"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    input(&root.join("in"));
    let out = Command::new(gateway_bin())
        .current_dir(root)
        .arg("deid")
        .arg(root.join("in"))
        .arg(root.join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("key: ephemeral"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["key"], "ephemeral");
    assert_eq!(report["counts"]["exams_out"], 2, "{report:#}");
    // Nothing but the output was written: no state directory, here or elsewhere under root.
    let mut written: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["in", "out"]);
    // Two runs, two keys: the packages differ (their pseudonyms do).
    let again = Command::new(gateway_bin())
        .arg("deid")
        .arg(root.join("in"))
        .arg(root.join("out2"))
        .output()
        .unwrap();
    assert!(again.status.success());
    let report2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out2/report.json")).unwrap()).unwrap();
    assert_ne!(report["packages"], report2["packages"]);
}

#[test]
fn a_missing_config_file_is_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere.toml");
    std::fs::create_dir_all(tmp.path().join("in")).unwrap();
    let out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&missing)
        .arg("deid")
        .arg(tmp.path().join("in"))
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "the OS error once: {err}");
}

#[test]
fn offline_state_keeps_no_exam_id_or_file_name_and_is_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let exam_id = input(&root.join("in"));
    let watch = root.join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let gw = box_gateway(root, &watch);
    let out = gw.cmd().arg("deid").arg(root.join("in")).arg(root.join("out")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/report.json")).unwrap()).unwrap();
    let quarantined = report["quarantine"].as_array().unwrap();
    let reasons: Vec<&str> = quarantined.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    // The planted paths were quarantined (so their locators were recorded)...
    assert!(reasons.iter().any(|r| r.starts_with("image-unreadable")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("dicom file 1")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("DONE")), "{reasons:?}");

    // ...and the state holds none of them: every byte of the database and its WAL files.
    let db = gw.state_dir().join("state.sqlite");
    let mut scanned = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = Path::new(&format!("{}{suffix}", db.display())).to_path_buf();
        let Ok(bytes) = std::fs::read(&p) else { continue };
        scanned += 1;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{} is readable by others",
            p.display()
        );
        for marker in [exam_id.as_str(), FILE_MARKER, "99.jpg", "pacs", root.to_str().unwrap()] {
            for form in byte_forms(marker) {
                assert!(!contains(&bytes, &form), "{} holds {marker:?}", p.display());
            }
        }
    }
    assert!(scanned >= 1);
    // The locators that are left are the daemon's: batch, table, row, position.
    let show = gw
        .cmd()
        .args(["quarantine", "show"])
        .arg(
            quarantined
                .iter()
                .find(|e| e["reason"].as_str().unwrap().contains("dicom file 1"))
                .unwrap()["id"]
                .as_str()
                .unwrap(),
        )
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("\"source\": \"dicom file 1\""), "{shown}");
    // `gateway status` still opens the owner-only database.
    assert!(gw.cmd().args(["status", "--json"]).output().unwrap().status.success());
}
