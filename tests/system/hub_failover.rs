//! Issue 15 (the box's part): `[uplink] hub_urls` lists several hub nodes. The box sends to
//! the first; when a node cannot be reached it fails over to the next and finishes there,
//! with nothing lost and nothing stored twice. The two nodes here share one data directory
//! (embedded stores, one CA and registry), as nodes share PostgreSQL and S3 in production.

use crate::common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn the_box_fails_over_to_the_next_hub_node_when_its_node_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut a = Hub::init(&root.join("hub"));
    a.issue("gw-test", FACILITY, "device", &root.join("pki"));
    a.issue("ops", FACILITY, "operator", &root.join("ops"));
    let mut b = a.second_node();
    a.start();
    b.start();

    let export = root.join("export");
    let opts = SynthOptions {
        exams: 12,
        images_per_exam: 2,
        width: 256,
        height: 256,
        ..Default::default()
    };
    synth::generate(&export, &opts).unwrap();
    let gw = Gateway::new(&root.join("gw"), &a.url(), &root.join("pki"), &export, "");
    // hub_urls takes precedence over the generated hub_url.
    let cfg = std::fs::read_to_string(&gw.config).unwrap().replace(
        &format!("hub_url = \"{}\"", a.url()),
        &format!("hub_urls = [\"{}\", \"{}\"]", a.url(), b.url()),
    );
    std::fs::write(&gw.config, cfg).unwrap();
    let mut child = gw
        .cmd()
        .args(["run", "--exit-when-idle"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("gw.log")).unwrap())
        .spawn()
        .unwrap();
    // Node A dies once it has taken the first exams.
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.list(&root.join("ops"), FACILITY).is_empty() {
        assert!(Instant::now() < deadline, "no exam reached node A");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.stop();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the gateway did not finish after the failover");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", std::fs::read_to_string(root.join("gw.log")).unwrap());
    let listed = b.list(&root.join("ops"), FACILITY);
    assert_eq!(listed.len(), opts.exams, "every exam at the hub exactly once: {listed:#?}");
    let log = plain_log(&root.join("gw.log"));
    assert!(log.contains("failing over"), "the box moved to node B");
    let counts = gw.status_json()["counts"].clone();
    assert_eq!(counts["acked"], opts.exams as u64, "{counts}");
    b.stop();
}
