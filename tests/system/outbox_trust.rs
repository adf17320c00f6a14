//! Issue 10, finding 11: only packages this box sealed leave the outbox.
//!
//! A pending item is pointed at a well-formed package that another box made (its manifest,
//! objects and that box's seal copied into this outbox). Before the fix the daemon uploaded
//! whatever manifest sat under the item's package id; now the manifest's seal (HMAC-SHA-256
//! with this box's outbox key) does not verify, the manifest is moved to `outbox/rejected/`,
//! the hub never sees it, and the item goes through the gate again and uploads its own
//! package.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::time::{Duration, Instant};

fn wait_for(gw: &Gateway, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = gw.status_json();
        if done(&st) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_package_this_box_did_not_seal_is_never_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let opts =
        SynthOptions { exams: 1, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    synth::generate(&root.join("export"), &opts).unwrap();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    let gw =
        Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &root.join("export"), "");

    // 1. The hub is down: the exam is de-identified and waits in the outbox.
    let log = root.join("gw-1.log");
    let mut child = gw.spawn_run(&log);
    wait_for(&gw, "never de-identified", |st| st["counts"]["deidentified"] == 1);
    child.kill().unwrap();
    child.wait().unwrap();

    // 2. Another box's package (same facility, another key): well-formed, hash-consistent,
    //    sealed, but not by this box.
    let other_export = root.join("other-export");
    synth::generate(&other_export, &SynthOptions { seed: 99, ..opts.clone() }).unwrap();
    let other =
        Gateway::new(&root.join("other"), &hub.url(), &root.join("gw-pki"), &other_export, "");
    let out =
        other.cmd().arg("deid").arg(&other_export).arg(root.join("foreign")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("foreign/report.json")).unwrap()).unwrap();
    let foreign = report["packages"][0].as_str().unwrap().to_string();
    let outbox = gw.state_dir().join("outbox");
    for sub in ["packages", "objects", "seals"] {
        common::copy_dir(&root.join("foreign").join(sub), &outbox.join(sub));
    }
    let changed = gw
        .db()
        .execute("UPDATE items SET package_id = ?1 WHERE state = 'deidentified'", [&foreign])
        .unwrap();
    assert_eq!(changed, 1);

    // 3. The hub is up: the foreign manifest is refused and moved aside; the item goes back
    //    through the gate.
    hub.start();
    let log = root.join("gw-2.log");
    let mut child = gw.spawn_run(&log);
    wait_for(&gw, "the foreign package was not refused", |st| st["counts"]["normalized"] == 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(outbox.join("rejected").join(format!("{foreign}.json")).exists());
    assert!(!outbox.join("packages").join(format!("{foreign}.json")).exists());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("not sealed by this box"), "the refusal is reported: {text}");

    // 4. Its own package goes out; the foreign one never did.
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gw.status_json()["counts"]["acked"], 1);
    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), 1, "{listing:#?}");
    assert_ne!(listing[0]["package_id"], foreign.as_str(), "the foreign package was uploaded");
    hub.stop();
}
