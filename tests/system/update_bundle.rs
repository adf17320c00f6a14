//! Issue 13: OS update bundles made and checked with Debian's RAUC. Bundles are built here
//! with `rauc bundle` (verity format, signed with a throwaway update key from openssl), and
//! the real `gateway update verify` accepts the genuine one and refuses, by name:
//! - `bundle_signed_by_an_attacker`: a valid bundle signed by a key the keyring does not hold;
//! - `bundle_for_other_hardware`: signed by the update key, for another `compatible`;
//! - `bundle_with_a_cut_signature`: the genuine bundle truncated (its signature gone);
//! - `not_a_bundle`: a file that is not a RAUC bundle.
//!
//! The payload's own integrity (dm-verity) is RAUC's at install: shown with `rauc extract`,
//! which refuses the genuine bundle with one payload byte changed.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed signing certificate and key (PEM) under `dir`.
fn signing_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-nodes", "-days", "30", "-subj", &format!("/CN={name}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// A verity bundle for `compatible` at `version`, signed with `(cert, key)`.
fn bundle(
    dir: &Path,
    name: &str,
    compatible: &str,
    version: &str,
    signer: &(PathBuf, PathBuf),
) -> PathBuf {
    let content = dir.join(format!("{name}-content"));
    std::fs::create_dir_all(&content).unwrap();
    // Incompressible bytes (a xorshift stream): RAUC wants a squashfs above one block.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let image: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(content.join("rootfs.img"), image).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n\
             [image.rootfs]\nfilename=rootfs.img\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}.raucb"));
    run_ok(
        Command::new("rauc")
            .arg("bundle")
            .arg("--cert")
            .arg(&signer.0)
            .arg("--key")
            .arg(&signer.1)
            .arg(&content)
            .arg(&out),
    );
    out
}

#[test]
fn genuine_bundles_are_accepted_and_each_forgery_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let society = signing_key(root, "society-update");
    let attacker = signing_key(root, "attacker");
    let gw = Gateway::new(&root.join("gw"), "https://127.0.0.1:9", &root.join("pki"), root, "");
    gw.append_config(&format!(
        "[update]\nkeyring = \"{}\"\ncompatible = \"fgw-gateway-x86_64\"\n",
        society.0.display()
    ));
    let verify =
        |bundle: &Path| gw.cmd().args(["update", "verify", "--json"]).arg(bundle).output().unwrap();

    let genuine = bundle(root, "genuine", "fgw-gateway-x86_64", "0.2.0", &society);
    let out = verify(&genuine);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["version"], "0.2.0");
    assert_eq!(info["images"], serde_json::json!(["rootfs"]));

    let refused = |bundle: &Path, says: &str| {
        let out = verify(bundle);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{} was accepted", bundle.display());
        assert!(err.contains(&bundle.display().to_string()) && err.contains(says), "{err}");
    };
    let signed_by_an_attacker =
        bundle(root, "bundle_signed_by_an_attacker", "fgw-gateway-x86_64", "0.2.0", &attacker);
    refused(&signed_by_an_attacker, "refused by rauc");
    let for_other_hardware =
        bundle(root, "bundle_for_other_hardware", "fgw-gateway-arm64", "0.2.0", &society);
    refused(&for_other_hardware, "this box is \"fgw-gateway-x86_64\"");
    let bytes = std::fs::read(&genuine).unwrap();
    let cut = root.join("bundle_with_a_cut_signature.raucb");
    std::fs::write(&cut, &bytes[..bytes.len() - 512]).unwrap();
    refused(&cut, "refused by rauc");
    let not_a_bundle = root.join("not_a_bundle.raucb");
    std::fs::write(&not_a_bundle, b"MZ this is not a bundle").unwrap();
    refused(&not_a_bundle, "refused by rauc");

    // A payload byte changed: the signature (over the manifest and the verity root hash)
    // still verifies, and RAUC's dm-verity check refuses the data, as at install.
    let mut tampered = bytes.clone();
    tampered[5000] ^= 0xff;
    let tampered_path = root.join("bundle_with_a_tampered_payload.raucb");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let out = Command::new("rauc")
        .arg("extract")
        .arg("--keyring")
        .arg(&society.0)
        .arg(&tampered_path)
        .arg(root.join("extracted"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "rauc extracted a tampered payload");
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupted"));
}
