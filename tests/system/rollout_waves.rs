//! Issue 13: a rollout's waves with hundreds of simulated boxes. The real hub serves; each
//! box is an in-process client with its own device certificate (mutual TLS) that asks
//! `GET /v1/update` every half second, "installs" what it is offered and reports the outcome
//! in its heartbeat, as the gateway does. Waves start on time (no box of a later wave is
//! offered the release before its wave's start), the boxes of the second wave fail their
//! health checks, the rollout halts itself before the third wave starts, and an operator's
//! resume lets the third wave through.

use crate::common::*;
use fgw_format::package::protocol::{DiskUse, Heartbeat, UpdateOffers, UpdateReport};
use fgw_hub::rollout::bucket;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BOXES: usize = 300;
/// Seconds between wave starts.
const INTERVAL: u64 = 8;

fn hub_json(hub: &Hub, args: &[&str]) -> serde_json::Value {
    let out = Command::new(hub_bin()).args(args).arg("--config").arg(&hub.config).output().unwrap();
    assert!(out.status.success(), "hub {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn policy_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("policy.toml"), "[deid]\nid = \"jed-basic\"\nversion = 1\n").unwrap();
    std::fs::write(dir.join("profile.toml"), "# profile\n").unwrap();
    std::fs::write(dir.join("terms.toml"), "# terms\n").unwrap();
}

fn heartbeat(outcome: Option<&str>) -> Heartbeat {
    let mut updates = BTreeMap::new();
    if let Some(o) = outcome {
        updates.insert(
            "policy".to_string(),
            UpdateReport {
                version: "2".into(),
                outcome: o.into(),
                at: "2026-12-05T00:00:00Z".into(),
            },
        );
    }
    Heartbeat {
        sent_at: "2026-12-05T00:00:00Z".into(),
        os_version: "0.1.0".into(),
        policy_version: "jed-basic@1".into(),
        queue: BTreeMap::new(),
        bytes_uploaded: 0,
        quarantine: BTreeMap::new(),
        last_error_class: None,
        cert_not_after: None,
        disk: DiskUse { total_bytes: 1, available_bytes: 1 },
        key_store: "none".into(),
        vpn: "off".into(),
        updates,
    }
}

/// What one simulated box saw: when it was first offered the release (seconds after the
/// rollout's start) and what it reported.
#[derive(Debug, Default, Clone)]
struct Seen {
    offered_at: Option<f64>,
    states: Vec<String>,
}

#[test]
fn waves_start_on_time_and_the_rollout_halts_on_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Every simulated box keeps a connection open: room for all of them.
    let mut hub = Hub::init_with(&root.join("hub"), "max_connections = 1024");
    let cfg = fgw_hub::HubConfig::load(&hub.config).unwrap();
    let devices: Vec<String> = (0..BOXES).map(|i| format!("sim-{i:04}")).collect();
    for d in &devices {
        fgw_hub::ca::issue_device(
            &cfg,
            &fgw_format::ids::DeviceId::new(d.as_str()).unwrap(),
            &fgw_format::ids::FacilityId::new(format!("F{}", 1000 + bucket(d) as u32 % 50))
                .unwrap(),
            fgw_hub::Role::Device,
            &root.join("pki").join(d),
        )
        .unwrap();
    }
    hub.start();
    policy_folder(&root.join("policy"));
    hub_json(
        &hub,
        &[
            "release",
            "publish",
            "--kind",
            "policy",
            "--version",
            "2",
            root.join("policy").to_str().unwrap(),
        ],
    );
    let start = Instant::now();
    let ro = hub_json(
        &hub,
        &[
            "rollout",
            "create",
            "--release",
            "2",
            "--waves",
            "10,50,100",
            "--wave-interval-secs",
            &INTERVAL.to_string(),
            "--halt-percent",
            "20",
            "--halt-min",
            "5",
        ],
    );
    let id = ro["id"].to_string();

    fgw_tls::install_ring_provider();
    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = hub.url();
    for d in devices.clone() {
        let pki = root.join("pki").join(&d);
        let tls = fgw_tls::client_config(
            &pki.join("ca.crt"),
            &pki.join("device.crt"),
            &pki.join("device.key"),
        )
        .unwrap();
        let client =
            reqwest::Client::builder().use_preconfigured_tls(tls).http1_only().build().unwrap();
        let (seen, stop, url) = (seen.clone(), stop.clone(), url.clone());
        // Boxes of the second wave fail their health check after installing.
        let fails = (10..50).contains(&bucket(&d));
        rt.spawn(async move {
            let mut installed = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(resp) = client.get(format!("{url}/v1/update")).send().await {
                    if let Ok(offers) = resp.json::<UpdateOffers>().await {
                        let o = &offers.offers[0];
                        {
                            let mut s = seen.lock().unwrap();
                            let e = s.entry(d.clone()).or_default();
                            if e.states.last() != Some(&o.state) {
                                e.states.push(o.state.clone());
                            }
                            if o.version.is_some() && e.offered_at.is_none() {
                                e.offered_at = Some(start.elapsed().as_secs_f64());
                            }
                        }
                        if o.version.as_deref() == Some("2") && !installed {
                            installed = true;
                            let hb = heartbeat(Some(if fails { "failed" } else { "installed" }));
                            let _ =
                                client.put(format!("{url}/v1/heartbeat")).json(&hb).send().await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    // Until the third wave's start plus a margin: it must not start (halted before).
    std::thread::sleep(Duration::from_secs(2 * INTERVAL + 4).saturating_sub(start.elapsed()));
    let list = hub_json(&hub, &["rollout", "list"]);
    let r = list.as_array().unwrap().iter().find(|r| r["id"] == ro["id"]).unwrap().clone();
    assert_eq!(r["state"], "halted", "{r:#}");
    assert!(r["reason"].as_str().unwrap().starts_with("health_failed_"), "{r:#}");
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.len(), BOXES, "every box asked");
        let (mut w1, mut w2, mut w3) = (0, 0, 0);
        for d in &devices {
            let b = bucket(d);
            let e = &s[d];
            let at = e.offered_at;
            if b < 10 {
                w1 += 1;
                let at = at.unwrap_or_else(|| panic!("{d} (wave 1) never offered: {e:?}"));
                assert!(at < 3.0, "{d} (wave 1) offered at {at:.1}s");
            } else if b < 50 {
                w2 += 1;
                let at = at.unwrap_or_else(|| panic!("{d} (wave 2) never offered: {e:?}"));
                // Not before its wave's start (the hub's clock has second resolution).
                assert!(at >= INTERVAL as f64 - 1.0, "{d} (wave 2) offered early, at {at:.1}s");
                assert!(at < INTERVAL as f64 + 3.0, "{d} (wave 2) offered late, at {at:.1}s");
            } else {
                w3 += 1;
                assert_eq!(at, None, "{d} (wave 3) was offered the release: {e:?}");
                assert_eq!(e.states.last().map(String::as_str), Some("halted"), "{d}: {e:?}");
            }
        }
        assert!(w1 > 10 && w2 > 80 && w3 > 100, "waves of {w1}, {w2}, {w3} boxes");
    }
    // The operator resumes: the third wave, whose start has passed, is offered at once.
    let resumed = hub_json(&hub, &["rollout", "resume", &id]);
    assert_eq!(resumed["state"], "active");
    let resumed_at = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = seen.lock().unwrap().clone();
        let waiting: Vec<&String> =
            devices.iter().filter(|d| bucket(d) >= 50 && s[*d].offered_at.is_none()).collect();
        if waiting.is_empty() {
            assert!(devices
                .iter()
                .filter(|d| bucket(d) >= 50)
                .all(|d| s[d].offered_at.unwrap() >= resumed_at - 0.5));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} third-wave boxes not offered after resume",
            waiting.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(rt);
    hub.stop();
}
