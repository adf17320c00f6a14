//! A modality (DCMTK `storescu -xy`, JPEG Baseline) sends to the running gateway's SCP. The
//! object is accepted only once it is spooled, runs through the DICOM gate, and stays on the
//! box (until DICOM packages land) with its reason; nothing of its header reaches the logs.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn stored_object_is_accepted_then_withheld_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let jpg = root.join("frame.jpg");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 4, 80]))
        .save(&jpg)
        .unwrap();
    let dcm = root.join("endo.dcm");
    let made = Command::new("img2dcm")
        .args(["-i", "JPEG", "-k", "PatientName=KABURAGI^RURIKO", "-k", "PatientID=00987123"])
        .arg(&jpg)
        .arg(&dcm)
        .output()
        .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let port = free_port();
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    // Certificates for the uplink (the hub itself need not run: nothing is uploaded).
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(&format!(
        "[dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nae_title = \"FGW\"\n"
    ));
    std::fs::write(&gw.config, cfg).unwrap();
    let log = root.join("gw.log");
    let mut child = gw.spawn_run(&log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&log).unwrap());
        assert!(Instant::now() < deadline, "scp never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("storescu")
        .args(["-xy", "-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &port.to_string()])
        .arg(&dcm)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = gw.status_json();
        if st["counts"]["quarantined"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "object never processed: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let q = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    let q = String::from_utf8_lossy(&q.stdout);
    // The frame has no border (its field is the whole picture) and no text: its pixels pass
    // the burned-in text stage; the object waits for the DICOM package format.
    assert!(q.contains("dicom") && q.contains("dicom-deid-pending"), "{q}");
    // Raw bytes stay on the box, encrypted: one file in quarantine/, none in the spool.
    assert_eq!(gw.spool_files(), 0);
    let kept = all_files(&gw.state_dir().join("quarantine"));
    assert_eq!(kept.len(), 1);
    let logs = std::fs::read(&log).unwrap();
    for m in ["KABURAGI", "RURIKO", "00987123", "987123"] {
        assert!(!contains(&logs, m.as_bytes()), "log carries {m}");
        assert!(!contains(&kept[0].1, m.as_bytes()), "quarantine copy is not encrypted");
        assert!(!q.contains(m));
    }
}
