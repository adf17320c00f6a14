//! DICOM pull against a real archive: Orthanc (the `orthanc` Debian package, installed by
//! scripts/ensure-deps.sh) started by this test inside its own network namespace, because
//! Orthanc listens on all interfaces; the gateway (SCP + puller) runs in the same namespace.
//!
//! The namespace is held by `unshare -rn` (user + network namespace, loopback up; works as
//! root and, where user namespaces are allowed, unprivileged); every other process enters it
//! with `nsenter`. Inside it the ports are private, so fixed ports are used.
//!
//! Scenario: studies dated before the start date, on it, in the middle, today, and in the
//! future are stored into Orthanc with DCMTK `storescu -xy`. The gateway pulls with a slow
//! pace and is killed (SIGKILL) right after its first study moved: the watermark must not
//! have moved. Restarted at full pace it re-queries that window (the moved study is skipped),
//! catches up to yesterday, and keeps re-querying today without moving anything again.
//! Killed and restarted once more after a new study of today was stored, it resumes from the
//! watermark and fetches just that study. Exactly the in-range instances arrive; none of the
//! planted identifiers or UIDs reach a log line.

use super::netns::{require, Netns};
use crate::common;
use chrono::{Days, Local, NaiveDate};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PATIENT_NAME: &str = "Kaburagi^Ruriko";
const PATIENT_ID: &str = "QX77123";
const ORTHANC_PORT: u16 = 4242;
const SCP_PORT: u16 = 11112;

fn da(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

/// `n` Secondary Capture instances (JPEG Baseline, same study and series) dated `date`. The
/// frame is a synthetic endoscope image (a lit field on black), so the pixel stage finds its
/// field and the object goes the whole way through the gate.
fn make_study(dir: &Path, name: &str, date: NaiveDate, n: usize) -> Vec<PathBuf> {
    let jpg = dir.join("frame.jpg");
    if !jpg.exists() {
        let img = fgw_synth::overlay::render(
            &mut fgw_synth::overlay::Rng::new(7),
            320,
            256,
            fgw_synth::overlay::Fov::Circle,
        );
        std::fs::write(&jpg, fgw_synth::overlay::encode_jpeg(&img, 90).unwrap()).unwrap();
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..n {
        let out = dir.join(format!("{name}-{i}.dcm"));
        let mut c = Command::new("img2dcm");
        c.args(["-i", "JPEG"]);
        match files.first() {
            // Same patient, study and series; a new SOP instance.
            Some(first) => {
                c.arg("--series-from").arg(first);
            }
            None => {
                c.args(["-k", &format!("PatientName={PATIENT_NAME}")])
                    .args(["-k", &format!("PatientID={PATIENT_ID}")])
                    .args(["-k", &format!("StudyDate={}", da(date))]);
            }
        }
        let made = c.arg(&jpg).arg(&out).output().expect("img2dcm (apt package dcmtk)");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        files.push(out);
    }
    files
}

fn uids(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let obj = dicom_object::open_file(f).unwrap();
        for tag in [
            dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
            dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        ] {
            out.push(obj.element(tag).unwrap().to_str().unwrap().trim_end_matches('\0').into());
        }
    }
    out
}

fn store(ns: &Netns, files: &[PathBuf]) {
    let port = ORTHANC_PORT.to_string();
    let mut args = vec!["-xy", "-aet", "MODALITY", "-aec", "ARCHIVE", "127.0.0.1", &port];
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.extend(paths);
    ns.run_ok("storescu", &args);
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool, log: &Path) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; gateway log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_lines(log: &Path, needle: &str) -> Vec<String> {
    plain_log(log).lines().filter(|l| l.contains(needle)).map(String::from).collect()
}

/// Orthanc as `ARCHIVE` on port 4242 of the namespace, knowing the gateway as `FGW`.
fn start_archive(ns: &mut Netns, root: &Path) {
    let odb = root.join("orthanc-db");
    let ocfg = root.join("orthanc.json");
    let orthanc = serde_json::json!({
        "Name": "fgw-test-archive",
        "StorageDirectory": odb, "IndexDirectory": odb,
        "HttpPort": 8042, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
        "DicomAet": "ARCHIVE", "DicomPort": ORTHANC_PORT, "DicomCheckCalledAet": true,
        // The gateway: caller of C-FIND/C-MOVE and C-MOVE destination, under one AE title.
        "DicomModalities": { "fgw": ["FGW", "127.0.0.1", SCP_PORT] },
        "Plugins": [],
    });
    std::fs::write(&ocfg, serde_json::to_vec_pretty(&orthanc).unwrap()).unwrap();
    let olog = root.join("orthanc.log");
    let mut c = ns.cmd("Orthanc");
    c.arg(&ocfg);
    let opid = ns.spawn(c, &olog);
    let port = ORTHANC_PORT.to_string();
    wait_until(
        "Orthanc to answer C-ECHO",
        Duration::from_secs(60),
        || {
            assert!(ns.alive(opid), "Orthanc exited: {}", std::fs::read_to_string(&olog).unwrap());
            ns.cmd("echoscu")
                .args(["-aec", "ARCHIVE", "127.0.0.1", &port])
                .output()
                .unwrap()
                .status
                .success()
        },
        &olog,
    );
}

/// A gateway whose SCP (`FGW`) admits only the archive and whose puller asks it; extra
/// `[dicom_scp]` and `[dicom_pull]` lines appended.
fn pull_gateway(root: &Path, scp_extra: &str, pull_extra: &str) -> Gateway {
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let sections = format!(
        "[dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{SCP_PORT}\"\nae_title = \"FGW\"\n\
         allowed_peers = [\"127.0.0.1/32\"]\nallow = [{{ ae = \"ARCHIVE\" }}]\n{scp_extra}\n\
         [dicom_pull]\nmode = \"enabled\"\narchive_ae = \"ARCHIVE\"\narchive_host = \"127.0.0.1\"\n\
         archive_port = {ORTHANC_PORT}\npoll_interval_secs = 1\n{pull_extra}"
    );
    Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, &sections)
}

fn run_gateway(ns: &mut Netns, gw: &Gateway, log: &Path) -> u32 {
    let mut c = ns.cmd(gateway_bin());
    c.arg("--config").arg(&gw.config).arg("run").env("RUST_LOG", "debug");
    ns.spawn(c, log)
}

#[test]
fn pulls_history_by_date_window_with_a_persisted_watermark() {
    require("Orthanc", "orthanc");
    require("storescu", "dcmtk");
    require("nsenter", "util-linux");
    require("ip", "iproute2");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();

    // Dates relative to today (the box's local date, as the puller sees it).
    let today = Local::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let start = today - Days::new(400);
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let before = make_study(&files, "before", start.pred_opt().unwrap(), 1);
    let first = make_study(&files, "first", start, 2);
    let middle = make_study(&files, "middle", today - Days::new(30), 1);
    let today1 = make_study(&files, "today1", today, 1);
    let future = make_study(&files, "future", today + Days::new(30), 1);
    let today2 = make_study(&files, "today2", today, 1);
    let mut all = vec![];
    for s in [&before, &first, &middle, &today1, &future, &today2] {
        all.extend(s.iter().cloned());
    }
    let secrets = uids(&all);

    let mut ns = Netns::new();
    start_archive(&mut ns, root);
    let mut first_batch = vec![];
    for s in [&before, &first, &middle, &today1, &future] {
        first_batch.extend(s.iter().cloned());
    }
    store(&ns, &first_batch);

    // The gateway: SCP and puller, slow pace for the first run.
    let gw = pull_gateway(
        root,
        "",
        &format!("start_date = \"{start}\"\nwindow_days = 200\npause_between_studies_ms = 3000\n"),
    );
    let run = |ns: &mut Netns, log: &Path| run_gateway(ns, &gw, log);
    // Objects through the gate: packaged (waiting for the hub, which this test does not run)
    // or kept on the box.
    let gated = || {
        let st = gw.status_json();
        let n = |s: &str| st["counts"][s].as_u64().unwrap_or(0);
        n("deidentified") + n("acked") + n("quarantined")
    };
    let watermark = || gw.status_json()["dicom_pull"]["watermark"].as_str().map(String::from);

    // Run 1: killed right after its first study moved, before the window could complete.
    let log1 = root.join("gw1.log");
    let pid = run(&mut ns, &log1);
    wait_until(
        "the first study to be moved",
        Duration::from_secs(60),
        || !log_lines(&log1, "dicom pull study moved").is_empty(),
        &log1,
    );
    ns.kill(pid);
    assert_eq!(watermark(), None, "watermark moved before its window completed");
    assert_eq!(
        gw.status_json()["dicom_pull"]["start_date"].as_str(),
        Some(start.to_string().as_str())
    );

    // Run 2: full pace; catches up to yesterday, then only re-queries today.
    let cfg = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        cfg.replace("pause_between_studies_ms = 3000", "pause_between_studies_ms = 0"),
    )
    .unwrap();
    let log2 = root.join("gw2.log");
    let pid = run(&mut ns, &log2);
    let expected = (first.len() + middle.len() + today1.len()) as u64;
    wait_until(
        "catch-up to yesterday",
        Duration::from_secs(90),
        || watermark().as_deref() == Some(yesterday.to_string().as_str()) && gated() >= expected,
        &log2,
    );
    let from = |d: NaiveDate| format!("from={d} ");
    let windows = log_lines(&log2, "dicom pull window done");
    assert!(
        windows[0].contains(&from(start)),
        "run 2 re-queries the interrupted window: {windows:?}"
    );
    assert!(
        windows[0].contains("skipped=1"),
        "the study moved before the kill is skipped: {windows:?}"
    );
    // Later passes over today move nothing: the study of today is already here.
    wait_until(
        "two idle passes over today",
        Duration::from_secs(30),
        || {
            log_lines(&log2, "dicom pull window done")
                .iter()
                .filter(|l| l.contains(&from(today)) && l.contains("moved=0"))
                .count()
                >= 2
        },
        &log2,
    );
    assert_eq!(gated(), expected, "exactly the in-range instances, nothing more");
    assert!(log_lines(&log2, &from(yesterday + Days::new(2))).is_empty(), "no window past today");
    ns.kill(pid);

    // Run 3: a new study of today; the restart resumes from the watermark.
    store(&ns, &today2);
    let log3 = root.join("gw3.log");
    let pid = run(&mut ns, &log3);
    wait_until(
        "the new study of today",
        Duration::from_secs(60),
        || gated() == expected + today2.len() as u64,
        &log3,
    );
    let windows = log_lines(&log3, "dicom pull window");
    assert!(windows.iter().all(|l| l.contains(&from(today))), "resumed at today: {windows:?}");
    // An instance that arrives again (a window re-pulled after a crash, a re-send) is
    // acknowledged and dropped: no second item.
    let scp = SCP_PORT.to_string();
    let again = middle[0].to_str().unwrap();
    ns.run_ok("storescu", &["-xy", "-aet", "ARCHIVE", "-aec", "FGW", "127.0.0.1", &scp, again]);
    wait_until(
        "the duplicate to be dropped",
        Duration::from_secs(30),
        || !log_lines(&log3, "dicom duplicate instance dropped").is_empty(),
        &log3,
    );
    ns.kill(pid);
    assert_eq!(watermark().as_deref(), Some(yesterday.to_string().as_str()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gated(), expected + today2.len() as u64);

    // Every object passed the gate, each once, and none was lost: packaged and waiting for
    // the hub (not running in this test), none quarantined.
    let q = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    let q = String::from_utf8_lossy(&q.stdout).into_owned();
    assert_eq!(gw.status_json()["counts"]["quarantined"], 0, "{q}");

    for log in [&log1, &log2, &log3] {
        let text = std::fs::read_to_string(log).unwrap();
        for secret in [PATIENT_NAME, "Kaburagi", "Ruriko", PATIENT_ID]
            .iter()
            .copied()
            .chain(secrets.iter().map(String::as_str))
        {
            assert!(!text.contains(secret), "{} carries {secret}", log.display());
        }
    }
}

/// The archive cannot deliver a study (our SCP does not take its SOP class): the C-MOVE
/// fails, the window stays open and is retried, and the watermark does not move past it.
#[test]
fn a_study_the_box_cannot_receive_holds_the_watermark() {
    require("Orthanc", "orthanc");
    require("storescu", "dcmtk");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let today = Local::now().date_naive();
    let start = today - Days::new(10);
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let study = make_study(&files, "sc", start + Days::new(2), 1);
    let mut ns = Netns::new();
    start_archive(&mut ns, root);
    store(&ns, &study);
    // Secondary Capture left out of the SCP's SOP classes.
    let scp = "sop_classes = [\"1.2.840.10008.5.1.4.1.1.77.1.1\", \"1.2.840.10008.1.1\"]\n";
    let pull =
        format!("start_date = \"{start}\"\nwindow_days = 30\npause_between_studies_ms = 0\n");
    let gw = pull_gateway(root, scp, &pull);
    let log = root.join("gw.log");
    let pid = run_gateway(&mut ns, &gw, &log);
    wait_until(
        "the window to be retried after the failed move",
        Duration::from_secs(60),
        || log_lines(&log, "dicom pull window incomplete").len() >= 2,
        &log,
    );
    ns.kill(pid);
    let st = gw.status_json();
    assert_eq!(st["dicom_pull"]["watermark"], serde_json::Value::Null, "{st}");
    assert_eq!(st["counts"]["quarantined"], 0, "{st}");
    let incomplete = log_lines(&log, "dicom pull window incomplete");
    let from = format!("from={start} ");
    assert!(
        incomplete.iter().all(|l| l.contains(&from) && l.contains("failed=1")),
        "{incomplete:?}"
    );
    assert!(log_lines(&log, "dicom pull watermark advanced").is_empty());
}
