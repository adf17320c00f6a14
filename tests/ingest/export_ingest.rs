//! Reading the reference department export: batches, encodings, rows, attachments, and that
//! no error text ever carries a value.

use encoding_rs::SHIFT_JIS;
use fgw_ingest::export::{self, BatchDir, ExportError, Profile, TextEncoding};
use fgw_records::Column;
use fgw_synth::{generate, SynthEncoding, SynthOptions};
use std::fs;
use std::path::Path;

// The reference profile throughout: these tests are about the reference layout.
fn find_ready_batches(root: &Path) -> Result<Vec<BatchDir>, ExportError> {
    export::find_ready_batches(root, &Profile::reference())
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
    BatchDir { name: name.into(), path: dir }
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
    let b = BatchDir { name: "B0".into(), path: dir };
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
    // sparse: no disk use, but over the 64 MiB guard
    let big = fs::File::create(imgs.join("4.jpg")).unwrap();
    big.set_len(64 * 1024 * 1024 + 1).unwrap();
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
    assert_eq!(e.missing_images[0].0, "B1/images/E100/4.jpg");
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
