//! Hub + gateway over real mutual TLS on loopback, fed by the synthetic department system:
//! exams arrive once with verified hashes, the raw spool is emptied after the ack, re-exports
//! replace earlier revisions, a gateway with a foreign certificate is refused, and a kill -9
//! mid-way loses nothing and duplicates nothing.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn synth(export: &Path, exams: usize, batch: &str) -> synth::SynthTruth {
    let opts = SynthOptions {
        exams,
        images_per_exam: 2,
        batch: batch.into(),
        width: 160,
        height: 128,
        ..SynthOptions::default()
    };
    synth::generate(export, &opts).unwrap()
}

fn pids(listing: &[serde_json::Value]) -> BTreeSet<String> {
    listing.iter().map(|r| r["exam_pid"].as_str().unwrap().to_string()).collect()
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    hub: Hub,
    export: std::path::PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let export = root.join("export");
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    Setup { _tmp: tmp, root, hub, export }
}

#[test]
fn exams_arrive_once_and_the_spool_is_emptied_after_ack() {
    let mut s = setup();
    let truth = synth(&s.export, 12, "20261125T2300");
    s.hub.start();
    let gw = Gateway::new(&s.root.join("gw"), &s.hub.url(), &s.root.join("gw-pki"), &s.export, "");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let listing = s.hub.list(&s.root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), truth.exams.len());
    assert_eq!(pids(&listing).len(), truth.exams.len(), "each exam exactly once");
    assert!(listing.iter().all(|r| r["revision"] == 1));
    // The synthetic frames carry no burned-in text: both images of every exam pass the
    // pixel stage and travel with the exam.
    assert!(listing.iter().all(|r| r["images_withheld"] == 0 && r["files"] == 2), "{listing:?}");
    let status = gw.status_json();
    assert_eq!(status["counts"]["acked"], truth.exams.len() as u64);
    assert_eq!(status["counts"]["received"], 0);
    assert_eq!(status["counts"]["deidentified"], 0);
    assert!(status["last_upload_at"].is_string());
    assert_eq!(gw.spool_files(), 0, "raw spool must be empty after ack");
    assert!(all_files(&gw.state_dir().join("outbox").join("packages")).is_empty());

    // A second run finds nothing new and uploads nothing twice.
    let out = gw.run_until_idle(Duration::from_secs(60));
    assert!(out.status.success());
    assert_eq!(s.hub.list(&s.root.join("op-pki"), FACILITY).len(), truth.exams.len());

    // A re-export (same exams, newer batch) replaces the earlier revision at the hub.
    synth(&s.export, 12, "20261126T2300");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = s.hub.list(&s.root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), truth.exams.len());
    assert!(listing.iter().all(|r| r["revision"] == 2), "{listing:#?}");
}

#[test]
fn a_gateway_with_a_foreign_certificate_is_refused_and_keeps_its_data() {
    let mut s = setup();
    synth(&s.export, 3, "20261125T2300");
    s.hub.start();
    // A CA that is not the society's issues this gateway's certificate.
    let rogue = Hub::init(&s.root.join("rogue-ca"));
    rogue.issue("gw-test", FACILITY, "device", &s.root.join("rogue-pki"));
    // Trust the real hub's CA, but present the rogue certificate.
    std::fs::copy(s.root.join("gw-pki/ca.crt"), s.root.join("rogue-pki/ca.crt")).unwrap();
    let gw =
        Gateway::new(&s.root.join("gw"), &s.hub.url(), &s.root.join("rogue-pki"), &s.export, "");
    let log = s.root.join("rogue-gw.log");
    let mut child = gw.spawn_run(&log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = gw.status_json();
        if st["counts"]["deidentified"] == 3 && st["last_error"].is_string() {
            break;
        }
        if let Some(code) = child.try_wait().unwrap() {
            panic!("gateway exited ({code}): {}", std::fs::read_to_string(&log).unwrap());
        }
        assert!(Instant::now() < deadline, "gateway never tried to upload: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        s.hub.list(&s.root.join("op-pki"), FACILITY).is_empty(),
        "hub accepted a foreign certificate"
    );
    // Nothing lost: the exams wait, de-identified, with their raw data still spooled.
    assert_eq!(gw.spool_files(), 3);
}

#[test]
fn kill_9_midway_then_restart_resumes_without_loss_or_duplicates() {
    let mut s = setup();
    let truth = synth(&s.export, 30, "20261125T2300");
    let gw = Gateway::new(&s.root.join("gw"), &s.hub.url(), &s.root.join("gw-pki"), &s.export, "");

    // Phase 1: hub down. The gateway ingests and de-identifies, cannot upload; kill -9.
    let mut child =
        gw.cmd().arg("run").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = gw.status_json();
        if st["counts"]["deidentified"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "gateway made no progress: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Phase 2: hub up; kill -9 again as soon as the first package is acknowledged.
    s.hub.start();
    let mut child =
        gw.cmd().arg("run").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = gw.status_json();
        if st["counts"]["acked"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no upload after restart: {st}");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Phase 3: run to the end.
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = s.hub.list(&s.root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), truth.exams.len(), "an exam was lost");
    assert_eq!(pids(&listing).len(), truth.exams.len());
    assert!(listing.iter().all(|r| r["revision"] == 1), "a row was ingested twice");
    let st = gw.status_json();
    assert_eq!(st["counts"]["acked"], truth.exams.len() as u64, "{st}");
    assert_eq!(gw.spool_files(), 0);
}
