//! Japanese free-text de-identification measured on a labelled synthetic set
//! (`tests/data/freetext_ja.jsonl`, made by `tests/data/make_freetext_ja.py`), plus property
//! tests with planted names, own identifiers, phones and dates.
//!
//! The measured table goes to stdout and `target/freetext_ja_metrics.md`. The set is
//! synthetic and written with the scrubber's rules in mind, so the numbers are an upper bound
//! for real reports, not a validation on them.

use fgw_deid::identifiers::{fold, IdentifierSet};
use fgw_deid::text::{find, scrub};
use fgw_records::{Column, RawExam};
use proptest::prelude::*;

use crate::common;
use common::freetext::{load, measure, pct};

#[test]
fn labelled_set_metrics() {
    let items = load("freetext_ja.jsonl");
    assert!(items.len() >= 300, "{} items", items.len());
    let m =
        measure(&items, "Japanese free text (`tests/freetext_ja.rs`)", "freetext_ja_metrics.md");
    for l in ["own_name", "own_id", "own_birth", "own_phone", "own_address", "phone"] {
        assert_eq!(m.recall[l].rate(), 1.0, "{l} recall");
    }
    assert!(m.names.rate() >= 0.98, "person name recall {}", pct(&m.names));
    assert!(m.clinical.rate() >= 0.99, "clinical preservation {}", pct(&m.clinical));
}

// --- properties ---

const SURNAMES: &[(&str, &str, &str)] = &[
    ("田中", "タナカ", "Tanaka"),
    ("伊藤", "イトウ", "Ito"),
    ("渡辺", "ワタナベ", "Watanabe"),
    ("佐々木", "ササキ", "Sasaki"),
    ("林", "ハヤシ", "Hayashi"),
    ("長谷川", "ハセガワ", "Hasegawa"),
    ("一ノ瀬", "イチノセ", "Ichinose"),
    ("小野寺", "オノデラ", "Onodera"),
];
const GIVEN: &[(&str, &str, &str)] = &[
    ("太郎", "タロウ", "Taro"),
    ("美咲", "ミサキ", "Misaki"),
    ("健", "ケン", "Ken"),
    ("真由美", "マユミ", "Mayumi"),
    ("翔", "ショウ", "Sho"),
];
const HONORIFICS: &[&str] =
    &["様", "さん", "先生", "医師", "Dr", "氏", "君", "ちゃん", "看護師", "Ns", "技師"];
const ROLES: &[&str] = &["Dr.", "Dr ", "担当:", "主治医 ", "長男 ", "妻 ", "術者 ", "介助 "];

const PHRASES: &[&str] = &[
    "胃体下部小弯に0-Ⅱc病変",
    "大きさ10mm",
    "ESD施行",
    "生検2個",
    "Hb 12.3",
    "3日後",
    "1年後に再検",
    "2/3周性",
    "ピロリ除菌後",
    "逆流性食道炎 LA-A",
    "萎縮 C-2",
    "経過観察",
    "内視鏡医師",
    "担当看護師",
    "SMT様隆起",
    "早期胃癌",
];

/// (planted spelling, what must not be found in the folded output)
const OWN: &[(&str, &str)] = &[
    ("髙橋花子", "高橋花子"),
    ("高橋 花子", "高橋"),
    ("ﾀｶﾊｼ ﾊﾅｺ", "はなこ"),
    ("たかはし", "たかはし"),
    ("00123456", "123456"),
    ("１２３４５６", "123456"),
    ("昭和25年1月2日", "昭和25年1月2日"),
    ("S25.1.2", "S25.1.2"),
    ("1950/01/02", "1950/01/02"),
    ("０９０‐１２３４‐５６７８", "09012345678"),
    ("京都市上京区", "京都市上京区"),
];

const SEPARATORS: &[&str] = &["。", "、", "\n", " ", "：", "（"];

fn own_set() -> IdentifierSet {
    IdentifierSet::from_exam(&RawExam::with_fields(&[
        (Column::PatientName, "髙橋　花子"),
        (Column::PatientKana, "ﾀｶﾊｼ ﾊﾅｺ"),
        (Column::PatientId, "00123456"),
        (Column::BirthDate, "S25.01.02"),
        (Column::Phone, "090-1234-5678"),
        (Column::Address, "京都府京都市上京区丸太町通烏丸西入ル"),
    ]))
}

#[derive(Debug, Clone)]
enum Piece {
    Clinical(usize),
    Own(usize),
    /// surname, given, form, honorific-or-role, role first
    Name(usize, usize, u8, usize, bool),
    Phone(u8, u32, u32),
    Date(i32, u32, u32, u8),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        (0..PHRASES.len()).prop_map(Piece::Clinical),
        (0..OWN.len()).prop_map(Piece::Own),
        (
            0..SURNAMES.len(),
            0..GIVEN.len(),
            0u8..6,
            0..HONORIFICS.len().max(ROLES.len()),
            any::<bool>()
        )
            .prop_map(|(s, g, f, h, r)| Piece::Name(s, g, f, h, r)),
        (0u8..3, 100u32..999, 1000u32..9999).prop_map(|(k, a, b)| Piece::Phone(k, a, b)),
        (1990i32..2030, 1u32..=12, 1u32..=28, 0u8..8)
            .prop_map(|(y, m, d, f)| Piece::Date(y, m, d, f)),
    ]
}

/// The name as written and the planted strings that must be gone.
fn name(s: usize, g: usize, form: u8) -> (String, Vec<String>) {
    let (sk, skana, sr) = SURNAMES[s];
    let (gk, gkana, gr) = GIVEN[g];
    match form {
        0 => (sk.to_string(), vec![sk.to_string()]),
        1 => (format!("{sk}{gk}"), vec![sk.to_string(), gk.to_string()]),
        2 => (format!("{sk} {gk}"), vec![sk.to_string(), gk.to_string()]),
        3 => (skana.to_string(), vec![skana.to_string()]),
        4 => (format!("{skana}　{gkana}"), vec![skana.to_string(), gkana.to_string()]),
        _ => (format!("{} {gr}", sr.to_uppercase()), vec![sr.to_uppercase(), gr.to_string()]),
    }
}

fn render(p: &Piece) -> (String, Vec<String>) {
    match p {
        Piece::Clinical(i) => (PHRASES[*i].to_string(), vec![]),
        Piece::Own(i) => (OWN[*i].0.to_string(), vec![OWN[*i].1.to_string()]),
        Piece::Name(s, g, f, h, role_first) => {
            let (n, planted) = name(*s, *g, *f);
            let text = if *role_first {
                format!("{}{n}", ROLES[h % ROLES.len()])
            } else {
                let hon = HONORIFICS[h % HONORIFICS.len()];
                // Romaji before an ASCII honorific is written with a space (TANAKA Taro Dr).
                let sep = if *f >= 5 && hon.is_ascii() { " " } else { "" };
                format!("{n}{sep}{hon}")
            };
            (text, planted)
        }
        Piece::Phone(k, a, b) => {
            let t = match k {
                0 => format!("075-{a}-{b}"),
                1 => format!("090-{a}0-{b}"),
                _ => format!("(06){a}0-{b}"),
            };
            let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
            (t, vec![digits])
        }
        Piece::Date(y, m, d, f) => {
            let t = match f {
                0 => format!("{y}/{m}/{d}"),
                1 => format!("{y}-{m:02}-{d:02}"),
                2 => format!("{y}.{m}.{d}"),
                3 => format!("{y}年{m}月{d}日"),
                4 => format!("R{}.{m}.{d}", (y - 2018).max(1)),
                5 => format!("令和{}年{m}月{d}日", (y - 2018).max(1)),
                6 => format!("{m}/{d}"),
                _ => format!("{m}月{d}日"),
            };
            (t.clone(), vec![t])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn planted_identifiers_never_survive(
        pieces in proptest::collection::vec((piece(), 0..SEPARATORS.len()), 1..14)
    ) {
        let ids = own_set();
        let mut text = String::new();
        let mut rendered = Vec::new();
        for (p, sep) in &pieces {
            let (t, planted) = render(p);
            text.push_str(&t);
            text.push_str(SEPARATORS[*sep]);
            rendered.push((p.clone(), t, planted));
        }
        let out = scrub(&text, &ids).text;
        let (folded, _) = fold(&out);
        for (p, t, planted) in &rendered {
            for s in planted {
                let core = fold(s).0;
                // A planted string that is also clinical wording (date 2/3 vs 2/3周性).
                if PHRASES.iter().any(|ph| ph.contains(s.as_str()) || fold(ph).0.contains(&core)) {
                    continue;
                }
                prop_assert!(!out.contains(s.as_str()), "{:?} survived in {}", p, out);
                prop_assert!(!folded.contains(&core), "{:?} survived (folded) in {}", p, out);
            }
            if let Piece::Clinical(_) = p {
                prop_assert!(out.contains(t.as_str()), "clinical {} damaged: {}", t, out);
            }
        }
        // Scrubbed output is a fixed point: placeholders and what is left never match.
        prop_assert!(find(&out, &ids).is_empty());
    }
}
