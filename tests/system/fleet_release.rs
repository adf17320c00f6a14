//! Issue 13: a policy release reaches a running box. The real hub publishes it in its TUF
//! repository and rolls it out; the real gateway daemon (trusting the repository's root as
//! an image would) verifies it, self-tests it, puts it in force without a reboot and
//! reports it in its heartbeat. A release that fails the box's self-test is not applied,
//! is reported failed, and halts its rollout by itself.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn hub_json(hub: &Hub, args: &[&str]) -> serde_json::Value {
    let out = Command::new(hub_bin()).args(args).arg("--config").arg(&hub.config).output().unwrap();
    assert!(out.status.success(), "hub {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fleet_row(hub: &Hub) -> Option<serde_json::Value> {
    hub_json(hub, &["fleet", "--json"]).as_array().and_then(|a| a.first().cloned())
}

/// Waits until `hub fleet --json`'s row satisfies `ok`.
fn wait_fleet(hub: &Hub, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(row) = fleet_row(hub).filter(|r| ok(r)) {
            return row;
        }
        assert!(Instant::now() < deadline, "{what}: {:#?}", fleet_row(hub));
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn export_policy(gw: &Gateway, dir: &Path) {
    let out = gw.cmd().args(["policy", "export"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_policy_release_reaches_the_running_box_and_a_failing_one_halts_its_rollout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("pki"));
    // The root a box image bakes in.
    let tuf_root = root.join("tuf-root.json");
    let r = hub_json(&hub, &["release", "root", "--out", tuf_root.to_str().unwrap()]);
    assert!(tuf_root.is_file(), "{r}");
    hub.start();

    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("pki"), &export, "");
    gw.append_config(&format!(
        "[fleet]\nheartbeat_secs = 10\n[update]\ntuf_root = \"{}\"\ncheck_secs = 10\n",
        tuf_root.display()
    ));
    let mut daemon = gw.spawn_run(&root.join("gw.log"));
    wait_fleet(&hub, "first heartbeat", |r| r["policy_version"] == "jed-basic@1");

    // Release 2: the box's own policy, published as version 2.
    let folder = root.join("policy-2");
    export_policy(&gw, &folder);
    let rel = hub_json(
        &hub,
        &["release", "publish", "--kind", "policy", "--version", "2", folder.to_str().unwrap()],
    );
    assert_eq!(rel["target"], "policy-2.json");
    let ro = hub_json(&hub, &["rollout", "create", "--release", "2", "--waves", "100"]);
    assert_eq!(ro["state"], "active");

    let row = wait_fleet(&hub, "policy 2 in force", |r| r["policy_version"] == "jed-basic@2");
    assert_eq!(row["heartbeat"]["updates"]["policy"]["outcome"], "installed", "{row:#}");
    // The box says why it installs nothing more now.
    let out = gw.cmd().args(["update", "check", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let policy =
        check["updates"].as_array().unwrap().iter().find(|d| d["kind"] == "policy").unwrap();
    assert_eq!(policy["verdict"], "up_to_date", "{check:#}");
    let show = gw.cmd().args(["policy", "show", "--json"]).output().unwrap();
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!((show["version"].as_u64(), show["release"].as_str()), (Some(2), Some("2")));

    // Release 3 carries a term list that is not the box's: its self-test fails.
    let folder3 = root.join("policy-3");
    export_policy(&gw, &folder3);
    let terms = folder3.join("terms.toml");
    let text = std::fs::read_to_string(&terms).unwrap();
    std::fs::write(&terms, format!("{text}\n# edited elsewhere\n")).unwrap();
    hub_json(
        &hub,
        &["release", "publish", "--kind", "policy", "--version", "3", folder3.to_str().unwrap()],
    );
    let ro3 = hub_json(
        &hub,
        &["rollout", "create", "--release", "3", "--waves", "100", "--halt-min", "1"],
    );
    let row = wait_fleet(&hub, "release 3 reported failed", |r| {
        r["heartbeat"]["updates"]["policy"]["outcome"] == "failed"
    });
    assert_eq!(row["heartbeat"]["updates"]["policy"]["version"], "3");
    assert_eq!(row["policy_version"], "jed-basic@2", "the box kept release 2");
    // The rollout halted itself on the failure.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = hub_json(&hub, &["rollout", "list"]);
        let r3 = list.as_array().unwrap().iter().find(|r| r["id"] == ro3["id"]).unwrap().clone();
        if r3["state"] == "halted" {
            assert_eq!(r3["failed"], 1, "{r3:#}");
            break;
        }
        assert!(Instant::now() < deadline, "rollout 3 did not halt: {r3:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // An operator rolls release 3 back: the box is offered release 2, which it has.
    let back = hub_json(&hub, &["rollout", "rollback", &ro3["id"].to_string()]);
    assert_eq!(back["state"], "rolled_back");
    assert_eq!(back["previous"], "2");

    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();

    // The health check an OS update runs after boot: healthy with the hub up …
    let health = |expect_ok: bool| {
        let out = gw.cmd().args(["update", "health", "--json"]).output().unwrap();
        assert_eq!(out.status.success(), expect_ok, "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let h = health(true);
    let names: Vec<&str> =
        h["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["state", "identity", "hub", "round_trip"], "{h:#}");
    // … and not without it (a new slot that cannot reach the hub is marked bad).
    hub.stop();
    let h = health(false);
    let hub_check = h["checks"].as_array().unwrap().iter().find(|c| c["name"] == "hub").unwrap();
    assert_eq!(hub_check["ok"], false, "{h:#}");
}

#[test]
fn a_box_without_network_takes_a_policy_release_from_a_usb_stick_through_the_same_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("pki"));
    let tuf_root = root.join("tuf-root.json");
    hub_json(&hub, &["release", "root", "--out", tuf_root.to_str().unwrap()]);
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    // The hub is never started: the box has no network to it.
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("pki"), &export, "");
    gw.append_config(&format!("[update]\ntuf_root = \"{}\"\n", tuf_root.display()));
    std::fs::create_dir_all(gw.state_dir()).unwrap();
    let folder = root.join("policy-2");
    export_policy(&gw, &folder);
    hub_json(
        &hub,
        &["release", "publish", "--kind", "policy", "--version", "2", folder.to_str().unwrap()],
    );
    // The society copies its repository onto a stick.
    let usb = root.join("usb");
    copy_dir(&hub.data_dir().join("tuf/repo"), &usb);
    let tampered = root.join("usb-tampered");
    copy_dir(&usb, &tampered);
    let target = tampered.join("targets/policy-2.json");
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(&target, text.replacen("jed-basic", "jed-basiX", 1)).unwrap();

    let by_hand = |dir: &Path, cmd: &str| {
        gw.cmd()
            .args(["update", cmd, "--from"])
            .arg(dir)
            .args(["--kind", "policy", "--version", "2"])
            .output()
            .unwrap()
    };
    // A tampered stick is refused by the signed hash; nothing changes.
    let out = by_hand(&tampered, "apply");
    assert!(!out.status.success());
    let outcomes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcomes[0]["outcome"], "refused", "{outcomes:#}");
    assert!(outcomes[0]["detail"].as_str().unwrap().starts_with("tuf_mismatch"), "{outcomes:#}");
    // The society's stick: checked, then applied.
    let out = gw
        .cmd()
        .args(["update", "check", "--json", "--from"])
        .arg(&usb)
        .args(["--kind", "policy", "--version", "2"])
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["updates"][0]["verdict"], "install", "{check:#}");
    let out = by_hand(&usb, "apply");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let show = gw.cmd().args(["policy", "show", "--json"]).output().unwrap();
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!((show["version"].as_u64(), show["release"].as_str()), (Some(2), Some("2")));
}
