//! The department's export share as an attacker (or a broken exporter) could lay it out:
//! reports and image folders linked to files outside the share (a key file), a batch folder
//! that is a link, a FIFO named like a report, a link as an intermediate folder, and input
//! over the configured caps. Both `gateway deid` and the daemon must finish, never put a byte
//! from outside the share into a package, quarantine each bad exam or batch with a reason
//! naming its path (the batch by its label, never its folder's name), and still pass the
//! clean exams.

use crate::common;
use common::*;
use fgw_synth::{self as synth, SynthOptions};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Planted outside the share; must never be read.
const MARKER: &str = "MARKERXOUTSIDEXSHARE";
const B1: &str = "20261125T2300";
const B2: &str = "20261126T2300";
const B3: &str = "20261127T2300";
/// Images are kept on the box: these tests are about the share, not the pixel stage.
const WITHHOLD: &str = "[deid.pixels]\nmode = \"withhold\"\n";

fn synth_batch(root: &Path, batch: &str, exams: usize, seed: u64) -> synth::SynthTruth {
    let opts = SynthOptions {
        seed,
        exams,
        images_per_exam: 1,
        batch: batch.into(),
        width: 64,
        height: 48,
        ..SynthOptions::default()
    };
    synth::generate(root, &opts).unwrap()
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let (mut out, mut i) = (Vec::with_capacity(hay.len()), 0);
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Expected reasons (prefixes of the reason text, batches by folder name: see [`labelled`])
/// and the number of clean exams.
struct Layout {
    reasons: Vec<String>,
    clean: usize,
}

/// `export/` with: B1 (exam rows 1–3 bad: report linked to the key, image folder linked out,
/// report a FIFO; rows 4–5 clean), B2 (its `reports/` folder is a link: every exam refused)
/// and B3 (a link to a batch outside the share). `outside/` holds the key and the targets.
fn lay_out_share(export: &Path, outside: &Path) -> Layout {
    std::fs::create_dir_all(outside).unwrap();
    let key = outside.join("tls.key");
    std::fs::write(&key, format!("-----BEGIN PRIVATE KEY-----\n{MARKER}\n")).unwrap();

    let t1 = synth_batch(export, B1, 5, 11);
    let b1 = export.join(B1);
    let report = |id: &str| b1.join("reports").join(format!("{id}.txt"));
    std::fs::create_dir_all(b1.join("reports")).unwrap();
    // (a) the report is a link to the key file.
    let _ = std::fs::remove_file(report(&t1.exams[0].exam_id));
    symlink(&key, report(&t1.exams[0].exam_id)).unwrap();
    // (b) the image folder is a link to a folder outside.
    let imgs = b1.join("images").join(&t1.exams[1].exam_id);
    let out_imgs = outside.join("imgs");
    std::fs::rename(&imgs, &out_imgs).unwrap();
    std::fs::write(out_imgs.join("2.txt"), MARKER).unwrap();
    symlink(&out_imgs, &imgs).unwrap();
    // (d) the report is a FIFO.
    let _ = std::fs::remove_file(report(&t1.exams[2].exam_id));
    let st = std::process::Command::new("mkfifo").arg(report(&t1.exams[2].exam_id)).status();
    assert!(st.unwrap().success());

    // (e) B2's reports/ folder is a link to a copy outside, each report holding the marker.
    let t2 = synth_batch(export, B2, 2, 22);
    let b2 = export.join(B2);
    // Ids of B2's own: synthetic ids repeat across batches, and `gateway deid` would count
    // B1's exam as superseded by B2's instead of refusing it.
    let csv = std::fs::read(b2.join("exams.csv")).unwrap();
    std::fs::write(b2.join("exams.csv"), replace(&csv, b"E2026", b"X2026")).unwrap();
    let id2 = |e: &synth::SynthExam| e.exam_id.replacen('E', "X", 1);
    let out_reports = outside.join("reports");
    std::fs::create_dir_all(&out_reports).unwrap();
    for e in &t2.exams {
        let imgs = b2.join("images");
        std::fs::rename(imgs.join(&e.exam_id), imgs.join(id2(e))).unwrap();
        std::fs::write(out_reports.join(format!("{}.txt", id2(e))), MARKER).unwrap();
    }
    let _ = std::fs::remove_dir_all(export.join(B2).join("reports"));
    symlink(&out_reports, export.join(B2).join("reports")).unwrap();

    // (c) B3 is a link to a finished batch outside the share whose reports hold the marker.
    let t3 = synth_batch(&outside.join("elsewhere"), B3, 2, 33);
    let b3 = outside.join("elsewhere").join(B3);
    std::fs::create_dir_all(b3.join("reports")).unwrap();
    for e in &t3.exams {
        std::fs::write(b3.join("reports").join(format!("{}.txt", e.exam_id)), MARKER).unwrap();
    }
    symlink(&b3, export.join(B3)).unwrap();

    let exam = |b: &str, row: u64, file: &str, what: &str| {
        format!("unsafe-entry: {b}/{file} of {b}/exams.csv row {row} (line )|{what}")
    };
    let mut reasons = vec![
        exam(B1, t1.exams[0].row, "reports/{exam_id}.txt", "symlink"),
        exam(B1, t1.exams[1].row, "images/{exam_id}", "symlink"),
        exam(B1, t1.exams[2].row, "reports/{exam_id}.txt", "not a regular file"),
    ];
    for e in &t2.exams {
        reasons.push(exam(B2, e.row, "reports/{exam_id}.txt", "symlink"));
    }
    Layout { reasons, clean: 2 }
}

/// `text` with each batch folder's name replaced by the label `gw` gives it: the box names
/// batches by label only (issue 10).
fn labelled(gw: &Gateway, text: &str) -> String {
    [B1, B2, B3].iter().fold(text.to_string(), |t, b| t.replace(b, &gw.batch_label(b)))
}

/// Each expected reason (`prefix|what`, the line number left open, batches by folder name) is
/// among `got`, once, with the batches by `gw`'s labels; no folder name is in `got`.
fn assert_reasons(gw: &Gateway, got: &[String], expected: &[String]) {
    for g in got {
        assert!(![B1, B2, B3].iter().any(|b| g.contains(b)), "a batch folder's name in {g}");
    }
    for e in expected {
        let e = labelled(gw, e);
        let (prefix, what) = e.split_once('|').unwrap();
        let (head, _) = prefix.split_once(" (line ").unwrap();
        let n = got.iter().filter(|g| g.starts_with(&format!("{head} (line ")) && g.contains(what));
        assert_eq!(n.count(), 1, "expected one `{head} … {what}` in {got:#?}");
    }
}

fn assert_no_marker(files: &[(PathBuf, Vec<u8>)], also: &[u8]) {
    for form in byte_forms(MARKER) {
        for (p, bytes) in files {
            assert!(!contains(bytes, &form), "outside marker in {}", p.display());
        }
        assert!(!contains(also, &form), "outside marker in the log");
    }
}

/// Wait for a child, killing it at `limit` (a hang fails the test, never hangs it).
fn wait_limited(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} did not finish in {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn gateway_deid_refuses_links_and_fifos_and_passes_the_clean_exams() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output, outside) =
        (tmp.path().join("in"), tmp.path().join("out"), tmp.path().join("outside"));
    let layout = lay_out_share(&input.join("export"), &outside);
    let gw = Gateway::new(
        &tmp.path().join("gw"),
        "https://localhost:8443",
        &tmp.path().join("pki"),
        &input,
        WITHHOLD,
    );
    let child = gw
        .cmd()
        .arg("deid")
        .arg(&input)
        .arg(&output)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_limited(child, Duration::from_secs(120), "gateway deid");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["exams_out"], layout.clean as u64, "{report:#}");
    let reasons: Vec<String> = report["quarantine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["reason"].as_str().unwrap().to_string())
        .collect();
    assert_reasons(&gw, &reasons, &layout.reasons);
    // (c) the linked batch is met by the walk and refused without being looked into.
    let link = "unsafe-entry: an entry of the input folder: symlink";
    assert_eq!(reasons.iter().filter(|r| r.starts_with(link)).count(), 1, "{reasons:#?}");

    let mut files = all_files(&output);
    files.extend(all_files(&gw.state_dir()));
    assert_no_marker(&files, &out.stderr);
}

#[test]
fn daemon_refuses_links_and_fifos_and_uploads_the_clean_exams() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (export, outside) = (root.join("export"), root.join("outside"));
    let layout = lay_out_share(&export, &outside);
    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, WITHHOLD);
    let out = gw.run_until_idle(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let listing = hub.list(&root.join("op-pki"), FACILITY);
    assert_eq!(listing.len(), layout.clean, "only the clean exams arrive");
    let q = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    assert!(q.status.success());
    let lines = String::from_utf8_lossy(&q.stdout).into_owned();
    // `ID  kind origin reason`: the reason is the rest of the line.
    let reasons: Vec<String> =
        lines.lines().filter_map(|l| l.find("unsafe-entry").map(|i| l[i..].to_string())).collect();
    assert_reasons(&gw, &reasons, &layout.reasons);
    let batch = format!("unsafe-entry: {}/exams.csv: symlink", gw.batch_label(B3));
    assert_eq!(reasons.iter().filter(|r| r.starts_with(&batch)).count(), 1, "{reasons:#?}");

    let mut files = hub.stored();
    files.extend(all_files(&gw.state_dir()));
    assert_no_marker(&files, &out.stderr);
}

/// The caps: a table over `max_table_bytes` quarantines its batch, an exam with more images
/// than `max_images_per_exam` is quarantined, and the daemon goes on with the next exams and
/// batches (it used to read both whole, without any cap).
#[test]
fn daemon_quarantines_input_over_the_caps_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    synth_batch(&export, B1, 60, 44);
    let t2 = synth_batch(&export, B2, 3, 55);
    let big = std::fs::metadata(export.join(B1).join("exams.csv")).unwrap().len();
    let small = std::fs::metadata(export.join(B2).join("exams.csv")).unwrap().len();
    assert!(big > 8192 && small <= 8192, "table sizes {big} {small}");
    // One exam of B2 gets two more images: three, over a cap of two.
    let imgs = export.join(B2).join("images").join(&t2.exams[1].exam_id);
    let first = std::fs::read_dir(&imgs).unwrap().next().unwrap().unwrap().path();
    for n in ["90.jpg", "91.jpg"] {
        std::fs::copy(&first, imgs.join(n)).unwrap();
    }

    let mut hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    hub.issue("operator", FACILITY, "operator", &root.join("op-pki"));
    hub.start();
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, WITHHOLD);
    let cfg = std::fs::read_to_string(&gw.config).unwrap();
    let cfg = cfg.replacen(
        "[export]\n",
        "[export]\nmax_table_bytes = 8192\nmax_images_per_exam = 2\n",
        1,
    );
    std::fs::write(&gw.config, cfg).unwrap();
    let out = gw.run_until_idle(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    assert_eq!(hub.list(&root.join("op-pki"), FACILITY).len(), 2, "B2's other exams arrive");
    let q = gw.cmd().args(["quarantine", "list"]).output().unwrap();
    let lines = String::from_utf8_lossy(&q.stdout).into_owned();
    let over: Vec<&str> = lines.lines().filter(|l| l.contains("over-limit")).collect();
    assert_eq!(over.len(), 2, "{lines}");
    let (l1, l2) = (gw.batch_label(B1), gw.batch_label(B2));
    assert!(!lines.contains(B1) && !lines.contains(B2), "a batch folder's name: {lines}");
    let table = format!("over-limit: {l1}/exams.csv: over export.max_table_bytes (8192)");
    assert!(over.iter().any(|l| l.contains(&table)), "{lines}");
    let exam =
        format!("over-limit: {l2}/images/{{exam_id}} of {l2}/exams.csv row {} ", t2.exams[1].row);
    assert!(
        over.iter().any(|l| l.contains(&exam) && l.contains("max_images_per_exam (2)")),
        "{lines}"
    );
}

/// `export.source_retention = "delete-when-finished"`: the state knows a batch only by its
/// label, so the finished batch's folder is found by labelling the export root's entries. It
/// is deleted (its name carries a patient's name, which appears nowhere), and nothing else is.
#[test]
fn finished_batch_folders_are_found_by_label_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let export = root.join("export");
    // Finished at once: its table has no header, so the batch is one quarantined row.
    let marked = "20261125T2300_QXMARK鏑木";
    std::fs::create_dir_all(export.join(marked)).unwrap();
    std::fs::write(export.join(marked).join("exams.csv"), b"").unwrap();
    std::fs::write(export.join(marked).join("DONE"), b"").unwrap();
    // Still being written (no DONE), and a stray file: both stay.
    synth_batch(&export, B2, 1, 66);
    std::fs::remove_file(export.join(B2).join("DONE")).unwrap();
    std::fs::write(export.join("notes.txt"), b"x").unwrap();
    // The hub only issues the certificates: nothing is uploaded.
    let hub = Hub::init(&root.join("hub"));
    hub.issue("gw-test", FACILITY, "device", &root.join("gw-pki"));
    let gw = Gateway::new(&root.join("gw"), &hub.url(), &root.join("gw-pki"), &export, WITHHOLD);
    let cfg = std::fs::read_to_string(&gw.config).unwrap();
    let cfg =
        cfg.replacen("[export]\n", "[export]\nsource_retention = \"delete-when-finished\"\n", 1);
    std::fs::write(&gw.config, cfg).unwrap();
    let out = gw.run_until_idle(Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    assert!(!export.join(marked).exists(), "the finished batch folder is deleted");
    assert!(export.join(B2).join("exams.csv").is_file() && export.join("notes.txt").is_file());
    let label = gw.batch_label(marked);
    let batches: Vec<(String, String)> = gw
        .db()
        .prepare("SELECT name, state FROM batches")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches, [(label.clone(), "finished".to_string())]);
    assert!(stderr.contains(&label) && stderr.contains("batch finished"), "{stderr}");
    for form in byte_forms("QXMARK").into_iter().chain(byte_forms("鏑木")) {
        assert!(!contains(&out.stderr, &form), "the folder's name was logged: {stderr}");
    }
}
