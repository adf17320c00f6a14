//! The facility's keys outlive the box (issue 12): box A's recovery kit, imported on a fresh
//! box B of the same facility, makes B produce A's very packages (same pseudonyms, date
//! shifts, UIDs, so the same package ids) from the same export. One share is refused, and a
//! box without the kit makes other packages, which shows the comparison can fail.
//! Real `gateway` processes, each box with its own configuration and state directory.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `gateway deid` with the box's configuration (its key) into `out`: the package ids of
/// report.json.
fn deid_package_ids(gw: &Gateway, export: &Path, out: &Path) -> BTreeSet<String> {
    ok(gw.cmd().arg("deid").arg(export).arg(out).output().unwrap(), "gateway deid");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report["packages"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_replacement_box_with_two_shares_makes_the_same_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    let opts = SynthOptions {
        exams: 4,
        images_per_exam: 1,
        width: 64,
        height: 64,
        ..SynthOptions::default()
    };
    synth::generate(&export, &opts).unwrap();
    // `gateway deid` needs no hub: every box keeps the uplink's defaults.
    let new_box = |name: &str| {
        Gateway::new(&root.join(name), "https://localhost:8443", &root.join("pki"), &export, "")
    };

    // Box A: its packages, then its recovery kit.
    let a = new_box("a");
    let ids_a = deid_package_ids(&a, &export, &root.join("out-a"));
    assert_eq!(ids_a.len(), opts.exams, "{ids_a:?}");
    let kit = root.join("kit");
    let said = ok(
        a.cmd().args(["secrets", "export-recovery", "--out"]).arg(&kit).output().unwrap(),
        "export-recovery",
    );
    assert!(said.contains("society") && said.contains(&kit.display().to_string()), "{said}");
    let share = |i: u32| kit.join(format!("recovery-share-{i}-of-3.txt"));
    assert_eq!(mode(&kit), 0o700);
    let root_key_a = std::fs::read(a.state_dir().join("secrets/root.key")).unwrap();
    let root_hex_a: String = root_key_a.iter().map(|b| format!("{b:02x}")).collect();
    for i in 1..=3 {
        assert_eq!(mode(&share(i)), 0o600, "share {i}");
        let text = std::fs::read_to_string(share(i)).unwrap();
        assert!(text.starts_with("facility-gateway recovery share v1\n"), "{text}");
        assert!(text.contains(&format!("facility: {FACILITY}")), "{text}");
        // The share, never the root; and no path of the box.
        let flat: String = text.split_whitespace().collect();
        assert!(!flat.contains(&root_hex_a[..16]), "share {i} holds the root");
        assert!(!text.contains(&root.display().to_string()), "share {i} names a path");
    }
    // A second export never writes over the first.
    let again = a.cmd().args(["secrets", "export-recovery", "--out"]).arg(&kit).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Box B: fresh state, same facility; shares 3 and 1 of the kit.
    let b = new_box("b");
    let said = ok(
        b.cmd().args(["secrets", "import-recovery"]).args([share(3), share(1)]).output().unwrap(),
        "import-recovery",
    );
    assert!(said.contains("root secret written"), "{said}");
    let root_key_b = b.state_dir().join("secrets/root.key");
    assert_eq!(mode(&root_key_b), 0o600);
    let ids_b = deid_package_ids(&b, &export, &root.join("out-b"));
    assert_eq!(ids_b, ids_a, "the replacement box made other packages");
    // Importing again on a box that has the same root: said, and nothing changes.
    let said = ok(
        b.cmd().args(["secrets", "import-recovery"]).args([share(2), share(3)]).output().unwrap(),
        "second import-recovery",
    );
    assert!(said.contains("already has this root secret"), "{said}");

    // Box C: one share is not enough; nothing is written, and no share bytes are shown.
    let c = new_box("c");
    let out = c.cmd().args(["secrets", "import-recovery"]).arg(share(2)).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 distinct share(s) given, but 2"), "{err}");
    let data_line = std::fs::read_to_string(share(2)).unwrap();
    let data_line = data_line.lines().find(|l| l.starts_with("data:")).unwrap();
    assert!(!err.contains(&data_line[6..20]), "share bytes in an error: {err}");
    assert!(!c.state_dir().join("secrets/root.key").exists());

    // Box D: no kit, its own new root: other package ids (so the equality above can fail).
    let d = new_box("d");
    let ids_d = deid_package_ids(&d, &export, &root.join("out-d"));
    assert_eq!(ids_d.len(), opts.exams);
    assert!(ids_d.is_disjoint(&ids_a), "a box without the kit made A's packages");
    // And it keeps its own root when offered A's kit.
    let own = std::fs::read(d.state_dir().join("secrets/root.key")).unwrap();
    let out =
        d.cmd().args(["secrets", "import-recovery"]).args([share(1), share(2)]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different root secret"));
    assert_eq!(std::fs::read(d.state_dir().join("secrets/root.key")).unwrap(), own);
}

#[test]
fn a_mistyped_share_or_another_facilitys_box_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (pki, watch) = (root.join("pki"), root.join("export"));
    let a = Gateway::new(&root.join("a"), "https://localhost:8443", &pki, &watch, "");
    let kit = root.join("kit");
    ok(
        a.cmd()
            .args(["secrets", "export-recovery", "--shares", "5", "--threshold", "3", "--out"])
            .arg(&kit)
            .output()
            .unwrap(),
        "export-recovery 3 of 5",
    );
    let share = |i: u32| kit.join(format!("recovery-share-{i}-of-5.txt"));
    // One digit of share 4 mistyped while copying it from paper.
    let typed: PathBuf = root.join("typed-share-4.txt");
    let text = std::fs::read_to_string(share(4)).unwrap();
    let line = text.lines().find(|l| l.starts_with("data:")).unwrap();
    let last = line.chars().last().unwrap();
    let swapped = format!("{}{}", &line[..line.len() - 1], if last == 'a' { 'b' } else { 'a' });
    std::fs::write(&typed, text.replace(line, &swapped)).unwrap();
    let b = Gateway::new(&root.join("b"), "https://localhost:8443", &pki, &watch, "");
    let out = b
        .cmd()
        .args(["secrets", "import-recovery"])
        .args([share(1), typed.clone(), share(5)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typed-share-4.txt") && err.contains("checksum"), "{err}");
    assert!(!b.state_dir().join("secrets/root.key").exists());
    // A box configured for another facility refuses the kit.
    let other = root.join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&b.config)
            .unwrap()
            .replace(&format!("facility_id = \"{FACILITY}\""), "facility_id = \"F0999\""),
    )
    .unwrap();
    let out = std::process::Command::new(gateway_bin())
        .arg("--config")
        .arg(&other)
        .args(["secrets", "import-recovery"])
        .args([share(1), share(2), share(3)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(FACILITY) && err.contains("F0999"), "{err}");
    // Three good shares of five on box B: written.
    ok(
        b.cmd()
            .args(["secrets", "import-recovery"])
            .args([share(5), share(2), share(4)])
            .output()
            .unwrap(),
        "import 3 of 5",
    );
    assert_eq!(
        std::fs::read(b.state_dir().join("secrets/root.key")).unwrap(),
        std::fs::read(a.state_dir().join("secrets/root.key")).unwrap()
    );
}
