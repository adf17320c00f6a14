//! Deterministic synthetic department-system export, in the reference layout of
//! `docs/department-export.md` or (with [`SynthLayout::VendorB`]) in the layout of the built-in
//! `vendor-b` profile. Used by the demo and by tests; needs no external file, font or tool.
//! All people, ids, phone numbers and addresses are fictitious.
//!
//! `generate(root, opts)` writes `<root>/<batch>/exams.csv` (all 23 columns in spec order,
//! CRLF, RFC 4180 quoting, CP932 or UTF-8 with BOM), `images/<検査ID>/<n>.jpg|png`
//! (some with EXIF/COM/tEXt metadata naming the patient), `reports/<検査ID>.txt` for ~30% of
//! exams and `DONE` last, and returns the [`SynthTruth`] (every identifier planted).
//!
//! The vendor layout holds the same exams: the reference cells are rewritten with the
//! profile (headers, file names, reverse value tables, first date/time format, first term
//! separator), so reading both back must give the same reference-form values.
//!
//! Determinism: the same `seed` and `exams` give the same patients, 検査IDs and table content,
//! whatever `batch`, `encoding`, `layout`, `images_per_exam` or the image size. So calling `generate`
//! twice with the same seed and a later batch name simulates a re-export of the same exams.
//! Image pixels and image metadata come from per-image streams derived from the seed.

mod imaging;
pub mod overlay;
mod plan;
mod rng;
mod tables;
pub mod text_styles;
mod write;

use fgw_records::profile::Profile;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

/// Text encoding of the table and report files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthEncoding {
    /// Shift_JIS as Windows writes it (the reference layout's usual encoding).
    Cp932,
    /// UTF-8 with a byte-order mark.
    Utf8Bom,
    /// UTF-8 without BOM (vendor B's own encoding).
    Utf8,
}

/// Which export layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthLayout {
    /// `docs/department-export.md`: exams.csv, CRLF, Japanese headers.
    #[default]
    Reference,
    /// The built-in `vendor-b` profile: exam_list.txt, tab-separated, LF, coded values.
    VendorB,
}

impl SynthLayout {
    /// The built-in profile describing this layout.
    pub fn profile(self) -> Profile {
        match self {
            SynthLayout::Reference => Profile::reference(),
            // Checked by the record::profile unit tests.
            SynthLayout::VendorB => Profile::builtin("vendor-b").expect("built-in profile"),
        }
    }

    fn terminator(self) -> csv::Terminator {
        match self {
            SynthLayout::Reference => csv::Terminator::CRLF,
            SynthLayout::VendorB => csv::Terminator::Any(b'\n'),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Seed of everything generated.
    pub seed: u64,
    /// Number of exams (table rows).
    pub exams: usize,
    /// Images per exam.
    pub images_per_exam: usize,
    /// Batch folder name (a timestamp like `20261125T2300`; a single path component).
    pub batch: String,
    /// Encoding of the table and reports.
    pub encoding: SynthEncoding,
    /// Export layout.
    pub layout: SynthLayout,
    /// Image width in pixels (at least 16).
    pub width: u32,
    /// Image height in pixels (at least 16).
    pub height: u32,
    /// Text the video processor burns into the frames.
    pub overlay: SynthOverlay,
}

/// Burned-in text in the generated frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynthOverlay {
    /// None (default): frames need no font.
    #[default]
    None,
    /// ID, romaji name, birth date (era form) and exam date in the left border, in Noto
    /// Sans CJK JP (Debian fonts-noto-cjk), as processors print them.
    Processor,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 1,
            exams: 20,
            images_per_exam: 3,
            batch: "20261125T2300".into(),
            encoding: SynthEncoding::Cp932,
            layout: SynthLayout::Reference,
            width: 640,
            height: 512,
            overlay: SynthOverlay::None,
        }
    }
}

/// Everything that was planted, for tests and leak checks. Contains (fictitious) personal
/// data by design: write it next to the corpus, never into the gateway's own outputs.
#[derive(Debug, Clone, Serialize)]
pub struct SynthTruth {
    /// The seed used.
    pub seed: u64,
    /// The batch folder written.
    pub batch: String,
    /// The encoding written.
    pub encoding: SynthEncoding,
    /// The layout written.
    pub layout: SynthLayout,
    /// In table row order.
    pub exams: Vec<SynthExam>,
}

impl SynthTruth {
    /// The exam with this 検査ID.
    pub fn exam(&self, exam_id: &str) -> Option<&SynthExam> {
        self.exams.iter().find(|e| e.exam_id == exam_id)
    }

    /// Union of all exams' identifiers, sorted.
    pub fn all_identifiers(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.exams.iter().flat_map(|e| &e.identifiers).collect();
        set.into_iter().cloned().collect()
    }
}

/// One generated exam and everything planted in it.
#[derive(Debug, Clone, Serialize)]
pub struct SynthExam {
    /// The department's exam id (検査ID).
    pub exam_id: String,
    /// 1-based data row in the table.
    pub row: u64,
    /// ISO date of the exam.
    pub exam_date: String,
    /// Canonical (half-width) hospital patient id, 8 digits with leading zeros.
    pub patient_id: String,
    /// `姓 名` with an ASCII space.
    pub name_kanji: String,
    /// Full-width katakana, `セイ メイ`.
    pub name_kana: String,
    /// `SURNAME GIVEN`.
    pub name_romaji: String,
    /// ISO date.
    pub birth_date: String,
    /// Canonical `0XX-XXXX-XXXX` form.
    pub phone: String,
    /// Postal address as written in the table.
    pub address: String,
    /// Referring doctor's name.
    pub referring: String,
    /// Operator's name.
    pub operator: String,
    /// Cell values exactly as written (in the layout's form), by [`Column::key`].
    pub fields: BTreeMap<&'static str, String>,
    /// Report path relative to the export root, if one was written.
    pub report: Option<String>,
    /// The exam's images, in order.
    pub images: Vec<SynthImage>,
    /// Every identifying string planted anywhere for this exam (table cells, free text,
    /// report, image metadata, folder names), plus the canonical forms of name, id, birth date
    /// and phone, and the staff names. Sorted, deduplicated.
    pub identifiers: Vec<String>,
}

/// One generated image and the metadata planted in it.
#[derive(Debug, Clone, Serialize)]
pub struct SynthImage {
    /// Relative to the export root.
    pub rel_path: String,
    /// JPEG APP1 EXIF with ImageDescription/Artist naming the patient.
    pub exif: bool,
    /// JPEG COM segment naming the patient.
    pub com: bool,
    /// PNG tEXt chunk naming the patient.
    pub text_chunk: bool,
}

/// Write one synthetic batch under `export_root` and return what was planted.
pub fn generate(export_root: &Path, opts: &SynthOptions) -> io::Result<SynthTruth> {
    let b = &opts.batch;
    if b.is_empty() || b.contains(['/', '\\']) || b.contains("..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "batch must be a single folder name",
        ));
    }
    if opts.width < 16 || opts.height < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "image size must be at least 16x16",
        ));
    }
    let profile = opts.layout.profile();
    let dir = export_root.join(b);
    fs::create_dir_all(&dir)?;
    // A previous run's DONE would mark this batch ready while it is being rewritten.
    match fs::remove_file(dir.join(&profile.done_marker)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }

    let planned = plan::plan(opts);
    let mut exams = Vec::with_capacity(planned.len());
    for mut p in planned {
        write::to_layout(&profile, &mut p.exam);
        exams.push(write::write_exam(&dir, opts, &profile, p)?);
    }
    write::write_table(&dir.join(&profile.table), &exams, opts, &profile)?;
    fs::write(dir.join(&profile.done_marker), b"")?;
    Ok(SynthTruth {
        seed: opts.seed,
        batch: opts.batch.clone(),
        encoding: opts.encoding,
        layout: opts.layout,
        exams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{era_kanji, era_short};
    use crate::tables::*;
    use crate::write::encode_text;
    use chrono::NaiveDate;
    use encoding_rs::SHIFT_JIS;
    use std::collections::HashMap;

    fn small(seed: u64, exams: usize) -> SynthOptions {
        SynthOptions {
            seed,
            exams,
            images_per_exam: 2,
            width: 64,
            height: 48,
            ..Default::default()
        }
    }

    #[test]
    fn all_tables_are_cp932_encodable() {
        let mut all = String::new();
        for t in [SURNAMES, VARIANT_SURNAMES, GIVEN_M, GIVEN_F] {
            for (k, kana, r) in t {
                all += &format!("{k}{kana}{}{r}", to_halfwidth_kana(kana));
            }
        }
        for (p, c, w, _) in CITIES {
            all += &format!("{p}{c}{}", w.join(""));
        }
        for t in [
            TOWNS,
            BUILDINGS,
            FINDINGS_UP,
            FINDINGS_LOW,
            DIAG_UP,
            DIAG_LOW,
            TREAT,
            ADVERSE,
            SEDATION,
            BENIGN_COMMENTS,
        ] {
            all += &t.join("");
        }
        all += &to_fullwidth("0123-456");
        encode_text(&all, SynthEncoding::Cp932).unwrap();
    }

    #[test]
    fn kana_and_width_helpers() {
        assert_eq!(to_halfwidth_kana("ヤマダ タロウ"), "ﾔﾏﾀﾞ ﾀﾛｳ");
        assert_eq!(to_halfwidth_kana("ペチジン"), "ﾍﾟﾁｼﾞﾝ");
        assert_eq!(to_fullwidth("0123-45"), "０１２３‐４５");
    }

    #[test]
    fn eras() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(era_short(d(1950, 1, 2)), "S25.01.02");
        assert_eq!(era_kanji(d(1950, 1, 2)), "昭和25年1月2日");
        assert_eq!(era_kanji(d(1989, 1, 8)), "平成元年1月8日");
        assert_eq!(era_short(d(1989, 1, 7)), "S64.01.07");
    }

    #[test]
    fn deterministic_and_independent_of_batch() {
        let a = tempfile::tempdir().unwrap();
        let t1 = generate(a.path(), &small(5, 12)).unwrap();
        let mut o2 = small(5, 12);
        o2.batch = "20261126T2300".into();
        o2.images_per_exam = 0;
        o2.encoding = SynthEncoding::Utf8Bom;
        let t2 = generate(a.path(), &o2).unwrap();
        let ids = |t: &SynthTruth| t.exams.iter().map(|e| e.exam_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&t1), ids(&t2));
        for (x, y) in t1.exams.iter().zip(&t2.exams) {
            assert_eq!(x.fields, y.fields);
        }
        let b = tempfile::tempdir().unwrap();
        generate(b.path(), &small(5, 12)).unwrap();
        let csv = |root: &Path| fs::read(root.join("20261125T2300/exams.csv")).unwrap();
        assert_eq!(csv(a.path()), csv(b.path()));
        let first = &t1.exams[0].images[0].rel_path;
        assert_eq!(
            fs::read(a.path().join(first)).unwrap(),
            fs::read(b.path().join(first)).unwrap()
        );
        let t3 = generate(b.path(), &small(6, 12)).unwrap();
        assert_ne!(t1.exams[0].fields, t3.exams[0].fields);
    }

    #[test]
    fn layout_and_planted_material() {
        let root = tempfile::tempdir().unwrap();
        let opts = SynthOptions {
            exams: 40,
            images_per_exam: 4,
            width: 96,
            height: 80,
            ..Default::default()
        };
        let t = generate(root.path(), &opts).unwrap();
        let batch = root.path().join(&opts.batch);
        assert!(batch.join("DONE").is_file());
        let raw = fs::read(batch.join("exams.csv")).unwrap();
        assert!(std::str::from_utf8(&raw).is_err(), "CP932 expected");
        let (text, _, bad) = SHIFT_JIS.decode(&raw);
        assert!(!bad);
        assert!(text.starts_with("検査ID,患者ID,患者氏名,"));
        assert!(text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'));
        assert_eq!(t.exams.len(), 40);
        assert!(
            text.contains("\"\"鎮静不十分\"\"")
                || !t.exams.iter().any(|e| e.fields["comment"].contains('"'))
        );

        let f = |k: &'static str| t.exams.iter().map(move |e| e.fields[k].clone());
        assert!(
            f("patient_kana").any(|v| v.contains('ﾞ') || v.chars().any(|c| ('ｦ'..='ﾟ').contains(&c)))
        );
        assert!(f("patient_id").any(|v| v.starts_with('０')));
        assert!(f("patient_id").any(|v| v.starts_with('0')));
        assert!(f("phone").any(|v| v.contains('‐')));
        assert!(f("patient_name").any(|v| v.contains(['髙', '﨑', '齋', '邊', '邉', '濱'])));
        assert!(f("findings").any(|v| v.contains("\r\n")));
        assert!(f("birth_date").any(|v| v.contains('/')));
        // same patient twice on the same day, as separate rows
        let mut seen = HashMap::new();
        let repeat = t
            .exams
            .iter()
            .any(|e| seen.insert((e.patient_id.clone(), e.exam_date.clone()), ()).is_some());
        assert!(repeat);
        // free text mentions the patient
        assert!(t.exams.iter().any(|e| {
            e.fields["findings"].contains(&e.name_kanji.replace(' ', ""))
                || e.fields["comment"].contains(&e.phone)
                || e.fields["comment"].contains(&e.patient_id)
        }));
        assert!(t.exams.iter().any(|e| e.report.is_some()));
        let images: Vec<&SynthImage> = t.exams.iter().flat_map(|e| &e.images).collect();
        assert_eq!(images.len(), 160);
        assert!(images.iter().any(|i| i.exif));
        assert!(images.iter().any(|i| i.com));
        assert!(images.iter().any(|i| i.rel_path.ends_with(".png")));
        for e in &t.exams {
            assert!(e.identifiers.contains(&e.exam_id));
            assert!(e.identifiers.contains(&e.name_romaji));
            for img in &e.images {
                let bytes = fs::read(root.path().join(&img.rel_path)).unwrap();
                let needle = e.name_romaji.as_bytes();
                let has = bytes.windows(needle.len()).any(|w| w == needle);
                if img.exif || img.text_chunk {
                    assert!(has, "{}", img.rel_path);
                }
                if !(img.exif || img.text_chunk || img.com) {
                    assert!(!has, "{}", img.rel_path);
                }
            }
            if let Some(r) = &e.report {
                let raw = fs::read(root.path().join(r)).unwrap();
                let (text, _, bad) = SHIFT_JIS.decode(&raw);
                assert!(!bad && text.contains(&e.patient_id));
            }
        }
        let j = serde_json::to_string(&t).unwrap();
        assert!(j.contains("identifiers"));
    }

    #[test]
    fn vendor_b_layout_holds_the_same_exams() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let ta = generate(a.path(), &small(3, 10)).unwrap();
        let mut o = small(3, 10);
        o.layout = SynthLayout::VendorB;
        o.encoding = SynthEncoding::Utf8;
        let tb = generate(b.path(), &o).unwrap();
        let batch = b.path().join(&o.batch);
        assert!(batch.join("END").is_file() && !batch.join("DONE").exists());
        let text = fs::read_to_string(batch.join("exam_list.txt")).unwrap();
        assert!(text.starts_with("EXAM_NO\tPATIENT_NO\t") && !text.starts_with('\u{feff}'));
        for (x, y) in ta.exams.iter().zip(&tb.exams) {
            assert_eq!(x.exam_id, y.exam_id);
            assert_eq!(x.fields["findings"], y.fields["findings"]);
            assert_eq!(y.fields["birth_date"], x.birth_date.replace('-', ""));
            assert!(matches!(y.fields["sex"].as_str(), "1" | "2"));
            assert!(["GS", "CS", "SB", "ERCP", "EUS"].contains(&y.fields["exam_type"].as_str()));
            assert!(y.identifiers.contains(&y.fields["birth_date"]));
            for img in &y.images {
                assert!(img.rel_path.starts_with(&format!("{}/img/{}/", o.batch, y.exam_id)));
                assert!(b.path().join(&img.rel_path).is_file());
            }
            if let Some(r) = &y.report {
                assert_eq!(r, &format!("{}/txt/{}.txt", o.batch, y.exam_id));
                assert!(b.path().join(r).is_file());
            }
        }
    }

    #[test]
    fn rejects_bad_batch_name() {
        let root = tempfile::tempdir().unwrap();
        let mut o = small(1, 1);
        o.batch = "../x".into();
        assert!(generate(root.path(), &o).is_err());
    }
}
