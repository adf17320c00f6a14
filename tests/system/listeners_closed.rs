//! Issue 10, finding 5: the HL7 and DICOM listeners are closed by default and cannot be starved.
//!
//! - An enabled listener without `allowed_peers` refuses to start, naming the key.
//! - A peer outside the list is closed at accept, with a log line naming its address.
//! - 64 idle sockets (twice the HL7 cap) do not lock out a real sender: its report gets its
//!   AA (before: "too many connections", refused).
//! - A silent HL7 connection is closed after `idle_timeout_secs` (before: never).
//! - A forged DICOM object sent first under the real one's SOP Instance UID does not silence
//!   the real one: the real one is kept, quarantined `dicom-instance-conflict` (before: it was
//!   answered Success and dropped).
//!
//! Real processes: the `gateway` daemon, `mllp_send` (python hl7) and DCMTK's `storescu`.

use crate::common;
use common::*;
use fgw_synth::overlay::{encode_jpeg, render, Fov, Rng};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A gateway whose hub is never reached (uploads retry in the background): these tests look
/// at what the listeners accept, not at uploads.
fn gateway(root: &Path, tables: &str) -> Gateway {
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    let gw =
        Gateway::new(&root.join("gw"), "https://127.0.0.1:1", &root.join("gw-pki"), &export, "");
    gw.append_config(tables);
    gw
}

fn start(gw: &Gateway, log: &Path, port: u16) -> Child {
    let mut child = gw.spawn_run(log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(log).unwrap());
        assert!(Instant::now() < deadline, "listener on {port} never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn hl7_table(port: u16, extra: &str) -> String {
    format!(
        "[hl7]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\n\
         allowed_peers = [\"127.0.0.1/32\"]\n{extra}\n"
    )
}

/// A minimal ORU^R01 (fictitious), sent by the real `mllp_send`.
fn send_report(root: &Path, port: u16) -> Output {
    let msg = [
        "MSH|^~\\&|ENDO|HOSP|FGW|JGES|20261125120000||ORU^R01|IDLE0001|P|2.5||||||UNICODE UTF-8",
        "PID|1||99000001^^^HOSP^PI||TESTNAME^TARO^^^^^L^I||19700101|M",
        "OBR|1||E990000001|EGD^上部消化管内視鏡|||20261125091500||||||||||||||||||F",
        "OBX|1|TX|REPORT^所見||胃体下部に異常なし。||||||F",
    ]
    .join("\n");
    let file = root.join("oru.hl7");
    std::fs::write(&file, msg + "\n").unwrap();
    Command::new("mllp_send")
        .args(["--loose", "--port", &port.to_string(), "--file"])
        .arg(&file)
        .arg("127.0.0.1")
        .output()
        .expect("mllp_send (pip install hl7) must be installed: scripts/ensure-deps.sh")
}

#[test]
fn enabled_listeners_without_an_allow_list_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    for (table, key) in [
        ("[hl7]\nmode = \"enabled\"\nlisten = \"127.0.0.1:2575\"\n", "hl7.allowed_peers"),
        (
            "[dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:11112\"\n",
            "dicom_scp.allowed_peers",
        ),
    ] {
        let file = tmp.path().join("gateway.toml");
        std::fs::write(&file, format!("facility_id = \"{FACILITY}\"\n{table}")).unwrap();
        let out =
            Command::new(gateway_bin()).args(["config", "check"]).arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: an open listener was accepted");
        assert!(err.contains(key) && err.contains("refuses to start"), "{err}");
        // The daemon runs the same validation before it binds anything.
        let out = Command::new(gateway_bin())
            .arg("--config")
            .arg(&file)
            .args(["run", "--exit-when-idle"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(key));
    }
}

#[test]
fn idle_sockets_do_not_lock_out_a_real_report_and_strangers_are_closed_at_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let port = free_port();
    // `allow`, the allow list's former name (still read): this test runs unchanged against a
    // gateway from before the fix, where the report below was refused.
    let table = format!(
        "[hl7]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nallow = [\"127.0.0.1\"]\n"
    );
    let gw = gateway(root, &table);
    let log = root.join("gw.log");
    let child = start(&gw, &log, port);

    // 64 silent sockets from an allowed address: a scanner, or a sender leaking connections.
    let idle: Vec<std::net::TcpStream> =
        (0..64).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let out = send_report(root, port);
    let ack = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        ack.contains("MSA|AA|IDLE0001"),
        "the real report was refused with {} idle sockets open: {ack} {}\n{}",
        idle.len(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("hl7") && !l.contains("slot is needed"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A peer outside the list (another loopback address) is closed before anything is read.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let closed = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let mut b = [0u8; 16];
        matches!(
            tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    });
    assert!(closed, "a peer outside allowed_peers was kept open");
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(line) = text.lines().find(|l| l.contains("peer not allowed")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no log line for the refused peer: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refused.contains("127.0.0.2"), "the log line names the address: {refused}");
    drop(idle);
    stop(child);
}

#[test]
fn a_silent_hl7_connection_is_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let port = free_port();
    let gw = gateway(root, &hl7_table(port, "idle_timeout_secs = 1"));
    let log = root.join("gw.log");
    let child = start(&gw, &log, port);

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A deadline for the test, not a measurement: the server must close it, long before this.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut b = [0u8; 16];
    let closed = matches!(s.read(&mut b), Ok(0));
    assert!(closed, "the idle connection was not closed by the server");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("hl7 connection closed: idle timeout"), "{text}");
    stop(child);
}

/// A JPEG Baseline DICOM object of a synthetic frame with identifiers in its header, forced
/// to the SOP Instance UID `uid` (DCMTK's `img2dcm`, then `dcmodify`).
fn dicom_with_uid(dir: &Path, name: &str, seed: u64, uid: &str) -> std::path::PathBuf {
    let jpg = dir.join(format!("{name}.jpg"));
    let img = render(&mut Rng::new(seed), 160, 120, Fov::Circle);
    std::fs::write(&jpg, encode_jpeg(&img, 90).unwrap()).unwrap();
    let dcm = dir.join(format!("{name}.dcm"));
    let made = Command::new("img2dcm")
        .args(["-i", "JPEG", "-k", "PatientName=CONFLICT^TEST", "-k", "PatientID=77001"])
        .arg(&jpg)
        .arg(&dcm)
        .output()
        .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // The file meta's Media Storage SOP Instance UID follows (dcmodify's default).
    let set = Command::new("dcmodify")
        .args(["-nb", "-m", &format!("(0008,0018)={uid}")])
        .arg(&dcm)
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    dcm
}

fn storescu(port: u16, files: &[&Path]) {
    let sent = Command::new("storescu")
        .args(["-xy", "-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &port.to_string()])
        .args(files)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
}

fn conflicts(gw: &Gateway) -> usize {
    let out = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).matches("dicom-instance-conflict").count()
}

fn items(gw: &Gateway) -> u64 {
    let st = gw.status_json();
    st["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum()
}

#[test]
fn a_forged_dicom_object_sent_first_does_not_silence_the_real_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let uid = "1.2.826.0.1.3680043.10.543.77001.1";
    let forged = dicom_with_uid(root, "forged", 1, uid);
    let real = dicom_with_uid(root, "real", 2, uid);
    let port = free_port();
    let gw = gateway(
        root,
        &format!(
            "[dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nae_title = \"FGW\"\n\
             allowed_peers = [\"127.0.0.1/32\"]\n"
        ),
    );
    let log = root.join("gw.log");
    let child = start(&gw, &log, port);

    // The forger is first; both get Success (each object is durable on the box).
    storescu(port, &[&forged, &real]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while conflicts(&gw) == 0 {
        assert!(
            Instant::now() < deadline,
            "the real object was dropped: {} item(s), quarantine: {}",
            items(&gw),
            String::from_utf8_lossy(
                &gw.cmd().args(["quarantine", "list"]).output().unwrap().stdout
            )
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(items(&gw), 2, "one item per distinct object");
    // An identical re-send of either is still a duplicate: no third item, no second conflict.
    storescu(port, &[&real, &forged]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((items(&gw), conflicts(&gw)), (2, 1));
    // The kept object is on the box, encrypted, in quarantine.
    let kept = all_files(&gw.state_dir().join("quarantine"));
    assert!(!kept.is_empty());
    for (_, bytes) in &kept {
        assert!(!contains(bytes, b"CONFLICT"), "the quarantine copy is not encrypted");
    }
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("dicom-instance-conflict"), "the conflict is logged");
    assert!(!text.contains("CONFLICT^TEST") && !text.contains(uid), "values in the log");
}
