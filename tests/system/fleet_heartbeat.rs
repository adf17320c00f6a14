//! Issue 13: heartbeats. The real gateway reports to the real hub at start, every
//! `fleet.heartbeat_secs` and once more when it stops; `hub fleet --json` shows each device's
//! newest report. The hub refuses a heartbeat that carries anything but codes and counts.

use crate::common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::process::Command;
use std::time::Duration;

fn fleet(hub: &Hub) -> Vec<serde_json::Value> {
    let out = Command::new(hub_bin())
        .args(["fleet", "--json", "--config"])
        .arg(&hub.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "hub fleet: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_box_reports_versions_queue_and_states_and_hub_fleet_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("pki"));
    hub.start();
    assert!(fleet(&hub).is_empty(), "no heartbeat yet");
    let export = root.join("export");
    let opts =
        SynthOptions { exams: 3, images_per_exam: 1, width: 64, height: 64, ..Default::default() };
    synth::generate(&export, &opts).unwrap();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("pki"), &export, "");
    gw.append_config("[fleet]\nheartbeat_secs = 10\n");
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let rows = fleet(&hub);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["device"], "gw-test");
    assert_eq!(row["facility"], FACILITY);
    assert!(chrono::DateTime::parse_from_rfc3339(row["last_heartbeat"].as_str().unwrap()).is_ok());
    assert_eq!(row["os_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(row["policy_version"], "jed-basic@1");
    // The last heartbeat went after the uploads: it counts them.
    assert_eq!(row["queue"]["acked"], opts.exams as u64, "{row:#}");
    let hb = &row["heartbeat"];
    assert!(hb["bytes_uploaded"].as_u64().unwrap() > 0, "{hb:#}");
    assert_eq!(hb["key_store"], "none");
    assert_eq!(hb["vpn"], "off");
    assert!(hb["disk"]["total_bytes"].as_u64().unwrap() > 0);
    hub.stop();
}

#[test]
fn a_heartbeat_with_free_text_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut hub = Hub::init(&root.join("hub"));
    let pki = root.join("pki");
    hub.issue("gw-test", FACILITY, "device", &pki);
    hub.start();
    let body = serde_json::json!({
        "sent_at": "2026-12-05T10:00:00Z",
        "os_version": "0.1.0",
        "policy_version": "jed-basic@1",
        "queue": { "acked": 1 },
        "bytes_uploaded": 1,
        "quarantine": {},
        "last_error_class": "upload of 患者 山田太郎",
        "cert_not_after": null,
        "disk": { "total_bytes": 1, "available_bytes": 1 },
        "key_store": "none",
        "vpn": "off"
    });
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--request", "PUT", "--write-out", "\n%{http_code}"])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("device.crt"))
        .arg("--key")
        .arg(pki.join("device.key"))
        .args(["--header", "content-type: application/json", "--data-binary"])
        .arg(body.to_string())
        .arg(format!("{}/v1/heartbeat", hub.url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.ends_with("400"), "{text}");
    assert!(text.contains("last_error_class") && !text.contains("山田"), "{text}");
    assert!(fleet(&hub).is_empty(), "a refused heartbeat was stored");
    hub.stop();
}
