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
mod rng;
mod tables;

pub use imaging::{crc32, exif_payload, jpeg_insert_segment, png_insert_text};

use fgw_records::profile::{DateFormat, Profile};
use fgw_records::{Column, ColumnClass};
use chrono::{Datelike, Days, NaiveDate, NaiveTime};
use encoding_rs::SHIFT_JIS;
use imaging::Fov;
use rng::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::Path;
use tables::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthEncoding {
    Cp932,
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

#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub seed: u64,
    pub exams: usize,
    pub images_per_exam: usize,
    /// Batch folder name (a timestamp like `20261125T2300`; a single path component).
    pub batch: String,
    pub encoding: SynthEncoding,
    pub layout: SynthLayout,
    pub width: u32,
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
    pub seed: u64,
    pub batch: String,
    pub encoding: SynthEncoding,
    pub layout: SynthLayout,
    /// In table row order.
    pub exams: Vec<SynthExam>,
}

impl SynthTruth {
    pub fn exam(&self, exam_id: &str) -> Option<&SynthExam> {
        self.exams.iter().find(|e| e.exam_id == exam_id)
    }

    /// Union of all exams' identifiers, sorted.
    pub fn all_identifiers(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.exams.iter().flat_map(|e| &e.identifiers).collect();
        set.into_iter().cloned().collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SynthExam {
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
    pub address: String,
    pub referring: String,
    pub operator: String,
    /// Cell values exactly as written (in the layout's form), by [`Column::key`].
    pub fields: BTreeMap<&'static str, String>,
    /// Report path relative to the export root, if one was written.
    pub report: Option<String>,
    pub images: Vec<SynthImage>,
    /// Every identifying string planted anywhere for this exam (table cells, free text,
    /// report, image metadata, folder names), plus the canonical forms of name, id, birth date
    /// and phone, and the staff names. Sorted, deduplicated.
    pub identifiers: Vec<String>,
}

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

struct Patient {
    female: bool,
    sur: Name3,
    giv: Name3,
    patient_id: String,
    other_id: String,
    birth: NaiveDate,
    address: String,
    phone: String,
}

impl Patient {
    fn kanji(&self) -> String {
        format!("{} {}", self.sur.0, self.giv.0)
    }
    fn kana(&self) -> String {
        format!("{} {}", self.sur.1, self.giv.1)
    }
    fn romaji(&self) -> String {
        format!("{} {}", self.sur.2, self.giv.2)
    }
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

    let planned = plan(opts);
    let mut exams = Vec::with_capacity(planned.len());
    for mut p in planned {
        to_layout(&profile, &mut p.exam);
        exams.push(write_exam(&dir, opts, &profile, p)?);
    }
    write_table(&dir.join(&profile.table), &exams, opts, &profile)?;
    fs::write(dir.join(&profile.done_marker), b"")?;
    Ok(SynthTruth {
        seed: opts.seed,
        batch: opts.batch.clone(),
        encoding: opts.encoding,
        layout: opts.layout,
        exams,
    })
}

struct Planned {
    exam: SynthExam,
    report_text: Option<String>,
    romaji: String,
    kanji: String,
}

fn ymd(d: NaiveDate, sep: &str) -> String {
    format!("{:04}{sep}{:02}{sep}{:02}", d.year(), d.month(), d.day())
}

/// (short, long, year in era) of the Japanese era containing `d`.
fn era(d: NaiveDate) -> (&'static str, &'static str, i32) {
    const ERAS: [(i32, u32, u32, &str, &str); 4] = [
        (2019, 5, 1, "R", "令和"),
        (1989, 1, 8, "H", "平成"),
        (1926, 12, 25, "S", "昭和"),
        (1912, 7, 30, "T", "大正"),
    ];
    for (y, m, day, short, long) in ERAS {
        if d >= NaiveDate::from_ymd_opt(y, m, day).expect("valid era start") {
            return (short, long, d.year() - y + 1);
        }
    }
    ("M", "明治", d.year() - 1867)
}

fn era_short(d: NaiveDate) -> String {
    let (s, _, y) = era(d);
    format!("{s}{y:02}.{:02}.{:02}", d.month(), d.day())
}

fn era_kanji(d: NaiveDate) -> String {
    let (_, l, y) = era(d);
    let y = if y == 1 { "元".to_owned() } else { y.to_string() };
    format!("{l}{y}年{}月{}日", d.month(), d.day())
}

fn make_patient(rng: &mut Rng, idx: usize, used: &mut BTreeSet<String>) -> Patient {
    let female = rng.chance(0.5);
    // Every 7th patient gets a variant-kanji surname so even small corpora contain some.
    let sur = if idx % 7 == 2 { *rng.pick(VARIANT_SURNAMES) } else { *rng.pick(SURNAMES) };
    let giv = *rng.pick(if female { GIVEN_F } else { GIVEN_M });
    let patient_id = loop {
        // Half below 10,000,000 so leading zeros are common.
        let n = if rng.chance(0.5) {
            rng.range(1, 9_999_999)
        } else {
            rng.range(10_000_000, 99_999_999)
        };
        let id = format!("{n:08}");
        if used.insert(id.clone()) {
            break id;
        }
    };
    let base = NaiveDate::from_ymd_opt(1930, 1, 1).expect("valid date");
    let birth = base + Days::new(rng.below(365 * 75));
    let (pref, city, wards, area) = *rng.pick(CITIES);
    let mut address = format!(
        "{pref}{city}{}{}{}丁目{}番{}号",
        rng.pick(wards),
        rng.pick(TOWNS),
        rng.range(1, 5),
        rng.range(1, 30),
        rng.range(1, 20)
    );
    if rng.chance(0.3) {
        address += &format!(
            " {}{} {}0{}号室",
            rng.pick(BUILDINGS),
            rng.pick(BUILDING_NAMES),
            rng.range(1, 9),
            rng.range(1, 9)
        );
    }
    let phone = if rng.chance(0.4) {
        format!(
            "0{}0-{}-{}",
            rng.pick(&["9", "8", "7"]),
            rng.range(1000, 9999),
            rng.range(1000, 9999)
        )
    } else if area.len() == 2 {
        format!("{area}-{}-{}", rng.range(3000, 6999), rng.range(1000, 9999))
    } else {
        format!("{area}-{}-{}", rng.range(200, 899), rng.range(1000, 9999))
    };
    let other_id = format!("K{:07}", rng.below(10_000_000));
    Patient { female, sur, giv, patient_id, other_id, birth, address, phone }
}

fn plan(opts: &SynthOptions) -> Vec<Planned> {
    let mut rng = Rng::new(opts.seed);
    let mut used = BTreeSet::new();
    let n_pat = (opts.exams * 85 / 100).max(1);
    let patients: Vec<Patient> = (0..n_pat).map(|i| make_patient(&mut rng, i, &mut used)).collect();
    let doctors: Vec<String> = (0..8)
        .map(|_| {
            let sur = rng.pick(SURNAMES);
            let giv = if rng.chance(0.5) { rng.pick(GIVEN_F) } else { rng.pick(GIVEN_M) };
            format!("{} {}", sur.0, giv.0)
        })
        .collect();
    let last_day = NaiveDate::from_ymd_opt(2026, 11, 25).expect("valid date");
    let days: Vec<NaiveDate> = (0..8).rev().map(|k| last_day - Days::new(k)).collect();

    // Some patients have two or more exams, often the same day: separate rows, one patient.
    let mut day_of: HashMap<usize, NaiveDate> = HashMap::new();
    let mut list: Vec<(NaiveDate, u64, usize)> = Vec::with_capacity(opts.exams);
    for i in 0..opts.exams {
        let p = if i < n_pat { i } else { rng.below(n_pat as u64) as usize };
        let same_day = i == n_pat || rng.chance(0.7);
        let d = match day_of.get(&p) {
            Some(d) if same_day => *d,
            _ => *rng.pick(&days),
        };
        day_of.insert(p, d);
        list.push((d, rng.next_u64(), p));
    }
    list.sort();

    let mut seq: HashMap<NaiveDate, u32> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, &(d, _, pi)) in list.iter().enumerate() {
        let row = i as u64 + 1;
        let p = &patients[pi];
        let n = seq.entry(d).or_insert(0);
        *n += 1;
        let exam_id = format!("E{}{:05}", ymd(d, ""), n);
        out.push(plan_exam(&mut rng, opts, row, exam_id, d, p, &doctors));
    }
    out
}

fn plan_exam(
    rng: &mut Rng,
    opts: &SynthOptions,
    row: u64,
    exam_id: String,
    d: NaiveDate,
    p: &Patient,
    doctors: &[String],
) -> Planned {
    let kanji = p.kanji();
    let kanji_ns = kanji.replace(' ', "");
    let kana = p.kana();
    let kana_half = to_halfwidth_kana(&kana);
    let romaji = p.romaji();
    let mut ids: BTreeSet<String> = BTreeSet::new();

    let etype = rng.weighted(EXAM_TYPES);
    let upper = matches!(etype, "上部消化管" | "ERCP" | "EUS");
    let minutes = 8 * 60 + 30 + rng.below(480);
    let start = format!("{:02}:{:02}", minutes / 60, minutes % 60);
    let bd_slash = ymd(p.birth, "/");
    let r = rng.unit();
    let bd_csv = if r < 0.6 {
        bd_slash.clone()
    } else if r < 0.85 {
        era_short(p.birth)
    } else {
        era_kanji(p.birth)
    };
    let kana_csv = if rng.chance(0.4) { kana_half.clone() } else { kana.clone() };
    let name_csv = if rng.chance(0.3) { kanji.replace(' ', "\u{3000}") } else { kanji.clone() };
    let pid_csv = if rng.chance(0.05) || row % 12 == 5 {
        to_fullwidth(&p.patient_id)
    } else {
        p.patient_id.clone()
    };
    let sex_csv = match (rng.below(3), p.female) {
        (0, false) => "男",
        (0, true) => "女",
        (1, false) => "M",
        (1, true) => "F",
        (_, false) => "1",
        (_, true) => "2",
    };
    let pool = if upper { FINDINGS_UP } else { FINDINGS_LOW };
    let k = rng.range(1, 3) as usize;
    let sep = if rng.chance(0.3) { "\r\n" } else { "" };
    let mut findings = rng.sample(pool, k).join(sep);
    let phone_csv = {
        let r = rng.unit();
        if r < 0.1 || row % 10 == 4 {
            to_fullwidth(&p.phone)
        } else if r < 0.15 {
            p.phone.replace('-', "")
        } else {
            p.phone.clone()
        }
    };

    // Identifiers hidden in free text; row 1 always has one so tiny corpora exercise scrubbing.
    let mut comment = String::new();
    let r = if row == 1 { 0.25 } else { rng.unit() };
    if r < 0.1 {
        let family = format!("{} {}", p.sur.0, rng.pick(GIVEN_F).0);
        comment = format!("家族（{family}）に結果説明済み。連絡先 {}", p.phone);
        ids.insert(family);
    } else if r < 0.2 {
        comment = format!("前回検査は患者ID {}（旧カルテ {}）で登録。", p.patient_id, p.other_id);
        ids.insert(p.other_id.clone());
    } else if r < 0.3 {
        findings += &format!("\r\n{kanji_ns}様、次回1年後フォロー。");
    } else if r < 0.35 {
        findings += &format!("\r\n本人希望で結果は電話（{}）にて連絡。", p.phone);
    } else if r < 0.6 {
        comment = rng.pick(BENIGN_COMMENTS).to_string();
    }

    let referring = rng.pick(doctors).clone();
    let operator = rng.pick(doctors).clone();
    let nd = rng.range(1, 2) as usize;
    let diag = rng.sample(if upper { DIAG_UP } else { DIAG_LOW }, nd).join("; ");
    let nt = rng.range(1, 2) as usize;
    let treat = rng.sample(TREAT, nt).join("; ");

    let values: [String; 23] = [
        exam_id.clone(),
        pid_csv.clone(),
        name_csv.clone(),
        kana_csv.clone(),
        bd_csv.clone(),
        sex_csv.into(),
        ymd(d, "/"),
        start,
        etype.into(),
        referring.clone(),
        operator.clone(),
        rng.pick(IN_OUT).to_string(),
        rng.pick(ANTITHROMBOTIC).to_string(),
        rng.pick(HP).to_string(),
        rng.pick(SEDATION).to_string(),
        rng.pick(ASA).to_string(),
        findings.clone(),
        diag.clone(),
        treat,
        rng.pick(ADVERSE).to_string(),
        p.address.clone(),
        phone_csv.clone(),
        comment,
    ];
    let fields: BTreeMap<&'static str, String> =
        Column::ALL.iter().zip(values).map(|(c, v)| (c.key(), v)).collect();

    let report = rng.chance(0.3);
    let report_text = report.then(|| {
        format!(
            "内視鏡検査報告書\r\n患者: {kanji}（{kana_half}） ID: {}\r\n生年月日: {}  住所: {}\r\n\
             検査日: {}年{:02}月{:02}日 {etype}\r\n所見:\r\n{findings}\r\n診断: {diag}\r\n報告医: {operator}\r\n",
            p.patient_id,
            era_kanji(p.birth),
            p.address,
            d.year(),
            d.month(),
            d.day()
        )
    });

    ids.extend([
        exam_id.clone(),
        p.patient_id.clone(),
        pid_csv,
        kanji.clone(),
        name_csv,
        kanji_ns,
        kana.clone(),
        kana_half,
        kana_csv,
        romaji.clone(),
        bd_slash,
        bd_csv,
        era_short(p.birth),
        era_kanji(p.birth),
        p.birth.to_string(),
        p.phone.clone(),
        phone_csv,
        p.phone.replace('-', ""),
        p.address.clone(),
        referring.clone(),
        operator.clone(),
    ]);

    Planned {
        exam: SynthExam {
            report: report.then(|| {
                format!("{}/{}", opts.batch, opts.layout.profile().report_file_for(&exam_id))
            }),
            exam_id,
            row,
            exam_date: d.to_string(),
            patient_id: p.patient_id.clone(),
            name_kanji: kanji.clone(),
            name_kana: kana,
            name_romaji: romaji.clone(),
            birth_date: p.birth.to_string(),
            phone: p.phone.clone(),
            address: p.address.clone(),
            referring,
            operator,
            fields,
            images: Vec::new(),
            identifiers: ids.into_iter().collect(),
        },
        report_text,
        romaji,
        kanji,
    }
}

fn encode_text(text: &str, enc: SynthEncoding) -> io::Result<Vec<u8>> {
    match enc {
        SynthEncoding::Utf8 => Ok(text.as_bytes().to_vec()),
        SynthEncoding::Utf8Bom => {
            let mut v = b"\xEF\xBB\xBF".to_vec();
            v.extend_from_slice(text.as_bytes());
            Ok(v)
        }
        SynthEncoding::Cp932 => {
            let (bytes, _, unmappable) = SHIFT_JIS.encode(text);
            if unmappable {
                // encoding_rs would silently write &#NNNN; escapes instead.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "synthetic text not representable in CP932",
                ));
            }
            Ok(bytes.into_owned())
        }
    }
}

/// Rewrite the reference cells of `exam` into the profile's forms (identity for the reference
/// profile), adding the new written forms of identifiers to `exam.identifiers`.
fn to_layout(profile: &Profile, exam: &mut SynthExam) {
    let date_of = |iso: &str| NaiveDate::parse_from_str(iso, "%Y-%m-%d").ok();
    let (birth, exam_date) = (date_of(&exam.birth_date), date_of(&exam.exam_date));
    let mut ids: BTreeSet<String> = exam.identifiers.iter().cloned().collect();
    for c in Column::ALL {
        let Some(cell) = exam.fields.get_mut(c.key()) else { continue };
        let reverse = |v: &str| -> String {
            profile
                .value_table(c)
                .and_then(|t| t.iter().find(|(_, r)| r.as_str() == v))
                .map_or_else(|| v.to_owned(), |(code, _)| code.clone())
        };
        let chrono_date = profile.date_formats(c).iter().find_map(|f| match f {
            DateFormat::Chrono(f) => Some(f.clone()),
            DateFormat::Era => None,
        });
        let new = if let Some(f) = chrono_date {
            let d = if c == Column::BirthDate { birth } else { exam_date };
            d.map_or_else(|| cell.clone(), |d| d.format(&f).to_string())
        } else if let Some(f) = profile.time_formats(c).first() {
            NaiveTime::parse_from_str(cell, "%H:%M")
                .map_or_else(|_| cell.clone(), |t| t.format(f).to_string())
        } else if c.class() == ColumnClass::Terms {
            let sep = &profile.term_separators()[0];
            if sep == ";" && profile.value_table(c).is_none() {
                cell.clone()
            } else {
                cell.split(';').map(|t| reverse(t.trim())).collect::<Vec<_>>().join(sep)
            }
        } else if c == Column::Sex && profile.value_table(c).is_some() {
            // The reference synth writes 男/M/1; vendor codes exist for one spelling only.
            let canonical = if matches!(cell.as_str(), "男" | "M" | "1") { "男" } else { "女" };
            reverse(canonical)
        } else {
            reverse(cell)
        };
        if c.class() == ColumnClass::DirectIdentifier && !new.is_empty() {
            ids.insert(new.clone());
        }
        *cell = new;
    }
    exam.identifiers = ids.into_iter().collect();
}

/// `rel` (`/`-separated, from a validated profile) below `base`.
fn under(base: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

fn write_exam(
    dir: &Path,
    opts: &SynthOptions,
    profile: &Profile,
    p: Planned,
) -> io::Result<SynthExam> {
    let Planned { mut exam, report_text, romaji, kanji } = p;
    if let Some(text) = report_text {
        let path = under(dir, &profile.report_file_for(&exam.exam_id));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, encode_text(&text, opts.encoding)?)?;
    }
    if opts.images_per_exam == 0 {
        return Ok(exam);
    }
    let rel_dir = profile.images_dir_for(&exam.exam_id);
    let img_dir = under(dir, &rel_dir);
    fs::create_dir_all(&img_dir)?;
    let mut exam_rng = Rng::derive(opts.seed, exam.row, 0);
    let fov = if exam_rng.chance(0.5) { Fov::Circle } else { Fov::Octagon };
    let pid = exam.patient_id.clone();
    let to_io = |e: image::ImageError| io::Error::other(e.to_string());
    let font = match opts.overlay {
        SynthOverlay::None => None,
        SynthOverlay::Processor => Some(
            overlay::system_font(overlay::FontChoice::NotoSansCjkJp)
                .map_err(|e| io::Error::other(e.to_string()))?,
        ),
    };
    let lines = [
        format!("ID:{pid}"),
        romaji.clone(),
        NaiveDate::parse_from_str(&exam.birth_date, "%Y-%m-%d").map(era_short).unwrap_or_default(),
        exam.exam_date.replace('-', "/"),
    ];
    for n in 1..=opts.images_per_exam as u64 {
        let mut rng = Rng::derive(opts.seed, exam.row, n);
        let mut img = imaging::render(&mut rng, opts.width, opts.height, fov);
        if let Some(font) = &font {
            let px = (opts.height as f32 / 22.0).max(12.0);
            for (i, line) in lines.iter().enumerate() {
                let y = (px * 1.2) as i32 + (i as f32 * px * 1.5) as i32;
                overlay::draw_text(&mut img, font, px, 10, y, line, [235, 235, 235]);
            }
        }
        let png = rng.chance(0.15);
        let mut meta =
            SynthImage { rel_path: String::new(), exif: false, com: false, text_chunk: false };
        let bytes = if png {
            let mut b = imaging::encode_png(&img).map_err(to_io)?;
            if rng.chance(0.5) {
                b = png_insert_text(&b, "Comment", &format!("{romaji} ID {pid}"));
                meta.text_chunk = true;
            }
            b
        } else {
            let mut b = imaging::encode_jpeg(&img, 85).map_err(to_io)?;
            if rng.chance(1.0 / 3.0) {
                let which = rng.below(3);
                if which != 1 {
                    let payload = exif_payload(&format!("Patient: {romaji} ID {pid}"), &romaji);
                    b = jpeg_insert_segment(&b, 0xE1, &payload);
                    meta.exif = true;
                }
                if which != 0 {
                    let com = if rng.chance(0.5) {
                        format!("Patient: {romaji} ID {pid}")
                    } else {
                        format!("患者: {kanji} ID {pid}")
                    };
                    b = jpeg_insert_segment(&b, 0xFE, com.as_bytes());
                    meta.com = true;
                }
            }
            b
        };
        let name = format!("{n}.{}", if png { "png" } else { "jpg" });
        fs::write(img_dir.join(&name), bytes)?;
        meta.rel_path = format!("{}/{rel_dir}/{name}", opts.batch);
        exam.images.push(meta);
    }
    Ok(exam)
}

fn write_table(
    path: &Path,
    exams: &[SynthExam],
    opts: &SynthOptions,
    profile: &Profile,
) -> io::Result<()> {
    let enc = opts.encoding;
    let mut w = csv::WriterBuilder::new()
        .terminator(opts.layout.terminator())
        .delimiter(profile.delimiters[0])
        .from_writer(Vec::new());
    let to_io = |e: csv::Error| io::Error::other(e.to_string());
    // Columns the profile does not map are not written (every built-in maps all 23).
    let cols: Vec<(Column, &str)> = Column::ALL
        .iter()
        .filter_map(|&c| profile.headers(c).first().map(|h| (c, h.as_str())))
        .collect();
    w.write_record(cols.iter().map(|(_, h)| *h)).map_err(to_io)?;
    for e in exams {
        w.write_record(cols.iter().map(|(c, _)| e.fields[c.key()].as_str())).map_err(to_io)?;
    }
    let bytes = w.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "csv output not UTF-8"))?;
    fs::write(path, encode_text(&text, enc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
