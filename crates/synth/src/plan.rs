//! Planning a batch: fictitious patients and their exams, deterministic from the seed.

use crate::rng::Rng;
use crate::tables::*;
use crate::{SynthExam, SynthOptions};
use chrono::{Datelike, Days, NaiveDate};
use fgw_records::Column;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// One exam as planned, with what writing it needs besides the table cells.
pub(crate) struct Planned {
    pub(crate) exam: SynthExam,
    /// The report file's text, for the exams that have one.
    pub(crate) report_text: Option<String>,
    /// The patient's name, for image metadata and the burned-in overlay.
    pub(crate) romaji: String,
    pub(crate) kanji: String,
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

pub(crate) fn era_short(d: NaiveDate) -> String {
    let (s, _, y) = era(d);
    format!("{s}{y:02}.{:02}.{:02}", d.month(), d.day())
}

pub(crate) fn era_kanji(d: NaiveDate) -> String {
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

pub(crate) fn plan(opts: &SynthOptions) -> Vec<Planned> {
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
