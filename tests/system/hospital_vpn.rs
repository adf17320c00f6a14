//! Issue 12: the WireGuard tunnel between box and hub, in network namespaces.
//!
//! Two namespaces joined by a veth pair (`net_faults::Link`): the society's (10.77.0.1) runs
//! the real `hub serve` with `[vpn]`, the hospital's (10.77.0.2) the real `gateway` with
//! `[vpn] mode = "wireguard"`. Neither kernel has WireGuard here, so both ends run boringtun
//! over `/dev/net/tun` (`implementation = "auto"` falls back to it), configured with wg(8).
//!
//! What must hold:
//! - the box enrolls at the hub's public address (enrollment only is served there), gets the
//!   tunnel's peer data, brings the tunnel up and uploads every exam through it;
//! - the hub's interface counted at least the uploaded bytes from the box's peer;
//! - the API cannot be reached outside the tunnel: nothing listens on the API port at the
//!   public address, and the public listener answers 404 to API routes;
//! - `hub device revoke` removes the box's peer from the hub's interface within seconds.

use crate::common::*;
use crate::hospital_proxy::{image_box, text};
use crate::net_faults::{log_tail, run_ok, Link};
use fgw_synth::{self as synth, SynthOptions};
use std::process::Command;
use std::time::{Duration, Instant};

/// Interface names unique to this test process (15 characters at most).
fn iface(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

/// The hub's WireGuard peers and bytes received from each (`wg show IF transfer`).
fn hub_transfer(link: &Link, hub_if: &str) -> Vec<(String, u64)> {
    let out = run_ok(link.in_hub("wg").args(["show", hub_if, "transfer"]));
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn uploads_travel_through_the_tunnel_and_the_api_is_not_reachable_outside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut link = Link::new();
    let hub_if = iface("fgwh");
    let box_if = iface("fgwb");

    // The hub: enrollment on the public address, the API on its tunnel address only.
    let hub_dir = root.join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let hub_config = hub_dir.join("hub.toml");
    std::fs::write(
        &hub_config,
        format!(
            "listen = \"10.77.0.1:8444\"\ndata_dir = \"data\"\n\
             server_names = [\"10.77.0.1\", \"10.88.0.1\"]\n\n\
             [vpn]\naddress = \"10.88.0.1/16\"\nendpoint = \"10.77.0.1:51820\"\n\
             interface = \"{hub_if}\"\nreconcile_secs = 1\n"
        ),
    )
    .unwrap();
    run_ok(Command::new(hub_bin()).args(["init", "--config"]).arg(&hub_config));
    let op = root.join("op-pki");
    run_ok(
        Command::new(hub_bin())
            .args(["issue-device", "--config"])
            .arg(&hub_config)
            .args(["--device", "operator", "--facility", FACILITY, "--role", "operator", "--out"])
            .arg(&op),
    );
    let hub_log = root.join("hub.log");
    let mut serve = link.in_hub(hub_bin());
    serve.args(["serve", "--config"]).arg(&hub_config).env("RUST_LOG", "debug");
    let hub_pid = link.spawn(serve, &hub_log);
    let limit = Duration::from_secs(40);
    link.wait_listening(hub_pid, "src = 10.88.0.1:8443", &hub_log, limit);
    link.wait_listening(hub_pid, "src = 10.77.0.1:8444", &hub_log, limit);

    // The box, imaged for the hub.
    let box_dir = root.join("box");
    std::fs::create_dir_all(&box_dir).unwrap();
    let export = root.join("export");
    let opts = SynthOptions {
        exams: 3,
        images_per_exam: 2,
        batch: "20261205T0900".into(),
        width: 320,
        height: 240,
        ..SynthOptions::default()
    };
    synth::generate(&export, &opts).unwrap();
    let config = box_dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "facility_id = \"{FACILITY}\"\nstate_dir = \"state\"\n\n\
             [identity]\nkey_store = \"insecure-file\"\n\
             idevid_cert = \"factory/idevid.crt\"\nca_cert = \"factory/ca.crt\"\n\n\
             [vpn]\nmode = \"wireguard\"\ninterface = \"{box_if}\"\n\n\
             [export]\nwatch_dir = \"{}\"\npoll_interval_secs = 1\n\n\
             [pipeline]\nretry_initial_ms = 50\nretry_max_ms = 200\npaused_retry_secs = 1\n\n\
             [uplink]\nhub_url = \"https://10.77.0.1:8444\"\nconnect_timeout_secs = 5\n",
            export.display()
        ),
    )
    .unwrap();
    let gateway = |args: &[&str]| {
        link.in_box(gateway_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    };
    let serial = image_box(&link, &config, &hub_config, &box_dir.join("factory"));

    // First start: enrollment at the public address, the tunnel, uploads inside it.
    let run = gateway(&["run", "--exit-when-idle"]);
    let run_log = text(&run.stderr);
    assert!(run.status.success(), "gateway run:\n{run_log}\nhub:\n{}", log_tail(&hub_log));
    assert!(run_log.contains("uploads go through the WireGuard tunnel"), "{run_log}");
    assert!(run_log.contains("https://10.88.0.1:8443"), "{run_log}");

    // At the hub, read inside the society's namespace at the tunnel address.
    let listing = run_ok(
        link.in_hub("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(op.join("ca.crt"))
            .arg("--cert")
            .arg(op.join("device.crt"))
            .arg("--key")
            .arg(op.join("device.key"))
            .arg(format!("https://10.88.0.1:8443/v1/facilities/{FACILITY}/exams")),
    );
    let listing: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert_eq!(listing.len(), opts.exams, "{listing:#?}");

    // The bytes came through the tunnel: the hub's interface received at least the bytes
    // of the objects the hub stored, from the box's peer (one peer: this box).
    let uploaded: u64 = crate::common::all_files(&hub_dir.join("data/objects"))
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    let transfer = hub_transfer(&link, &hub_if);
    assert_eq!(transfer.len(), 1, "the hub's peers: {transfer:?}");
    assert!(uploaded > 0 && transfer[0].1 >= uploaded, "{transfer:?} < {uploaded} bytes");

    // Outside the tunnel the API does not exist: nothing listens on its port at the public
    // address, and the public listener serves enrollment alone.
    let direct = link
        .in_box("curl")
        .args(["--silent", "--max-time", "10", "--insecure", "https://10.77.0.1:8443/v1/health"])
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(7), "connected to the API outside the tunnel");
    let public = run_ok(
        link.in_hub("curl")
            .args(["--silent", "--output", "/dev/null", "--write-out", "%{http_code}"])
            .arg("--cacert")
            .arg(op.join("ca.crt"))
            .arg("--cert")
            .arg(op.join("device.crt"))
            .arg("--key")
            .arg(op.join("device.key"))
            .arg(format!("https://10.77.0.1:8444/v1/facilities/{FACILITY}/exams")),
    );
    assert_eq!(public.trim(), "404", "the public listener served an API route");

    // Revocation closes the tunnel: the hub drops the box's peer at its next reconcile.
    let out = Command::new(hub_bin())
        .args(["device", "revoke", "--config"])
        .arg(&hub_config)
        .arg(&serial)
        .output()
        .unwrap();
    assert!(out.status.success(), "hub device revoke: {}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !hub_transfer(&link, &hub_if).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the revoked box is still a peer: {}",
            log_tail(&hub_log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
