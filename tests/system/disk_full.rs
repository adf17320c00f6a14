//! Disk full (issue 11): the gateway's state directory is an 8 MiB tmpfs and the hub is down.
//! A modality (DCMTK `storescu`) sends endoscope frames until the box has no room: every
//! object it answered Success for is recorded, the next one gets 0xA700 (Refused: Out of
//! Resources), the daemon keeps running and `gateway status` says `disk-full`. Then the hub
//! comes up and the filesystem grows (`mount -o remount,size=64m`): without a restart, every
//! accepted object ends at the hub, ingest resumes, and a new object is accepted again.
//!
//! Needs root (to mount tmpfs); skips with a message otherwise.

use crate::common;
use common::*;
use fgw_synth::overlay::{render, Fov, Rng};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The tmpfs's size while it fills, and after it grows.
const SMALL: &str = "8m";
const LARGE: &str = "64m";
/// Objects sent at most before the box must have refused one.
const MAX_OBJECTS: usize = 80;

/// Whether this process runs as root (effective uid 0), from /proc: no libc call needed.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// A tmpfs mounted on a directory for the test; unmounted when dropped, also on a panic.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs { dir: dir.to_path_buf() }
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("mount");
        assert!(out.status.success(), "remount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file must not leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The daemon, killed when dropped (before the tmpfs under it is unmounted).
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn assert_running(&mut self) {
        if let Some(code) = self.child.try_wait().unwrap() {
            panic!("the gateway exited ({code}):\n{}", tail(&self.log));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What the modality saw for one object.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Stored,
    /// 0xA700, Refused: Out of Resources.
    OutOfResources,
}

/// `storescu -d` one file; its debug output has the C-STORE response's DIMSE status.
fn store(port: u16, file: &Path) -> (Sent, String) {
    let out = Command::new("storescu")
        .args(["-d", "-xy", "-aet", "ENDO1", "-aec", "FGW", "127.0.0.1", &port.to_string()])
        .arg(file)
        .output()
        .expect("storescu (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let status = text
        .lines()
        .find_map(|l| l.split_once("DIMSE Status").map(|(_, s)| s.trim_start_matches([' ', ':'])))
        .unwrap_or("none")
        .to_string();
    let sent = if status.starts_with("0xa700") && !out.status.success() {
        Sent::OutOfResources
    } else if status.starts_with("0x0000") && out.status.success() {
        Sent::Stored
    } else {
        panic!("storescu neither stored nor was refused for lack of room ({status}):\n{text}");
    };
    (sent, status)
}

/// `n` distinct objects (img2dcm gives each its own UIDs) of one endoscope frame, stored
/// uncompressed (about 230 KB each, so a few fill the disk without much OCR work).
fn make_objects(dir: &Path, n: usize) -> Vec<PathBuf> {
    let bmp = dir.join("frame.bmp");
    render(&mut Rng::new(11), 320, 240, Fov::Circle).save(&bmp).unwrap();
    (0..n)
        .map(|i| {
            let dcm = dir.join(format!("obj{i:03}.dcm"));
            let made = Command::new("img2dcm")
                .args(["-i", "BMP", "-k", "PatientName=DISKFULL^TEST", "-k", "Modality=ES"])
                .args(["-k", &format!("PatientID=DF{i:05}")])
                .arg(&bmp)
                .arg(&dcm)
                .output()
                .expect("img2dcm (apt package dcmtk) must be installed: scripts/ensure-deps.sh");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
            dcm
        })
        .collect()
}

fn wait_until(what: &str, limit: Duration, daemon: &mut Daemon, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        daemon.assert_running();
        assert!(Instant::now() < deadline, "{what} within {limit:?}:\n{}", tail(&daemon.log));
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn count(st: &serde_json::Value, state: &str) -> u64 {
    st["counts"][state].as_u64().unwrap_or(0)
}

/// Until the counts and the stores stop changing (the pipeline did what it could with the
/// room it has): two looks two seconds apart agree.
fn settle(gw: &Gateway, daemon: &mut Daemon) -> serde_json::Value {
    let look = || {
        let st = gw.status_json();
        (st["counts"].clone(), st["storage"]["stores"].clone(), st)
    };
    let (mut counts, mut stores, _) = look();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        daemon.assert_running();
        let (c, s, st) = look();
        if c == counts && s == stores {
            return st;
        }
        assert!(Instant::now() < deadline, "the pipeline never settled: {st:#}");
        (counts, stores) = (c, s);
    }
}

/// A synthetic department export of `exams` exams (small frames, no text).
fn synth_export(export: &Path, exams: usize, batch: &str) {
    let opts = fgw_synth::SynthOptions {
        exams,
        images_per_exam: 1,
        batch: batch.into(),
        width: 160,
        height: 128,
        ..fgw_synth::SynthOptions::default()
    };
    fgw_synth::generate(export, &opts).unwrap();
}

#[test]
fn a_full_disk_pauses_ingest_and_loses_nothing_then_resumes_by_itself() {
    if !is_root() {
        eprintln!(
            "SKIPPED disk_full: mounting a tmpfs for the gateway's state needs root; \
             run the system tests as root (the CI container does)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let objects = make_objects(root, MAX_OBJECTS + 1);
    let spare = &objects[MAX_OBJECTS];

    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    let export = root.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, "");
    let port = free_port();
    // A floor that leaves the state database room on a small disk (the default is 256 MiB).
    gw.append_config(&format!(
        "[storage]\nmin_free_bytes = 2097152\n\n\
         [dicom_scp]\nmode = \"enabled\"\nlisten = \"127.0.0.1:{port}\"\nae_title = \"FGW\"\n\
         allowed_peers = [\"127.0.0.1/32\"]\n"
    ));
    // Dropped (unmounted) before `tmp`; the daemon, declared after the mount, is killed
    // before the unmount.
    let fs = Tmpfs::mount(&gw.state_dir(), SMALL);
    let log = root.join("gw.log");
    let mut daemon = Daemon { child: gw.spawn_run(&log), log: log.clone() };
    wait_until("the SCP listens", Duration::from_secs(60), &mut daemon, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // 1. The hub is down: objects pile up until the box refuses one. What the pipeline then
    // does with the room left (de-identifying into the outbox down to half the floor, the
    // state database's log checkpointed) settles, and the box refuses again.
    let mut accepted = 0u64;
    let mut next = objects[..MAX_OBJECTS].iter();
    let mut send_until_refused = |daemon: &mut Daemon| -> String {
        for obj in next.by_ref() {
            daemon.assert_running();
            match store(port, obj) {
                (Sent::Stored, _) => accepted += 1,
                (Sent::OutOfResources, status) => return status,
            }
        }
        panic!("{MAX_OBJECTS} objects accepted on a {SMALL} disk:\n{}", tail(&daemon.log));
    };
    let status = send_until_refused(&mut daemon);
    settle(&gw, &mut daemon);
    send_until_refused(&mut daemon);
    let st = settle(&gw, &mut daemon);
    let accepted = accepted;
    assert!(status.starts_with("0xa700"), "{status}");
    assert!(accepted >= 3, "only {accepted} objects fit before the refusal");
    eprintln!("disk_full: {accepted} objects accepted before the box refused ({status})");

    // Paused, not down: status names the reason, every accepted object has its row, and a
    // retry is refused the same way.
    assert_eq!(st["storage"]["state"], "paused", "{st:#}");
    let reasons = st["storage"]["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r == "disk-full"), "{st:#}");
    let recorded: u64 = ["received", "deidentified"].iter().map(|s| count(&st, s)).sum();
    assert_eq!(recorded, accepted, "{st:#}");
    assert_eq!(count(&st, "acked") + count(&st, "quarantined"), 0, "{st:#}");
    let text = gw.cmd().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("PAUSED (disk-full"), "{text}");
    assert_eq!(store(port, spare).0, Sent::OutOfResources);

    // An export batch that arrives meanwhile stays where it is, not marked done.
    synth_export(&export, 3, "20261201T2300");
    std::thread::sleep(Duration::from_secs(3));
    daemon.assert_running();
    let batch_state = |gw: &Gateway| -> Vec<String> {
        let db = gw.db();
        let mut q = db.prepare("SELECT state FROM batches").unwrap();
        q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(batch_state(&gw), ["ingesting"]);
    let st = gw.status_json();
    assert_eq!(count(&st, "received") + count(&st, "deidentified"), accepted, "{st:#}");
    assert!(export.join("20261201T2300").join("DONE").exists(), "the export is left in place");

    // 2. The hub comes up and the disk grows: no restart, everything accepted arrives.
    hub.start();
    fs.resize(LARGE);
    wait_until("everything accepted acknowledged", Duration::from_secs(90), &mut daemon, || {
        let st = gw.status_json();
        count(&st, "acked") == accepted + 3 && st["storage"]["state"] == "running"
    });
    // The batch is marked finished at the daemon's next poll after its last exam is acked.
    wait_until("the batch finished", Duration::from_secs(30), &mut daemon, || {
        batch_state(&gw) == ["finished"]
    });
    // Ingest took up again by itself: the object refused twice is accepted now.
    assert_eq!(store(port, spare).0, Sent::Stored);
    wait_until("the new object acknowledged", Duration::from_secs(60), &mut daemon, || {
        count(&gw.status_json(), "acked") == accepted + 4
    });
    daemon.assert_running();
    let op = root.join("op-pki");
    assert_eq!(hub.list_of(&op, FACILITY, "dicom").len() as u64, accepted + 1, "each object once");
    assert_eq!(hub.list_of(&op, FACILITY, "exams").len(), 3, "each exam once");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("storage: paused"), "the pause is logged");
    assert!(logs.contains("storage: room again"), "the resume is logged");
    for marker in ["DISKFULL", "DF0000"] {
        assert!(!logs.contains(marker), "the log carries {marker}");
    }
    drop(daemon);
    drop(fs);
}
