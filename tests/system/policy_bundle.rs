//! Issue 13: `gateway policy show --json` and `gateway policy export DIR`, the form a policy
//! release is made from, with the real binary.

use crate::common::*;
use std::collections::BTreeMap;

#[test]
fn the_active_policy_is_shown_and_exported_as_a_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let gw = Gateway::new(&root.join("gw"), "https://127.0.0.1:9", &root.join("pki"), root, "");
    gw.append_config("[deid]\nid = \"jed-basic\"\nversion = 7\n");
    let out = gw.cmd().args(["policy", "show", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((shown["id"].as_str(), shown["version"].as_u64()), (Some("jed-basic"), Some(7)));
    assert_eq!(shown["profile"], "reference");

    let dir = root.join("release");
    let out = gw.cmd().args(["policy", "export"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "policy");
    assert_eq!(manifest["version"], 7);
    let files: BTreeMap<String, String> =
        serde_json::from_value(manifest["files"].clone()).unwrap();
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["policy.toml", "profile.toml", "terms.toml"]
    );
    for (name, sha) in &files {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&fgw_format::ids::Sha256Hex::of(&bytes).to_string(), sha, "{name}");
    }
    let policy = std::fs::read_to_string(dir.join("policy.toml")).unwrap();
    assert!(policy.starts_with("[deid]") && policy.contains("version = 7"), "{policy}");
    // A second export never writes over the first.
    let again = gw.cmd().args(["policy", "export"]).arg(&dir).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
