//! Issue 10, finding 13: the hub's refusals are classified.
//!
//! - A 403 from a registry mistake (the box's certificate not registered) pauses the uplink,
//!   shown by `gateway status`; nothing is quarantined, and once the registration is fixed the
//!   same items go out by themselves (before: every item in flight was quarantined for good).
//! - A refusal of the package itself (413: a hub limit) quarantines it as `hub-refused`, and
//!   `gateway quarantine redrive --reason hub-refused` sends it again once the hub is fixed
//!   (before: no way back). Reasons the gate gave are not re-drivable.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::path::Path;
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

/// Statements on the hub's metadata database (SQLite, or PostgreSQL under `FGW_TEST_STORES`).
fn hub_sql(hub: &Hub, sql: &str) {
    if scaled_stores::execute(&hub.config, sql) {
        return;
    }
    let c = rusqlite::Connection::open(hub.data_dir().join("hub.sqlite")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(sql).unwrap();
}

fn export(root: &Path) -> std::path::PathBuf {
    let dir = root.join("export");
    let opts =
        SynthOptions { exams: 2, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    synth::generate(&dir, &opts).unwrap();
    dir
}

#[test]
fn a_registry_mistake_pauses_the_uplink_instead_of_quarantining() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = export(root);
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    // The registry mistake: the box's certificate is valid (society CA) but not registered.
    hub_sql(
        &hub,
        "CREATE TABLE parked AS SELECT * FROM devices WHERE device_id = 'gw-test';
         DELETE FROM devices WHERE device_id = 'gw-test';",
    );
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let log = root.join("gw.log");
    let mut child = gw.spawn_run(&log);

    wait_for(&gw, "the uplink never paused", |st| st["uplink"]["state"] == "paused");
    let st = gw.status_json();
    assert!(st["uplink"]["reason"].as_str().unwrap().contains("403"), "{st}");
    assert_eq!(st["counts"]["quarantined"], 0, "a 403 quarantined items: {st}");
    let text = gw.cmd().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("PAUSED"));
    // Still paused after more attempts (pauses retry every second in these tests).
    std::thread::sleep(Duration::from_secs(2));
    let st = gw.status_json();
    assert_eq!(
        (&st["uplink"]["state"], &st["counts"]["quarantined"]),
        (&"paused".into(), &0.into())
    );

    // The registration is fixed: the same items go out, and the pause ends.
    hub_sql(&hub, "INSERT INTO devices SELECT * FROM parked;");
    wait_for(&gw, "uploads did not resume", |st| st["counts"]["acked"] == 2);
    assert_eq!(gw.status_json()["uplink"]["state"], "running");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 2);
}

#[test]
fn a_refused_package_is_quarantined_and_redriven_once_the_hub_is_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = export(root);
    // A hub limit below the size of any image: PUT /v1/objects answers 413.
    let mut hub = Hub::init_with(&root.join("hub"), "max_object_bytes = 100");
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st = gw.status_json();
    assert_eq!(st["counts"]["quarantined"], 2, "{st}");
    assert_eq!(st["uplink"]["state"], "running", "a package refusal does not pause: {st}");
    let list = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(list.matches("hub-refused").count(), 2, "{list}");
    assert!(list.contains("413"), "{list}");

    // A reason the gate gave is not re-drivable.
    let bad =
        gw.cmd().args(["quarantine", "redrive", "--reason", "fov-not-found"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not re-drivable"));

    // The hub's limit is fixed; the refused packages are re-driven and go out.
    hub.stop();
    let cfg = std::fs::read_to_string(&hub.config).unwrap();
    std::fs::write(&hub.config, cfg.replace("max_object_bytes = 100", "")).unwrap();
    hub.start();
    let out = gw.cmd().args(["quarantine", "redrive", "--reason", "hub-refused"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("2 re-driven"), "{said}");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st = gw.status_json();
    assert_eq!((&st["counts"]["acked"], &st["counts"]["quarantined"]), (&2.into(), &0.into()));
    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 2);
    // The re-drive is on record: ids only.
    let (action, items): (String, i64) = gw
        .db()
        .query_row("SELECT action, items FROM audit", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((action.as_str(), items), ("redrive", 2));
    hub.stop();
}
