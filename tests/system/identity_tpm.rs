//! The box's identity in a TPM (issue 12), end to end: swtpm (Debian's, started here) as the
//! box's TPM, a real `hub serve`, the real `gateway` binary.
//!
//! - `gateway identity init --json` creates the device identity key in the TPM and writes a
//!   CSR; `hub device add` signs the IDevID; the box, configured with `[identity] key_store =
//!   "tpm"` and no client certificate or key, enrolls at its first start and uploads exams
//!   over mutual TLS signed by the TPM; `identity show` reports the store and the
//!   operational certificate; a renewal (`identity enroll --renew`) gives a new certificate
//!   the next uploads use;
//! - no private key material is in any of the box's files;
//! - the box's state folder and identity files copied to a second box with another TPM are
//!   useless there: it cannot enroll, with the copied IDevID or with its own key;
//! - `hub device revoke` cuts the box: renewal is refused and uploads pause.
//! - the root secret (the facility keys) is sealed in the TPM, never in a file: a copied state
//!   folder on another TPM is refused; a recovery kit imported on a box with another TPM is
//!   sealed there and gives the same packages; a root file from before is sealed, then deleted.

use crate::common::*;
use fgw_identity::swtpm::Swtpm;
use fgw_synth::{self as synth, SynthOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn synth_batch(export: &Path, exams: usize, batch: &str) {
    let opts = SynthOptions {
        exams,
        images_per_exam: 1,
        batch: batch.into(),
        width: 160,
        height: 128,
        ..SynthOptions::default()
    };
    synth::generate(export, &opts).unwrap();
}

/// A box: its folder, its TPM, its configuration (`[identity]` with the TPM, `[uplink]` with
/// the hub's URL only).
struct TpmBox {
    gw: Gateway,
    dir: PathBuf,
    _tpm: Swtpm,
}

impl TpmBox {
    fn new(dir: &Path, hub_url: &str, export: &Path) -> TpmBox {
        std::fs::create_dir_all(dir).unwrap();
        let tpm = Swtpm::start(&dir.join("tpm-state")).expect("swtpm");
        let config = dir.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "facility_id = \"{FACILITY}\"\nstate_dir = \"state\"\n\n\
                 [identity]\nkey_store = \"tpm\"\ntpm_tcti = \"{}\"\n\
                 idevid_cert = \"factory/idevid.crt\"\nca_cert = \"factory/ca.crt\"\n\n\
                 [export]\nwatch_dir = \"{}\"\npoll_interval_secs = 1\n\n\
                 [pipeline]\nretry_initial_ms = 50\nretry_max_ms = 200\npaused_retry_secs = 1\n\n\
                 [uplink]\nhub_url = \"{hub_url}\"\n",
                tpm.tcti(),
                export.display()
            ),
        )
        .unwrap();
        let gw = Gateway { dir: dir.to_path_buf(), config, watch: export.to_path_buf() };
        TpmBox { gw, dir: dir.to_path_buf(), _tpm: tpm }
    }

    fn gateway(&self, args: &[&str]) -> Output {
        self.gw.cmd().args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.gateway(args);
        assert!(out.status.success(), "gateway {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn run_until_idle(&self) -> Output {
        self.gw.run_until_idle(Duration::from_secs(180))
    }

    fn factory(&self) -> PathBuf {
        self.dir.join("factory")
    }
}

fn plain(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hub_device(hub: &Hub, args: &[&str]) -> Output {
    let (sub, rest) = args.split_first().unwrap();
    Command::new(hub_bin())
        .args(["device", sub, "--config"])
        .arg(&hub.config)
        .args(rest)
        .output()
        .unwrap()
}

/// Imaging: the identity key in the TPM, its CSR signed by the manufacturing CA, the IDevID
/// and the CA put on the box. Returns the serial.
fn image(b: &TpmBox, hub: &Hub) -> String {
    let init = b.json(&["identity", "init", "--json"]);
    let serial = init["serial"].as_str().unwrap().to_string();
    let csr = PathBuf::from(init["csr"].as_str().unwrap());
    assert!(serial.starts_with("fgw-") && csr.is_file(), "{init}");
    // Again: the same key, the same serial.
    assert_eq!(b.json(&["identity", "init", "--json"])["serial"], serial.as_str());
    let out = hub_device(
        hub,
        &[
            "add",
            "--serial",
            &serial,
            "--facility",
            FACILITY,
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            b.factory().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "hub device add: {}", plain(&out.stderr));
    assert!(b.factory().join("idevid.crt").is_file() && b.factory().join("ca.crt").is_file());
    serial
}

/// Every file under `dir` holding PEM private-key armour or named as a key file.
fn private_key_files(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|(p, bytes)| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            contains(bytes, b"PRIVATE KEY")
                || name.ends_with(".key")
                || name.contains("insecure-key")
        })
        .map(|(p, _)| p)
        // The secret store's root (pseudonym keys) is the recovery kit's matter, not a TLS
        // key; the TPM simulator's own state stands for the chip.
        .filter(|p| !p.ends_with("secrets/root.key") && !p.starts_with(dir.join("tpm-state")))
        .collect()
}

#[test]
fn a_box_enrolls_with_its_tpm_uploads_renews_and_is_cut_by_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    let mut hub = Hub::init_with(&root.join("hub"), "operational_cert_days = 30");
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let a = TpmBox::new(&root.join("box-a"), &hub.url(), &export);

    let serial = image(&a, &hub);
    let shown = a.json(&["identity", "show", "--json"]);
    assert_eq!(shown["key_store"], "tpm");
    assert_eq!(shown["serial"], serial.as_str());
    assert!(shown["operational"].is_null(), "not enrolled yet: {shown}");

    // First start: enrollment, then uploads with the TPM-held operational key.
    synth_batch(&export, 3, "20261204T0900");
    let out = a.run_until_idle();
    assert!(out.status.success(), "{}", plain(&out.stderr));
    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 3);
    let shown = a.json(&["identity", "show", "--json"]);
    assert_eq!(shown["key_store"], "tpm");
    let first_not_after = shown["operational"]["not_after"].as_str().unwrap().to_string();
    let first_cert = std::fs::read(a.dir.join("state/identity/operational.crt")).unwrap();

    // Renewal: a new certificate, used by the next uploads.
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = a.json(&["identity", "enroll", "--renew", "--json"]);
    assert!(renewed["not_after"].as_str().unwrap() >= first_not_after.as_str(), "{renewed}");
    let second_cert = std::fs::read(a.dir.join("state/identity/operational.crt")).unwrap();
    assert_ne!(first_cert, second_cert, "renewal gave a new certificate");
    synth_batch(&export, 2, "20261204T1000");
    let out = a.run_until_idle();
    assert!(out.status.success(), "{}", plain(&out.stderr));
    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 5);

    // No private key material in the box's files (configuration, factory files, state), and
    // no root secret file: the root is sealed in the TPM.
    assert_eq!(private_key_files(&a.dir), Vec::<PathBuf>::new());
    assert!(!a.dir.join("state/secrets/root.key").exists());

    // The state folder and factory files copied to a box with another TPM: useless there.
    let b = TpmBox::new(&root.join("box-b"), &hub.url(), &root.join("export-b"));
    for sub in ["state", "factory"] {
        let out = Command::new("cp").arg("-a").arg(a.dir.join(sub)).arg(&b.dir).output().unwrap();
        assert!(out.status.success());
    }
    let out = b.gateway(&["identity", "enroll", "--renew"]);
    assert!(!out.status.success(), "a copied state enrolled on another TPM");
    // Its own identity key does not match the copied IDevID either.
    b.json(&["identity", "init", "--json"]);
    std::fs::remove_file(b.dir.join("state/identity/operational.crt")).unwrap();
    let out = b.gateway(&["identity", "enroll"]);
    assert!(!out.status.success(), "the copied IDevID worked with another key");
    assert!(plain(&out.stderr).contains("IDevID certificate"), "{}", plain(&out.stderr));
    synth_batch(&root.join("export-b"), 1, "20261204T0930");
    let out = b.run_until_idle();
    assert!(!out.status.success(), "box B ran with A's identity");
    assert!(plain(&out.stderr).contains("IDevID certificate"), "{}", plain(&out.stderr));
    // A's root secret is in A's TPM: B's TPM has none, and B does not make one over A's data.
    let out = b.gateway(&["deid", export.to_str().unwrap(), root.join("out-b").to_str().unwrap()]);
    assert!(!out.status.success(), "box B made packages with A's state");
    let err = plain(&out.stderr);
    assert!(err.contains("no root secret is sealed in the TPM"), "{err}");
    assert!(!b.dir.join("state/secrets/root.key").exists());

    // Revocation: renewal is refused, and uploads pause.
    let out = hub_device(&hub, &["revoke", &serial]);
    assert!(out.status.success(), "hub device revoke: {}", plain(&out.stderr));
    let out = a.gateway(&["identity", "enroll", "--renew"]);
    assert!(!out.status.success(), "a revoked box renewed");
    assert!(plain(&out.stderr).contains("refused"), "{}", plain(&out.stderr));
    synth_batch(&export, 1, "20261204T1100");
    let log = a.dir.join("revoked.log");
    let mut daemon = a.gw.spawn_run(&log);
    let deadline = Instant::now() + Duration::from_secs(90);
    let paused = loop {
        let status = a.gateway(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        if v["uplink"]["state"] == "paused" {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(paused, "uplink not paused after revocation: {}", plain_log(&log));
    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 5, "nothing after revocation");
    hub.stop();
}

/// `gateway deid` with the box's configuration (its sealed root): the package ids made.
fn deid_ids(b: &TpmBox, export: &Path, out: &Path) -> Vec<String> {
    let run = b.gateway(&["deid", export.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(run.status.success(), "gateway deid: {}", plain(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let mut ids: Vec<String> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_root_secret_is_sealed_in_the_tpm_and_a_recovery_kit_reseals_it_in_another() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    synth_batch(&export, 3, "20261205T0900");
    // `deid` and the recovery kit need no hub; the URL is never dialled.
    let hub_url = "https://127.0.0.1:9";
    let a = TpmBox::new(&root.join("box-a"), hub_url, &export);
    let ids_a = deid_ids(&a, &export, &root.join("out-a"));
    assert_eq!(ids_a.len(), 3);
    assert!(!a.dir.join("state/secrets/root.key").exists(), "the root is in a file");
    // The same root next time (unsealed, not made again).
    assert_eq!(deid_ids(&a, &export, &root.join("out-a2")), ids_a);

    // A recovery kit from A, imported on B (another TPM): sealed in B's TPM, same packages.
    let kit = root.join("kit");
    let out = a.gateway(&["secrets", "export-recovery", "--out", kit.to_str().unwrap()]);
    assert!(out.status.success(), "export-recovery: {}", plain(&out.stderr));
    let share = |i: u32| kit.join(format!("recovery-share-{i}-of-3.txt"));
    let b = TpmBox::new(&root.join("box-b"), hub_url, &export);
    let out = b.gw.cmd().args(["secrets", "import-recovery"]).args([share(1), share(3)]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "import-recovery: {}", plain(&out.stderr));
    let said = plain(&out.stdout);
    assert!(said.contains("root secret written to TPM handle 0x81020004"), "{said}");
    assert!(!b.dir.join("state/secrets/root.key").exists());
    assert_eq!(deid_ids(&b, &export, &root.join("out-b")), ids_a, "B made other packages");

    // C: a box whose root was a file (development store before) moves it into its TPM at the
    // next start and deletes the file; its packages stay its own.
    let c = TpmBox::new(&root.join("box-c"), hub_url, &export);
    let plain_config = c.dir.join("file-root.toml");
    let text = std::fs::read_to_string(&c.gw.config).unwrap();
    let without_identity: String = {
        let start = text.find("[identity]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        format!("{}{}", &text[..start], &text[end + 2..])
    };
    std::fs::write(&plain_config, without_identity).unwrap();
    let file_gw =
        Gateway { dir: c.gw.dir.clone(), config: plain_config, watch: c.gw.watch.clone() };
    let out = file_gw.cmd().args(["deid"]).arg(&export).arg(root.join("out-c1")).output().unwrap();
    assert!(out.status.success(), "deid with a file root: {}", plain(&out.stderr));
    assert!(c.dir.join("state/secrets/root.key").is_file());
    let ids_c_file = {
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("out-c1").join("report.json")).unwrap(),
        )
        .unwrap();
        let mut v: Vec<String> = report["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_ne!(ids_c_file, ids_a, "C has its own root");
    assert_eq!(deid_ids(&c, &export, &root.join("out-c2")), ids_c_file, "root changed");
    assert!(!c.dir.join("state/secrets/root.key").exists(), "the root file was kept");
    // And C's TPM now refuses A's kit: it holds another root.
    let out = c.gw.cmd().args(["secrets", "import-recovery"]).args([share(1), share(2)]).output();
    let out = out.unwrap();
    assert!(!out.status.success());
    assert!(plain(&out.stderr).contains("different root secret"), "{}", plain(&out.stderr));
}
