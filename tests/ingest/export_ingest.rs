//! Reading the reference department export: batches, encodings, rows, attachments, and that
//! no error text ever carries a value.

use encoding_rs::SHIFT_JIS;
use fgw_ingest::export::{self, BatchDir, ExportError, Profile, TextEncoding};
use fgw_ingest::export::{ExportLimits, Limit, Refusal};
use fgw_records::Column;
use fgw_synth::{generate, SynthEncoding, SynthOptions};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

// The reference profile throughout: these tests are about the reference layout. Batches are
// labelled by their own names here, except in the test of labels.
fn find_ready_batches(root: &Path) -> Result<Vec<BatchDir>, ExportError> {
    export::find_ready_batches(root, &Profile::reference(), str::to_owned)
}

fn read_batch(b: &BatchDir) -> Result<export::BatchRows, ExportError> {
    export::read_batch(b, &Profile::reference())
}

fn load_attachments(
    b: &BatchDir,
    e: &mut fgw_records::RawExam,
    enc: TextEncoding,
) -> Result<(), ExportError> {
    export::load_attachments(b, e, enc, &Profile::reference())
}

fn cp932(s: &str) -> Vec<u8> {
    let (b, _, bad) = SHIFT_JIS.encode(s);
    assert!(!bad);
    b.into_owned()
}

/// Write a finished batch with the given exams.csv bytes.
fn batch(root: &Path, name: &str, csv: &[u8]) -> BatchDir {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("exams.csv"), csv).unwrap();
    fs::write(dir.join("DONE"), b"").unwrap();
    BatchDir { name: name.into(), path: dir, label: name.into() }
}

fn assert_clean(text: &str, planted: &[&str]) {
    for p in planted {
        assert!(!text.contains(p), "message leaks a value: {text}");
    }
}

const HEADER: &str = "検査ID,患者ID,患者氏名,所見,コメント";

#[test]
fn synthetic_cp932_batch_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        exams: 30,
        images_per_exam: 12,
        width: 64,
        height: 48,
        ..Default::default()
    };
    let truth = generate(root.path(), &opts).unwrap();
    let batches = find_ready_batches(root.path()).unwrap();
    assert_eq!(batches.len(), 1);
    let rows = read_batch(&batches[0]).unwrap();
    assert_eq!(rows.encoding, TextEncoding::Cp932);
    assert!(rows.errors.is_empty(), "{:?}", rows.errors);
    assert_eq!(rows.exams.len(), truth.exams.len());
    let mut multiline = 0;
    for (mut exam, t) in rows.exams.into_iter().zip(&truth.exams) {
        assert_eq!(exam.source.row, t.row);
        assert_eq!(exam.source.file, "20261125T2300/exams.csv");
        for c in Column::ALL {
            assert_eq!(exam.fields[&c], t.fields[c.key()], "{}", c.key());
        }
        multiline += exam.fields[&Column::Findings].contains("\r\n") as usize;
        load_attachments(&batches[0], &mut exam, rows.encoding).unwrap();
        let paths: Vec<&str> = exam.images.iter().map(|i| i.rel_path.as_str()).collect();
        let expect: Vec<&str> = t.images.iter().map(|i| i.rel_path.as_str()).collect();
        assert_eq!(paths, expect, "natural order 1..12");
        assert!(exam.images.iter().enumerate().all(|(i, im)| im.index == i as u32));
        assert!(exam.missing_images.is_empty());
        assert_eq!(exam.report.is_some(), t.report.is_some());
        if let Some(r) = &exam.report {
            assert!(r.contains(&t.patient_id) && r.contains(&t.address));
        }
    }
    assert!(multiline > 0);
    // Lines: physical line numbers grow faster than rows when 所見 spans lines.
    let rows = read_batch(&batches[0]).unwrap();
    let last = rows.exams.last().unwrap();
    assert!(last.source.line > last.source.row + 1);
}

#[test]
fn utf8_bom_batch() {
    let root = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        exams: 5,
        images_per_exam: 0,
        encoding: SynthEncoding::Utf8Bom,
        ..Default::default()
    };
    let truth = generate(root.path(), &opts).unwrap();
    let b = &find_ready_batches(root.path()).unwrap()[0];
    let rows = read_batch(b).unwrap();
    assert_eq!(rows.encoding, TextEncoding::Utf8Bom);
    assert_eq!(rows.exams.len(), 5);
    assert_eq!(rows.exams[0].get(Column::ExamId), Some(truth.exams[0].exam_id.as_str()));
    assert!(rows.exams[0].extra.is_empty());
}

#[test]
fn columns_in_any_order_and_unknown_columns_to_extra() {
    let root = tempfile::tempdir().unwrap();
    let csv = "\u{feff}所見 , 院内メモ,検査ID,患者氏名\r\n\
               \"胃角部にびらん。\r\n生検2個。\",  要連絡  ,E001, 山田 太郎 \r\n";
    let b = batch(root.path(), "20261125T2300", csv.as_bytes());
    let rows = read_batch(&b).unwrap();
    assert_eq!(rows.encoding, TextEncoding::Utf8Bom);
    assert!(rows.errors.is_empty());
    let e = &rows.exams[0];
    assert_eq!(e.get(Column::ExamId), Some("E001"));
    assert_eq!(e.get(Column::PatientName), Some("山田 太郎"));
    assert_eq!(e.get(Column::Findings), Some("胃角部にびらん。\r\n生検2個。"));
    assert_eq!(e.extra.get("院内メモ").map(String::as_str), Some("要連絡"));
    assert_eq!(e.fields.len(), 3);
    assert_eq!((e.source.row, e.source.line), (1, 2));
}

#[test]
fn wrong_field_count_is_a_row_error_and_the_rest_parses() {
    let root = tempfile::tempdir().unwrap();
    let csv = format!(
        "{HEADER}\r\nE001,00012345,山田 太郎,所見A,\r\nE002,00099999,秘密 花子,余分,な,列\r\n\
         E003,00054321,佐藤 一郎,\"複数\r\n行\",\"\"\"引用\"\"\"\r\n"
    );
    let b = batch(root.path(), "20261125T2300", &cp932(&csv));
    let rows = read_batch(&b).unwrap();
    assert_eq!(rows.encoding, TextEncoding::Cp932);
    let ids: Vec<_> = rows.exams.iter().map(|e| e.get(Column::ExamId)).collect();
    assert_eq!(ids, [Some("E001"), Some("E003")]);
    assert_eq!(rows.exams[1].get(Column::Comment), Some("\"引用\""));
    assert_eq!((rows.exams[1].source.row, rows.exams[1].source.line), (3, 4));
    assert_eq!(rows.errors.len(), 1);
    let err = &rows.errors[0];
    assert_eq!((err.row, err.line, err.column), (2, 3, None));
    assert_eq!(err.file, "20261125T2300/exams.csv");
    let msg = err.to_string();
    assert!(msg.contains("20261125T2300/exams.csv") && msg.contains("row 2"), "{msg}");
    assert_clean(&msg, &["E002", "00099999", "秘密", "余分"]);
}

#[test]
fn empty_duplicate_and_unsafe_exam_ids() {
    let root = tempfile::tempdir().unwrap();
    let csv = format!(
        "{HEADER}\r\n../../etc,001,甲,,\r\n,002,乙,,\r\nE7,003,丙,古い,\r\nE7,003,丙,新しい,\r\n\
         E8\\x,004,丁,,\r\n"
    );
    let b = batch(root.path(), "B1", &cp932(&csv));
    let rows = read_batch(&b).unwrap();
    assert_eq!(rows.exams.len(), 1);
    assert_eq!(rows.exams[0].get(Column::Findings), Some("新しい"));
    let got: Vec<_> = rows.errors.iter().map(|e| (e.row, e.column)).collect();
    assert_eq!(
        got,
        [(1, Some("exam_id")), (2, Some("exam_id")), (3, Some("exam_id")), (5, Some("exam_id"))]
    );
    for e in &rows.errors {
        assert_clean(&e.to_string(), &["../", "etc", "E7", "E8", "甲", "丙", "古い"]);
    }

    // A hand-made record with a traversal id must not reach the file system either.
    let mut exam = rows.exams[0].clone();
    exam.fields.insert(Column::ExamId, "../B1".into());
    let err = load_attachments(&b, &mut exam, TextEncoding::Cp932).unwrap_err();
    assert!(matches!(err, ExportError::UnsafeExamId { .. }));
    assert_clean(&err.to_string(), &["../B1"]);
}

#[test]
fn unbalanced_quote_at_eof() {
    let root = tempfile::tempdir().unwrap();
    let csv = format!("{HEADER}\r\nE1,001,甲,ok,\r\nE2,002,乙,\"閉じない\r\nE3,003,丙,,\r\n");
    let b = batch(root.path(), "B1", &cp932(&csv));
    let rows = read_batch(&b).unwrap();
    assert_eq!(rows.exams.len(), 1);
    assert_eq!(rows.errors.len(), 1);
    assert_eq!((rows.errors[0].row, rows.errors[0].line), (2, 3));
    assert_clean(&rows.errors[0].to_string(), &["閉じない", "E3", "乙"]);
}

#[test]
fn invalid_cp932_names_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let mut bytes = cp932(&format!("{HEADER}\r\nE1,00012345,山田 太郎,,\r\n"));
    bytes.extend_from_slice(&cp932("E2,00054321,"));
    bytes.extend_from_slice(b"\x81\x20\xFF"); // broken lead byte then an invalid byte
    bytes.extend_from_slice(&cp932("鈴木,,\r\n"));
    let b = batch(root.path(), "20261125T2300", &bytes);
    let err = read_batch(&b).unwrap_err();
    match &err {
        ExportError::Undecodable { file, line, .. } => {
            assert_eq!(file, "20261125T2300/exams.csv");
            assert_eq!(*line, 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("20261125T2300/exams.csv") && msg.contains("line 3"), "{msg}");
    assert_clean(&msg, &["00054321", "山田", "鈴木", "E2"]);
}

#[test]
fn file_level_errors() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("B0");
    fs::create_dir_all(&dir).unwrap();
    let b = BatchDir { name: "B0".into(), path: dir, label: "B0".into() };
    assert!(matches!(read_batch(&b), Err(ExportError::Missing { .. })));
    let b = batch(root.path(), "B1", &cp932("患者ID,患者氏名\r\n001,山田\r\n"));
    let err = read_batch(&b).unwrap_err();
    assert!(matches!(err, ExportError::MissingColumn { column: "exam_id", .. }));
    let b = batch(root.path(), "B2", b"");
    assert!(matches!(read_batch(&b), Err(ExportError::NoHeader { .. })));
}

#[test]
fn batches_without_done_are_ignored_and_sorted() {
    let root = tempfile::tempdir().unwrap();
    let csv = cp932(&format!("{HEADER}\r\n"));
    batch(root.path(), "20261126T2300", &csv);
    batch(root.path(), "20261125T2300", &csv);
    let writing = root.path().join("20261127T2300");
    fs::create_dir_all(&writing).unwrap();
    fs::write(writing.join("exams.csv"), &csv).unwrap();
    fs::write(root.path().join("stray.txt"), b"x").unwrap();
    let names: Vec<String> =
        find_ready_batches(root.path()).unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["20261125T2300", "20261126T2300"]);
    assert!(matches!(
        find_ready_batches(&root.path().join("absent")),
        Err(ExportError::Root { .. })
    ));
}

#[test]
fn attachments_sorted_naturally_with_guards_and_reports() {
    let root = tempfile::tempdir().unwrap();
    let csv = format!("{HEADER}\r\nE100,001,甲,,\r\nE200,002,乙,,\r\nE300,003,丙,,\r\n");
    let b = batch(root.path(), "B1", &cp932(&csv));
    let rows = read_batch(&b).unwrap();

    let imgs = b.path.join("images/E100");
    fs::create_dir_all(imgs.join("sub")).unwrap();
    for n in [10, 2, 1, 11, 3] {
        fs::write(imgs.join(format!("{n}.jpg")), [n as u8]).unwrap();
    }
    fs::write(imgs.join("sub/9.jpg"), b"x").unwrap(); // folders are not images
    fs::write(imgs.join(".partial"), b"x").unwrap();
    // A file whose name is not UTF-8: listed as missing, the rest goes on.
    fs::write(imgs.join(std::ffi::OsStr::from_bytes(b"4\xff.jpg")), b"x").unwrap();
    fs::create_dir_all(b.path.join("reports")).unwrap();
    fs::write(b.path.join("reports/E100.txt"), cp932("報告書\r\n患者: 甲 ﾔﾏﾀﾞ\r\n")).unwrap();
    fs::write(b.path.join("reports/E200.txt"), "\u{feff}UTF-8 の報告書".as_bytes()).unwrap();
    let mut bad = cp932("一行目\r\n");
    bad.push(0xFF);
    fs::write(b.path.join("reports/E300.txt"), bad).unwrap();

    let mut e = rows.exams[0].clone();
    load_attachments(&b, &mut e, rows.encoding).unwrap();
    let names: Vec<&str> = e.images.iter().map(|i| i.rel_path.as_str()).collect();
    assert_eq!(
        names,
        [
            "B1/images/E100/1.jpg",
            "B1/images/E100/2.jpg",
            "B1/images/E100/3.jpg",
            "B1/images/E100/10.jpg",
            "B1/images/E100/11.jpg"
        ]
    );
    assert_eq!(e.images[3].bytes, [10]);
    assert_eq!(e.images[3].index, 3);
    assert_eq!(e.missing_images.len(), 1);
    assert_eq!(e.missing_images[0].0, "B1/images/E100/4\u{fffd}.jpg");
    assert_eq!(e.report.as_deref(), Some("報告書\r\n患者: 甲 ﾔﾏﾀﾞ\r\n"));
    // loading twice replaces, never duplicates
    load_attachments(&b, &mut e, rows.encoding).unwrap();
    assert_eq!(e.images.len(), 5);

    // no image folder: fine; report with BOM next to a CP932 table
    let mut e = rows.exams[1].clone();
    load_attachments(&b, &mut e, rows.encoding).unwrap();
    assert!(e.images.is_empty() && e.missing_images.is_empty());
    assert_eq!(e.report.as_deref(), Some("UTF-8 の報告書"));

    let mut e = rows.exams[2].clone();
    let err = load_attachments(&b, &mut e, rows.encoding).unwrap_err();
    assert!(matches!(err, ExportError::ReportUndecodable { line: 2, .. }));
    let msg = err.to_string();
    assert!(msg.contains("B1/exams.csv row 3"), "{msg}");
    assert_clean(&msg, &["E300", "丙"]);
}

/// Planted in files outside the export share: must never be read through a link.
const MARKER: &str = "MARKER-OUTSIDE-7f3a9c -----BEGIN PRIVATE KEY-----";

/// An export root and, beside it, an outside folder holding a key-like file and an image
/// folder, both carrying the marker.
struct Share {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn share() -> Share {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("export");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(outside.join("imgs")).unwrap();
    fs::create_dir_all(outside.join("reports")).unwrap();
    fs::write(outside.join("tls.key"), MARKER).unwrap();
    fs::write(outside.join("imgs/1.jpg"), MARKER).unwrap();
    fs::write(outside.join("reports/E1.txt"), MARKER).unwrap();
    fs::create_dir_all(&root).unwrap();
    Share { _tmp: tmp, root, outside }
}

fn one_exam_batch(root: &Path, name: &str) -> BatchDir {
    batch(root, name, format!("{HEADER}\r\nE1,001,甲,,\r\n").as_bytes())
}

fn assert_refused(err: ExportError, what: Refusal, path: &str) {
    let msg = err.to_string();
    match err {
        ExportError::Refused { path: p, what: w } => {
            assert_eq!(w, what, "{msg}");
            assert!(p.starts_with(path), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_clean(&msg, &["E1", MARKER]);
}

fn assert_no_marker(exam: &fgw_records::RawExam) {
    assert!(exam.report.as_deref().is_none_or(|r| !r.contains("MARKER")));
    for i in &exam.images {
        assert!(!i.bytes.windows(6).any(|w| w == b"MARKER"), "{}", i.rel_path);
    }
}

/// (a) `reports/<id>.txt` is a link to a key file outside the share.
#[test]
fn report_symlinked_outside_is_refused_never_read() {
    let s = share();
    let b = one_exam_batch(&s.root, "B1");
    fs::create_dir_all(b.path.join("reports")).unwrap();
    symlink(s.outside.join("tls.key"), b.path.join("reports/E1.txt")).unwrap();
    let rows = read_batch(&b).unwrap();
    let mut e = rows.exams[0].clone();
    let err = load_attachments(&b, &mut e, rows.encoding).unwrap_err();
    assert_no_marker(&e);
    assert!(e.report.is_none());
    assert_refused(err, Refusal::Symlink, "B1/reports/{exam_id}.txt of B1/exams.csv row 1");
}

/// (b) `images/<id>/` is a link to a folder outside the share.
#[test]
fn image_folder_symlinked_outside_is_refused() {
    let s = share();
    let b = one_exam_batch(&s.root, "B1");
    fs::create_dir_all(b.path.join("images")).unwrap();
    symlink(s.outside.join("imgs"), b.path.join("images/E1")).unwrap();
    let rows = read_batch(&b).unwrap();
    let mut e = rows.exams[0].clone();
    let err = load_attachments(&b, &mut e, rows.encoding).unwrap_err();
    assert_no_marker(&e);
    assert!(e.images.is_empty() && e.missing_images.is_empty());
    assert_refused(err, Refusal::Symlink, "B1/images/{exam_id} of B1/exams.csv row 1");

    // A link inside a real image folder refuses the exam too: nothing of it goes on.
    let b = one_exam_batch(&s.root, "B2");
    fs::create_dir_all(b.path.join("images/E1")).unwrap();
    fs::write(b.path.join("images/E1/1.jpg"), b"fine").unwrap();
    symlink(s.outside.join("imgs/1.jpg"), b.path.join("images/E1/2.jpg")).unwrap();
    let mut e = read_batch(&b).unwrap().exams[0].clone();
    let err = load_attachments(&b, &mut e, TextEncoding::Utf8).unwrap_err();
    assert!(e.images.is_empty());
    assert_refused(err, Refusal::Symlink, "B2/images/{exam_id}/(an entry) of B2/exams.csv row 1");
}

/// (c) A batch folder that is itself a link is listed (so it is reported) but never read.
#[test]
fn batch_folder_symlink_is_refused() {
    let s = share();
    let real = s.outside.join("elsewhere");
    one_exam_batch(&real, "B9");
    symlink(real.join("B9"), s.root.join("B9")).unwrap();
    let batches = find_ready_batches(&s.root).unwrap();
    assert_eq!(batches.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["B9"]);
    assert_refused(read_batch(&batches[0]).unwrap_err(), Refusal::Symlink, "B9/exams.csv");

    // The table alone linked out of a real batch folder.
    let b = s.root.join("B8");
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("DONE"), b"").unwrap();
    symlink(s.outside.join("tls.key"), b.join("exams.csv")).unwrap();
    let b = BatchDir { name: "B8".into(), path: b, label: "B8".into() };
    assert_refused(read_batch(&b).unwrap_err(), Refusal::Symlink, "B8/exams.csv");
}

/// Run `f` on another thread; a hang fails the test instead of hanging it.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// (d) A FIFO named like a report: opening it used to block for good.
#[test]
fn fifo_named_like_a_report_does_not_block() {
    let s = share();
    let b = one_exam_batch(&s.root, "B1");
    fs::create_dir_all(b.path.join("reports")).unwrap();
    let fifo = b.path.join("reports/E1.txt");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let rows = read_batch(&b).unwrap();
    let mut e = rows.exams[0].clone();
    let (b2, enc) = (b.clone(), rows.encoding);
    let done = within(Duration::from_secs(20), move || {
        let r = load_attachments(&b2, &mut e, enc);
        (r, e)
    });
    let Some((r, e)) = done else {
        // Let the stuck reader go (a writer opens and closes), then fail.
        let _ = fs::OpenOptions::new().write(true).open(&fifo);
        panic!("load_attachments blocked on a FIFO named like a report");
    };
    assert!(e.report.is_none());
    assert_refused(
        r.unwrap_err(),
        Refusal::NotRegularFile,
        "B1/reports/{exam_id}.txt of B1/exams.csv row 1",
    );
}

/// (e) The link is an intermediate component: `reports/` or `images/` themselves.
#[test]
fn symlink_in_an_intermediate_component_is_refused() {
    let s = share();
    let b = one_exam_batch(&s.root, "B1");
    symlink(s.outside.join("reports"), b.path.join("reports")).unwrap();
    let rows = read_batch(&b).unwrap();
    let mut e = rows.exams[0].clone();
    let err = load_attachments(&b, &mut e, rows.encoding).unwrap_err();
    assert_no_marker(&e);
    assert_refused(err, Refusal::Symlink, "B1/reports/{exam_id}.txt");

    let b = one_exam_batch(&s.root, "B2");
    fs::create_dir_all(s.outside.join("imgdirs/E1")).unwrap();
    fs::write(s.outside.join("imgdirs/E1/1.jpg"), MARKER).unwrap();
    symlink(s.outside.join("imgdirs"), b.path.join("images")).unwrap();
    let mut e = read_batch(&b).unwrap().exams[0].clone();
    let err = load_attachments(&b, &mut e, TextEncoding::Utf8).unwrap_err();
    assert_no_marker(&e);
    assert_refused(err, Refusal::Symlink, "B2/images/{exam_id}");
}

fn over_limit(err: ExportError) -> (String, Limit, u64) {
    match err {
        ExportError::OverLimit { path, limit, cap } => (path, limit, cap),
        other => panic!("expected over-limit, got {other:?}"),
    }
}

/// Every cap refuses what is above it, and reads stop at the cap: a sparse table of 1 TiB
/// is refused at once (read whole, it used to exhaust memory).
#[test]
fn caps_refuse_what_is_above_them() {
    let s = share();
    let limits = ExportLimits {
        max_table_bytes: 4096,
        max_images_per_exam: 3,
        max_image_bytes: 1024,
        max_report_bytes: 1024,
    };
    let p = Profile::reference();
    let b = s.root.join("B0");
    fs::create_dir_all(&b).unwrap();
    fs::File::create(b.join("exams.csv")).unwrap().set_len(1 << 40).unwrap();
    let b = BatchDir { name: "B0".into(), path: b, label: "B0".into() };
    let (path, limit, cap) = over_limit(export::read_batch_with(&b, &p, &limits).unwrap_err());
    assert_eq!((path.as_str(), limit, cap), ("B0/exams.csv", Limit::TableBytes, 4096));

    let csv = format!("{HEADER}\r\nE1,001,甲,,\r\nE2,002,乙,,\r\nE3,003,丙,,\r\nE4,004,丁,,\r\n");
    let b = batch(&s.root, "B1", csv.as_bytes());
    let rows = export::read_batch_with(&b, &p, &limits).unwrap();
    // E1: four images, one over the count. E2: one image over the size. E3: report over the
    // size. E4: exactly at every cap: fine.
    for (id, n, size) in [("E1", 4, 10), ("E2", 1, 1025), ("E4", 3, 1024)] {
        let dir = b.path.join("images").join(id);
        fs::create_dir_all(dir.join("sub")).unwrap(); // folders do not count
        for k in 0..n {
            fs::write(dir.join(format!("{k}.jpg")), vec![b'x'; size]).unwrap();
        }
    }
    fs::create_dir_all(b.path.join("reports")).unwrap();
    fs::write(b.path.join("reports/E3.txt"), vec![b'a'; 1025]).unwrap();
    fs::write(b.path.join("reports/E4.txt"), vec![b'a'; 1024]).unwrap();
    let load = |i: usize| {
        let mut e = rows.exams[i].clone();
        let r = export::load_attachments_with(&b, &mut e, rows.encoding, &p, &limits);
        (r, e)
    };
    let expect = [
        ("B1/images/{exam_id} of B1/exams.csv row 1 (line 2)", Limit::ImagesPerExam, 3),
        ("B1/images/{exam_id}/(an entry) of B1/exams.csv row 2 (line 3)", Limit::ImageBytes, 1024),
        ("B1/reports/{exam_id}.txt of B1/exams.csv row 3 (line 4)", Limit::ReportBytes, 1024),
    ];
    for (i, (path, limit, cap)) in expect.into_iter().enumerate() {
        let (r, e) = load(i);
        assert!(e.images.is_empty() && e.report.is_none());
        let err = r.unwrap_err();
        assert_clean(&err.to_string(), &["E1", "E2", "E3"]);
        let (p, l, c) = over_limit(err);
        assert_eq!((p.as_str(), l, c), (path, limit, cap));
    }
    let (r, e) = load(3);
    r.unwrap();
    assert_eq!((e.images.len(), e.report.as_ref().map(String::len)), (3, Some(1024)));
}

/// The clean exams of a batch still load when one exam is refused.
#[test]
fn clean_exams_load_beside_a_refused_one() {
    let s = share();
    let csv = format!("{HEADER}\r\nE1,001,甲,,\r\nE2,002,乙,,\r\n");
    let b = batch(&s.root, "B1", csv.as_bytes());
    fs::create_dir_all(b.path.join("reports")).unwrap();
    symlink(s.outside.join("tls.key"), b.path.join("reports/E1.txt")).unwrap();
    fs::write(b.path.join("reports/E2.txt"), "所見なし").unwrap();
    let rows = read_batch(&b).unwrap();
    let mut e1 = rows.exams[0].clone();
    assert!(load_attachments(&b, &mut e1, rows.encoding).is_err());
    let mut e2 = rows.exams[1].clone();
    load_attachments(&b, &mut e2, rows.encoding).unwrap();
    assert_eq!(e2.report.as_deref(), Some("所見なし"));
}

/// The department system names batch folders and may put a patient's name in one (issue 10):
/// the reader opens the folder by its name but names it by the caller's label in every error,
/// row error, source and image path it makes.
#[test]
fn a_batch_folder_name_never_reaches_a_message() {
    const NAME: &str = "20261126T0100_QXMARKBATCH鏑木";
    let s = share();
    let label = |name: &str| {
        let rest = name.strip_prefix(NAME).expect("only the planted batches are labelled");
        format!("batch-{:012x}", rest.trim_start_matches('_').parse::<u32>().unwrap_or(1))
    };
    let mut texts: Vec<String> = Vec::new();
    // A batch with a bad row, a duplicate id, a non-UTF-8 image name, an undecodable report,
    // a report that is a link, and too many images.
    let csv = format!(
        "{HEADER}\r\nE1,001,甲,,\r\nE2,002,乙,,,x\r\nE3,003,丙,,\r\nE4,004,丁,,\r\nE5,005,戊,,\r\n\
         E5,005,戊,,\r\n"
    );
    let dir = s.root.join(NAME);
    fs::create_dir_all(dir.join("images/E1")).unwrap();
    fs::write(dir.join("exams.csv"), csv).unwrap();
    fs::write(dir.join("DONE"), b"").unwrap();
    fs::write(dir.join("images/E1/1.jpg"), b"x").unwrap();
    fs::write(dir.join("images/E1").join(std::ffi::OsStr::from_bytes(b"2\xff.jpg")), b"x").unwrap();
    fs::create_dir_all(dir.join("reports")).unwrap();
    fs::write(dir.join("reports/E3.txt"), b"\xff\xfe").unwrap();
    symlink(s.outside.join("tls.key"), dir.join("reports/E4.txt")).unwrap();
    fs::create_dir_all(dir.join("images/E5")).unwrap();
    for k in 0..3 {
        fs::write(dir.join(format!("images/E5/{k}.jpg")), b"x").unwrap();
    }
    // A second batch whose table is missing, a third whose table is a link, a fourth without
    // a header, a fifth over the table cap.
    for (suffix, table) in
        [("_2", None), ("_3", Some("link")), ("_4", Some("")), ("_5", Some("big"))]
    {
        let d = s.root.join(format!("{NAME}{suffix}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("DONE"), b"").unwrap();
        match table {
            None => {}
            Some("link") => symlink(s.outside.join("tls.key"), d.join("exams.csv")).unwrap(),
            Some("big") => fs::write(d.join("exams.csv"), vec![b'x'; 5000]).unwrap(),
            Some(t) => fs::write(d.join("exams.csv"), t).unwrap(),
        }
    }

    let batches = export::find_ready_batches(&s.root, &Profile::reference(), label).unwrap();
    assert_eq!(batches.len(), 5);
    let limits =
        ExportLimits { max_table_bytes: 4096, max_images_per_exam: 2, ..Default::default() };
    let p = Profile::reference();
    let b = &batches[0];
    assert_eq!(b.name, NAME, "the folder is still opened by its name");
    let rows = export::read_batch_with(b, &p, &limits).unwrap();
    assert_eq!(rows.batch, b.label);
    texts.push(format!("{:?}", rows.errors));
    texts.extend(rows.errors.iter().map(ToString::to_string));
    assert_eq!(rows.errors.len(), 2, "{:?}", rows.errors);
    for mut e in rows.exams {
        assert_eq!(e.source.batch, b.label);
        texts.push(e.source.to_string());
        texts.push(format!("{:?} {:?}", e.source, e));
        match export::load_attachments_with(b, &mut e, rows.encoding, &p, &limits) {
            Ok(()) => {}
            Err(err) => texts.extend([err.to_string(), format!("{err:?}")]),
        }
        texts.extend(e.images.iter().map(|i| i.rel_path.clone()));
        texts.extend(e.missing_images.iter().map(|(path, why)| format!("{path} {why}")));
    }
    for b in &batches[1..] {
        let err = export::read_batch_with(b, &p, &limits).unwrap_err();
        texts.extend([err.to_string(), format!("{err:?}")]);
    }
    // Every kind of message was made: row errors, a refusal, an over-limit, an undecodable
    // report, a missing and a linked table, a table without header, an image path.
    let all = texts.join("\n");
    for made in ["expected 5 fields", "duplicate exam_id", "symlink", "max_images_per_exam"] {
        assert!(all.contains(made), "{made} not made: {all}");
    }
    for made in ["not valid", "missing", "no header", "max_table_bytes", "/images/E1/1.jpg"] {
        assert!(all.contains(made), "{made} not made: {all}");
    }
    for t in &texts {
        assert!(!t.contains("QXMARK") && !t.contains("鏑木") && !t.contains("20261126"), "{t}");
    }
    assert!(all.contains(&batches[0].label) && all.contains(&batches[4].label), "{all}");
}
