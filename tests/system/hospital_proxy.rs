//! Issue 12: a hospital that lets nothing out but through its HTTP proxy. The box enrolls
//! and uploads through the proxy's CONNECT tunnel, with basic authentication, and cannot
//! reach the hub any other way.
//!
//! Two network namespaces joined by a veth pair (`net_faults::Link`): the society side runs
//! the real `hub serve` on its own loopback only (127.0.0.1:8443) and Debian's tinyproxy on
//! the link address (10.77.0.1:3128), which relays CONNECT to that loopback. The box side
//! runs the real `gateway` with `hub_url = "https://127.0.0.1:8443"`: dialled directly, that
//! is the box's own loopback, where nothing listens; only through the proxy does it reach
//! the hub. tinyproxy's log shows the CONNECT requests it relayed.
//!
//! The box's key store is `insecure-file` here (the proxy is what is tested; TPM-signed
//! enrollment is `identity_tpm.rs`, and swtpm listens on the host's loopback, which the box
//! namespace cannot reach).

use crate::common::*;
use crate::net_faults::{run_ok, Link};
use fgw_synth::{self as synth, SynthOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PROXY_ADDR: &str = "10.77.0.1:3128";
const PASSWORD: &str = "pr0xy-Pass-4417";

/// tinyproxy in the hub namespace, logging CONNECT lines to `log`.
fn start_proxy(link: &mut Link, dir: &Path) -> PathBuf {
    let conf = dir.join("tinyproxy.conf");
    let log = dir.join("tinyproxy.log");
    std::fs::write(
        &conf,
        format!(
            "Port 3128\nListen 10.77.0.1\nTimeout 60\nMaxClients 20\nLogLevel Connect\n\
             LogFile \"{}\"\nBasicAuth fgw {PASSWORD}\nConnectPort 8443\n",
            log.display()
        ),
    )
    .unwrap();
    let mut cmd = link.in_hub("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&conf);
    let stderr = dir.join("tinyproxy.stderr");
    let pid = link.spawn(cmd, &stderr);
    link.wait_listening(pid, "sport = :3128", &stderr, Duration::from_secs(20));
    log
}

/// The hub: listening on the hub namespace's loopback only.
fn start_hub(link: &mut Link, dir: &Path) -> PathBuf {
    let hub_dir = dir.join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let config = hub_dir.join("hub.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:8443\"\ndata_dir = \"data\"\nserver_names = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    run_ok(Command::new(hub_bin()).args(["init", "--config"]).arg(&config));
    run_ok(
        Command::new(hub_bin())
            .args(["issue-device", "--config"])
            .arg(&config)
            .args(["--device", "operator", "--facility", FACILITY, "--role", "operator", "--out"])
            .arg(dir.join("op-pki")),
    );
    let mut cmd = link.in_hub(hub_bin());
    cmd.args(["serve", "--config"]).arg(&config).env("RUST_LOG", "debug");
    let log = dir.join("hub.log");
    let pid = link.spawn(cmd, &log);
    link.wait_listening(pid, "sport = :8443", &log, Duration::from_secs(30));
    config
}

/// Imaging a box whose configuration is `config`, inside the box namespace: the identity key
/// and its CSR (`gateway identity init`), the IDevID signed by the hub at `hub_config` for
/// `FACILITY` into `factory` (`hub device add`). Returns the serial.
pub(crate) fn image_box(link: &Link, config: &Path, hub_config: &Path, factory: &Path) -> String {
    let init = link
        .in_box(gateway_bin())
        .arg("--config")
        .arg(config)
        .args(["identity", "init", "--json"])
        .output()
        .unwrap();
    assert!(init.status.success(), "identity init: {}", text(&init.stderr));
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let serial = init["serial"].as_str().unwrap().to_string();
    let out = Command::new(hub_bin())
        .args(["device", "add", "--config"])
        .arg(hub_config)
        .args(["--serial", &serial, "--facility", FACILITY, "--csr"])
        .arg(init["csr"].as_str().unwrap())
        .arg("--out")
        .arg(factory)
        .output()
        .unwrap();
    assert!(out.status.success(), "hub device add: {}", text(&out.stderr));
    serial
}

/// The box's configuration: enrollment with the development key store, the hub's URL, and
/// `proxy` lines in `[uplink]`.
fn write_box_config(dir: &Path, export: &Path, proxy: &str) -> PathBuf {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "facility_id = \"{FACILITY}\"\nstate_dir = \"state\"\n\n\
             [identity]\nkey_store = \"insecure-file\"\n\
             idevid_cert = \"factory/idevid.crt\"\nca_cert = \"factory/ca.crt\"\n\n\
             [export]\nwatch_dir = \"{}\"\npoll_interval_secs = 1\n\n\
             [pipeline]\nretry_initial_ms = 50\nretry_max_ms = 200\npaused_retry_secs = 1\n\n\
             [uplink]\nhub_url = \"https://127.0.0.1:8443\"\nconnect_timeout_secs = 5\n{proxy}\n",
            export.display()
        ),
    )
    .unwrap();
    config
}

fn gateway_in_box(link: &Link, config: &Path, args: &[&str]) -> std::process::Output {
    link.in_box(gateway_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "debug")
        // The environment's proxy variables must not matter: the route is the configuration.
        // They name the working proxy, so a box that used them would get through.
        .env("HTTPS_PROXY", format!("http://fgw:{PASSWORD}@{PROXY_ADDR}"))
        .env("https_proxy", format!("http://fgw:{PASSWORD}@{PROXY_ADDR}"))
        .output()
        .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn enrollment_and_uploads_go_through_the_hospitals_connect_proxy_with_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut link = Link::new();
    let hub_config = start_hub(&mut link, root);
    let proxy_log = start_proxy(&mut link, root);

    let box_dir = root.join("box");
    std::fs::create_dir_all(&box_dir).unwrap();
    let export = root.join("export");
    let opts = SynthOptions {
        exams: 3,
        images_per_exam: 1,
        batch: "20261205T0800".into(),
        width: 160,
        height: 128,
        ..SynthOptions::default()
    };
    synth::generate(&export, &opts).unwrap();
    let pass = box_dir.join("proxy.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = box_dir.join("wrong.pass");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Imaging: the identity key and its IDevID, as in the factory.
    let config = write_box_config(&box_dir, &export, "");
    image_box(&link, &config, &hub_config, &box_dir.join("factory"));

    // Without the proxy settings the hub is out of reach: the environment's proxy (which
    // would work) is not used.
    let out = gateway_in_box(&link, &config, &["identity", "enroll"]);
    assert!(!out.status.success(), "enrolled without the proxy settings");
    let before = std::fs::read_to_string(&proxy_log).unwrap_or_default();
    assert!(!before.contains("CONNECT 127.0.0.1"), "the environment's proxy was used");

    // Through the proxy with the wrong password: refused by the proxy, said without the
    // password.
    let proxied = |file: &Path| {
        format!(
            "proxy_url = \"http://{PROXY_ADDR}\"\nproxy_username = \"fgw\"\n\
             proxy_password_file = \"{}\"\n",
            file.display()
        )
    };
    let config = write_box_config(&box_dir, &export, &proxied(&wrong));
    let out = gateway_in_box(&link, &config, &["identity", "enroll"]);
    assert!(!out.status.success(), "enrolled with the wrong proxy password");
    let err = text(&out.stderr);
    assert!(!err.contains("not-the-password") && !err.contains(PASSWORD), "{err}");
    assert!(err.contains("tunnel") && err.contains("through proxy 10.77.0.1:3128"), "{err}");

    // With the right one: enrollment, then uploads, all through the proxy.
    let config = write_box_config(&box_dir, &export, &proxied(&pass));
    let out = gateway_in_box(&link, &config, &["identity", "enroll", "--json"]);
    assert!(out.status.success(), "enroll through the proxy: {}", text(&out.stderr));
    let run = gateway_in_box(&link, &config, &["run", "--exit-when-idle"]);
    assert!(run.status.success(), "gateway run: {}", text(&run.stderr));
    let log = text(&run.stderr);
    assert!(!log.contains(PASSWORD), "the proxy password is in the log");

    // At the hub: every exam, read with the operator's certificate from the hub's side.
    let op = root.join("op-pki");
    let listing = run_ok(
        link.in_hub("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(op.join("ca.crt"))
            .arg("--cert")
            .arg(op.join("device.crt"))
            .arg("--key")
            .arg(op.join("device.key"))
            .arg(format!("https://127.0.0.1:8443/v1/facilities/{FACILITY}/exams")),
    );
    let listing: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert_eq!(listing.len(), opts.exams, "{listing:#?}");

    // The proxy relayed them: CONNECT requests to the hub, and one refused for the wrong
    // password before.
    let proxy_text = std::fs::read_to_string(&proxy_log).unwrap();
    let connects = proxy_text.matches("CONNECT 127.0.0.1:8443").count();
    assert!(connects >= 3, "tinyproxy relayed {connects} CONNECT(s):\n{proxy_text}");
}
