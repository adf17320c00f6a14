//! Issue 13: an OS release is downloaded through the uplink resumably and verified before
//! anything else looks at it. A partial download left by a cut resumes from where it
//! stopped (`Range`); a partial file whose bytes are not the release's fails the signed
//! hash and is thrown away, so the next attempt starts over; a complete download that TUF
//! verified then goes to RAUC, which refuses a file that is not a signed bundle.

use crate::common::*;
use std::process::{Command, Output};

const MIB: usize = 1 << 20;

fn hub_ok(hub: &Hub, args: &[&str]) {
    let out = Command::new(hub_bin()).args(args).arg("--config").arg(&hub.config).output().unwrap();
    assert!(out.status.success(), "hub {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn apply(gw: &Gateway) -> (serde_json::Value, String) {
    let out: Output =
        gw.cmd().args(["update", "apply", "--kind", "os", "--version", "9"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("no outcome: {stderr}"));
    (v[0].clone(), stderr)
}

#[test]
fn an_os_release_download_resumes_and_a_wrong_partial_is_thrown_away() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("pki"));
    let tuf_root = root.join("tuf-root.json");
    hub_ok(&hub, &["release", "root", "--out", tuf_root.to_str().unwrap()]);
    // 3 MiB that are not a RAUC bundle: TUF can verify them, RAUC will refuse them.
    let bundle: Vec<u8> =
        (0..3 * MIB).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = root.join("fgw-os-9.raucb");
    std::fs::write(&file, &bundle).unwrap();
    hub_ok(&hub, &["release", "publish", "--kind", "os", "--version", "9", file.to_str().unwrap()]);
    hub.start();

    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("pki"), &export, "");
    gw.append_config(&format!("[update]\ntuf_root = \"{}\"\n", tuf_root.display()));
    let partial = gw.state_dir().join("updates/partial/os-9.raucb.partial");
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();

    // A cut left 1 MiB that is not the release's: the download resumes after it, the whole
    // fails the signed hash, and the partial file is gone.
    std::fs::write(&partial, vec![0u8; MIB]).unwrap();
    let (o, log) = apply(&gw);
    assert_eq!(o["outcome"], "refused", "{o:#}");
    assert!(o["detail"].as_str().unwrap().starts_with("tuf_mismatch"), "{o:#}");
    assert!(log.contains("release download resumed"), "{log}");
    assert!(!partial.exists());

    // A cut left the first MiB of the release: it resumes and TUF verifies the whole; RAUC
    // then refuses the file (it is no bundle), and nothing of it stays.
    std::fs::write(&partial, &bundle[..MIB]).unwrap();
    let (o, log) = apply(&gw);
    assert!(log.contains("release download resumed"), "{log}");
    assert_eq!(o["outcome"], "refused", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    // RAUC's refusal names the downloaded file.
    assert!(detail.contains("os-9.raucb"), "{o:#}");
    assert!(!detail.starts_with("tuf_"), "TUF verified the resumed download: {o:#}");
    assert!(!partial.exists());
    assert!(!gw.state_dir().join("updates/os-9.raucb").exists(), "a refused bundle is not kept");
    hub.stop();
}
