//! The load generator, short version (issue 15; the long one is scripts/load-test.sh and
//! docs/hub-scale.md#load-test): 30 simulated devices of 6 facilities upload real packages
//! (the synthetic department, then `gateway deid`), two each, to one hub on the embedded
//! stores. Every package must be acknowledged and listed exactly once, with no error.
//! No timing is asserted: speed is measured in benchmarks only.

use crate::common::*;
use fgw_loadgen::{certs, corpus::Corpus, run};
use fgw_synth::{self as synth, SynthOptions};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const DEVICES: usize = 30;
const FACILITIES: usize = 6;
const PER_DEVICE: u32 = 2;

#[test]
fn thirty_devices_upload_every_package_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    let corpus_dir = tmp.path().join("corpus");
    let opts = SynthOptions {
        exams: 4,
        images_per_exam: 3,
        width: 320,
        height: 240,
        ..Default::default()
    };
    synth::generate(&export, &opts).unwrap();
    // No box configuration: `gateway deid` runs with a key of its own.
    run_ok(
        Command::new(gateway_bin())
            .args(["deid", "--facility", "LGCORPUS"])
            .arg(&export)
            .arg(&corpus_dir),
    );
    let corpus = Corpus::load(&corpus_dir).unwrap();
    assert_eq!(corpus.packages.len(), 4);
    // Device i uploads corpus packages (i * PER_DEVICE + seq) mod 4.
    let images: u64 = (0..DEVICES * PER_DEVICE as usize)
        .map(|n| corpus.packages[n % corpus.packages.len()].files.len() as u64)
        .sum();

    let mut hub = Hub::init(&tmp.path().join("hub"));
    let certs_dir = tmp.path().join("certs");
    certs::issue(Path::new(hub_bin()), &hub.config, DEVICES, FACILITIES, 1, &certs_dir).unwrap();
    hub.start();

    let opts = run::RunOptions {
        hub_urls: vec![hub.url()],
        certs: certs_dir,
        devices: DEVICES,
        packages_per_device: PER_DEVICE,
        concurrency: DEVICES,
        hub_pids: vec![hub.pid().unwrap()],
        store_pids: vec![],
        pad_to: 0,
        max_files: 0,
        run_id: "ci".into(),
        retries: 3,
        request_timeout: Duration::from_secs(60),
        verify: true,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let s = rt.block_on(run::run(Arc::new(corpus), &opts)).unwrap();
    let want = (DEVICES as u64) * u64::from(PER_DEVICE);
    assert_eq!(s.error_count, 0, "errors: {:?}", s.errors);
    assert_eq!((s.packages_ok, s.packages_failed, s.packages_duplicate), (want, 0, 0));
    assert_eq!(s.facilities, FACILITIES);
    assert_eq!(s.images, images);
    assert!(s.hub_cpu_secs.is_some());
    let v = s.verification.expect("the check ran");
    assert!(v.ok, "{v:?}");
    assert_eq!((v.acknowledged, v.listed_once, v.other_rows), (want, want, 0));
    // And the hub's own listing, through the test harness, agrees per facility.
    let operator = certs::device_dir(&tmp.path().join("certs"), certs::OPERATOR);
    let listed: usize =
        (0..FACILITIES).map(|f| hub.list(&operator, &format!("LG{f:04}")).len()).sum();
    assert_eq!(listed as u64, want);
}
