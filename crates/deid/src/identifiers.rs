//! The exam's own identifiers and the spellings they may take elsewhere in the exam, plus the
//! search normal form ([`fold`]) in which both the identifiers and the text are compared.
//!
//! Identifiers are kept only in memory for the one exam being de-identified; `Debug` shows
//! counts only.
//!
//! Searchable variants are limited to at least 2 characters (4 if all digits): a single kanji
//! surname such as 林 would otherwise match everywhere. Such names are found as part of the
//! full name, or alone only right before an honorific (正さん, see `text::find_ids`).
//!
//! The kana name also yields romaji spellings (Hepburn and its common variants), matched only
//! as whole words.

use super::dates;
use fgw_records::{Column, RawExam};
use std::collections::BTreeSet;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

/// What an identifier is. `key()` is what reports and quarantine reasons name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdKind {
    PatientName,
    PatientKana,
    PatientId,
    BirthDate,
    Address,
    Phone,
    ExamId,
    Physician,
}

impl IdKind {
    pub fn key(self) -> &'static str {
        match self {
            IdKind::PatientName => "patient_name",
            IdKind::PatientKana => "patient_kana",
            IdKind::PatientId => "patient_id",
            IdKind::BirthDate => "birth_date",
            IdKind::Address => "address",
            IdKind::Phone => "phone",
            IdKind::ExamId => "exam_id",
            IdKind::Physician => "physician",
        }
    }

    /// Typed placeholder put where the identifier was.
    pub fn placeholder(self) -> &'static str {
        match self {
            IdKind::PatientName | IdKind::PatientKana => "[氏名]",
            IdKind::PatientId => "[患者ID]",
            IdKind::BirthDate => "[生年月日]",
            IdKind::Address => "[住所]",
            IdKind::Phone => "[電話]",
            IdKind::ExamId => "[検査ID]",
            IdKind::Physician => "[医師]",
        }
    }
}

/// Minimum folded length of a searchable variant, and of an all-digit one.
pub const MIN_VARIANT_CHARS: usize = 2;
pub const MIN_DIGIT_VARIANT_CHARS: usize = 4;

/// True if a folded variant is specific enough to search for.
pub fn searchable(folded: &str) -> bool {
    let n = folded.chars().count();
    if folded.bytes().all(|b| b.is_ascii_digit()) {
        n >= MIN_DIGIT_VARIANT_CHARS
    } else {
        n >= MIN_VARIANT_CHARS
    }
}

/// The exam's identifiers, each variant already in [`fold`]ed form.
#[derive(Clone, Default)]
pub struct IdentifierSet {
    /// (kind, folded variant), longest variant first so overlapping matches prefer the
    /// longest spelling. No duplicates.
    variants: Vec<(IdKind, String)>,
    /// `variants` as chars, in the same order: what the matcher compares, made once per set
    /// rather than once per searched text.
    variant_chars: Vec<(IdKind, Vec<char>)>,
    /// Folded name parts too short to search alone (a one-kanji given name such as 正): only
    /// an identifier right before an honorific (正さん), see `text::find_ids`.
    short_names: Vec<String>,
}

impl std::fmt::Debug for IdentifierSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IdentifierSet({} variants, {} short names)",
            self.variants.len(),
            self.short_names.len()
        )
    }
}

impl IdentifierSet {
    pub fn from_exam(exam: &RawExam) -> IdentifierSet {
        Self::from_fields(&exam.fields)
    }

    /// From identifier fields keyed like export columns (an exam row, or the PID/OBR fields of
    /// an HL7 report).
    pub fn from_fields(fields: &std::collections::BTreeMap<Column, String>) -> IdentifierSet {
        let get = |c: Column| fields.get(&c).map(|s| s.as_str()).filter(|s| !s.is_empty());
        let mut b = Builder::default();
        if let Some(v) = get(Column::PatientName) {
            b.name(IdKind::PatientName, v, true);
        }
        if let Some(v) = get(Column::PatientKana) {
            b.name(IdKind::PatientKana, v, true);
            b.romaji(v);
        }
        if let Some(v) = get(Column::PatientId) {
            b.id(IdKind::PatientId, v);
        }
        if let Some(v) = get(Column::ExamId) {
            b.id(IdKind::ExamId, v);
        }
        if let Some(v) = get(Column::BirthDate) {
            b.add(IdKind::BirthDate, v);
            if let Ok(d) = dates::parse_date(v) {
                for s in dates::date_variants(d).into_iter().chain(dates::english_date_variants(d))
                {
                    b.add(IdKind::BirthDate, &s);
                }
            }
        }
        if let Some(v) = get(Column::Phone) {
            b.phone(v);
        }
        if let Some(v) = get(Column::Address) {
            b.address(v);
        }
        for c in [Column::ReferringPhysician, Column::Operator] {
            if let Some(v) = get(c) {
                b.name(IdKind::Physician, v, false);
            }
        }
        b.finish()
    }

    /// Every searchable (kind, folded variant), longest first.
    pub fn variants(&self) -> impl Iterator<Item = (IdKind, &str)> {
        self.variants.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// [`Self::variants`] as chars.
    pub fn variant_chars(&self) -> impl Iterator<Item = (IdKind, &[char])> {
        self.variant_chars.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    fn new(variants: Vec<(IdKind, String)>, short_names: Vec<String>) -> IdentifierSet {
        let variant_chars = variants.iter().map(|(k, v)| (*k, v.chars().collect())).collect();
        IdentifierSet { variants, variant_chars, short_names }
    }

    /// Name parts too short to search alone, folded; matched only before an honorific.
    pub fn short_names(&self) -> impl Iterator<Item = &str> {
        self.short_names.iter().map(|s| s.as_str())
    }

    pub fn len(&self) -> usize {
        self.variants.len()
    }

    /// One set holding every variant of `sets` (a DICOM object has one set per name
    /// spelling; a search over all of them at once, as OCR verification does, needs one).
    pub fn union(sets: &[IdentifierSet]) -> IdentifierSet {
        let mut variants: Vec<(IdKind, String)> =
            sets.iter().flat_map(|s| s.variants.iter().cloned()).collect();
        variants.sort_by(|a, b| b.1.chars().count().cmp(&a.1.chars().count()).then(a.cmp(b)));
        variants.dedup_by(|a, b| a.1 == b.1);
        let mut short_names: Vec<String> =
            sets.iter().flat_map(|s| s.short_names.iter().cloned()).collect();
        short_names.sort();
        short_names.dedup();
        IdentifierSet::new(variants, short_names)
    }

    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }
}

#[derive(Default)]
struct Builder {
    set: BTreeSet<(IdKind, String)>,
    short: BTreeSet<String>,
}

impl Builder {
    fn add(&mut self, kind: IdKind, raw: &str) {
        let (f, _) = fold(raw);
        if searchable(&f) {
            self.set.insert((kind, f));
        }
    }

    /// Whole name, and each space-separated part (surname first). Physicians: surname only,
    /// since the registry needs their names gone, not every given name in the text.
    fn name(&mut self, kind: IdKind, raw: &str, all_parts: bool) {
        self.add(kind, raw);
        let n: String = raw.nfkc().collect();
        let parts: Vec<&str> = n.split_whitespace().collect();
        if parts.len() > 1 {
            let take = if all_parts { parts.len() } else { 1 };
            for p in &parts[..take] {
                self.add(kind, p);
                let (f, _) = fold(p);
                if all_parts && !f.is_empty() && !searchable(&f) {
                    self.short.insert(f);
                }
            }
        }
    }

    /// Romaji spellings of the kana name (Nakamura Kenichi, KATO Miho): each part alone if
    /// it has at least 3 letters (shorter ones are English words too), and both parts in
    /// both orders. With a space between the parts the two are found separately and joined
    /// by `text::find_ids`; the joined forms are for names written without one.
    fn romaji(&mut self, raw: &str) {
        let n: String = raw.nfkc().collect();
        let parts: Vec<Vec<String>> = n.split_whitespace().map(romaji_variants).collect();
        if parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return;
        }
        for p in &parts {
            for v in p {
                if v.chars().filter(|c| c.is_ascii_alphabetic()).count() >= 3 {
                    self.add(IdKind::PatientName, v);
                }
            }
        }
        if let [a, b] = parts.as_slice() {
            // Most spellings of a full name differ only in one part; 16 × 16 per order keeps
            // the set small while covering the common ones.
            for x in a.iter().take(16) {
                for y in b.iter().take(16) {
                    self.add(IdKind::PatientName, &format!("{x}{y}"));
                    self.add(IdKind::PatientName, &format!("{y}{x}"));
                }
            }
        }
    }

    /// As written, and for all-digit ids also without leading zeros.
    fn id(&mut self, kind: IdKind, raw: &str) {
        self.add(kind, raw);
        let (f, _) = fold(raw);
        if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) {
            self.add(kind, f.trim_start_matches('0'));
        }
    }

    /// Digits only (≥ 9 digits): separators are removed by `fold` anyway; parentheses too here.
    fn phone(&mut self, raw: &str) {
        self.add(IdKind::Phone, raw);
        let (f, _) = fold(raw);
        let digits: String = f.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() >= 9 {
            self.add(IdKind::Phone, &digits);
        }
    }

    /// The whole address, the prefix up to the city/ward, the city/ward without the
    /// prefecture, and the rest after it (if long enough to be specific).
    fn address(&mut self, raw: &str) {
        self.add(IdKind::Address, raw);
        let n: String = raw.nfkc().filter(|c| !c.is_whitespace()).collect();
        let chars: Vec<char> = n.chars().collect();
        let pref = prefecture_len(&n);
        let Some(city_end) = city_end(&chars, pref) else {
            return;
        };
        let head: String = chars[..city_end].iter().collect();
        let city: String = chars[pref..city_end].iter().collect();
        let rest: String = chars[city_end..].iter().collect();
        self.add(IdKind::Address, &head);
        self.add(IdKind::Address, &city);
        if rest.chars().count() >= 4 {
            self.add(IdKind::Address, &rest);
        }
    }

    fn finish(self) -> IdentifierSet {
        // Longest first; ties in kind/text order so the result is deterministic. Lengths are
        // counted once, not in every comparison (a kana name has hundreds of variants).
        let mut counted: Vec<(usize, (IdKind, String))> =
            self.set.into_iter().map(|v| (v.1.chars().count(), v)).collect();
        counted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        // A spelling shared by two kinds (e.g. surname of patient and physician) is kept
        // once, under the first kind. (Borrowed, not cloned: a set has hundreds.)
        let mut seen = std::collections::HashSet::with_capacity(counted.len());
        let first: Vec<bool> = counted.iter().map(|(_, (_, v))| seen.insert(v.as_str())).collect();
        // A short part that is also a searchable spelling elsewhere needs no special rule.
        let short_names: Vec<String> =
            self.short.into_iter().filter(|s| !seen.contains(s.as_str())).collect();
        let variants: Vec<(IdKind, String)> =
            counted.into_iter().zip(first).filter(|(_, f)| *f).map(|((_, v), _)| v).collect();
        IdentifierSet::new(variants, short_names)
    }
}

/// Hepburn romanizations of one kana word (katakana, half-width or hiragana), with the
/// spellings people actually use side by side: long vowels written out, doubled or dropped
/// (おう → ou/oo/o/oh), Kunrei/Nihon-shiki forms (shi/si, chi/ti, tsu/tu, fu/hu, ji/zi,
/// sha/sya, ja/zya/jya), n/m before b/m/p, n' or n before a vowel or y, っ doubling (tch
/// for っち). Lowercase; at most [`MAX_ROMAJI`] spellings, preferred choices first. Empty
/// if the word has anything but kana.
pub fn romaji_variants(kana: &str) -> Vec<String> {
    let (h, _) = fold(kana);
    let chars: Vec<char> = h.chars().collect();
    let Some(tokens) = romaji_tokens(&chars) else {
        return Vec::new();
    };
    let mut out = vec![String::new()];
    for alts in tokens {
        let mut next = Vec::with_capacity(out.len() * alts.len());
        for prefix in &out {
            for a in &alts {
                if next.len() < MAX_ROMAJI {
                    next.push(format!("{prefix}{a}"));
                }
            }
        }
        out = next;
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out
}

/// Cap on spellings per word: names are short, but choices multiply.
const MAX_ROMAJI: usize = 96;

/// Alternatives for a (hiragana) syllable, Hepburn first.
fn syllable(s: &str) -> Option<&'static [&'static str]> {
    Some(match s {
        "あ" => &["a"],
        "い" => &["i"],
        "う" => &["u"],
        "え" => &["e"],
        "お" => &["o"],
        "を" => &["o", "wo"],
        "か" => &["ka"],
        "き" => &["ki"],
        "く" => &["ku"],
        "け" => &["ke"],
        "こ" => &["ko"],
        "が" => &["ga"],
        "ぎ" => &["gi"],
        "ぐ" => &["gu"],
        "げ" => &["ge"],
        "ご" => &["go"],
        "さ" => &["sa"],
        "し" => &["shi", "si"],
        "す" => &["su"],
        "せ" => &["se"],
        "そ" => &["so"],
        "ざ" => &["za"],
        "じ" => &["ji", "zi"],
        "ぢ" => &["ji", "di", "zi"],
        "ず" | "づ" => &["zu", "du"],
        "ぜ" => &["ze"],
        "ぞ" => &["zo"],
        "た" => &["ta"],
        "ち" => &["chi", "ti"],
        "つ" => &["tsu", "tu"],
        "て" => &["te"],
        "と" => &["to"],
        "だ" => &["da"],
        "で" => &["de"],
        "ど" => &["do"],
        "な" => &["na"],
        "に" => &["ni"],
        "ぬ" => &["nu"],
        "ね" => &["ne"],
        "の" => &["no"],
        "は" => &["ha"],
        "ひ" => &["hi"],
        "ふ" => &["fu", "hu"],
        "へ" => &["he"],
        "ほ" => &["ho"],
        "ば" => &["ba"],
        "び" => &["bi"],
        "ぶ" => &["bu"],
        "べ" => &["be"],
        "ぼ" => &["bo"],
        "ぱ" => &["pa"],
        "ぴ" => &["pi"],
        "ぷ" => &["pu"],
        "ぺ" => &["pe"],
        "ぽ" => &["po"],
        "ま" => &["ma"],
        "み" => &["mi"],
        "む" => &["mu"],
        "め" => &["me"],
        "も" => &["mo"],
        "や" => &["ya"],
        "ゆ" => &["yu"],
        "よ" => &["yo"],
        "ら" => &["ra"],
        "り" => &["ri"],
        "る" => &["ru"],
        "れ" => &["re"],
        "ろ" => &["ro"],
        "わ" => &["wa"],
        "ゐ" => &["i", "wi"],
        "ゑ" => &["e", "we"],
        "ゔ" => &["vu", "bu"],
        "ぁ" => &["a"],
        "ぃ" => &["i"],
        "ぅ" => &["u"],
        "ぇ" => &["e"],
        "ぉ" => &["o"],
        "ゃ" => &["ya"],
        "ゅ" => &["yu"],
        "ょ" => &["yo"],
        "きゃ" => &["kya"],
        "きゅ" => &["kyu"],
        "きょ" => &["kyo"],
        "ぎゃ" => &["gya"],
        "ぎゅ" => &["gyu"],
        "ぎょ" => &["gyo"],
        "しゃ" => &["sha", "sya"],
        "しゅ" => &["shu", "syu"],
        "しぇ" => &["she", "sye"],
        "しょ" => &["sho", "syo"],
        "じゃ" | "ぢゃ" => &["ja", "zya", "jya"],
        "じゅ" | "ぢゅ" => &["ju", "zyu", "jyu"],
        "じぇ" => &["je", "zye"],
        "じょ" | "ぢょ" => &["jo", "zyo", "jyo"],
        "ちゃ" => &["cha", "tya", "cya"],
        "ちゅ" => &["chu", "tyu", "cyu"],
        "ちぇ" => &["che", "tye"],
        "ちょ" => &["cho", "tyo", "cyo"],
        "にゃ" => &["nya"],
        "にゅ" => &["nyu"],
        "にょ" => &["nyo"],
        "ひゃ" => &["hya"],
        "ひゅ" => &["hyu"],
        "ひょ" => &["hyo"],
        "びゃ" => &["bya"],
        "びゅ" => &["byu"],
        "びょ" => &["byo"],
        "ぴゃ" => &["pya"],
        "ぴゅ" => &["pyu"],
        "ぴょ" => &["pyo"],
        "みゃ" => &["mya"],
        "みゅ" => &["myu"],
        "みょ" => &["myo"],
        "りゃ" => &["rya"],
        "りゅ" => &["ryu"],
        "りょ" => &["ryo"],
        "ふぁ" => &["fa"],
        "ふぃ" => &["fi"],
        "ふぇ" => &["fe"],
        "ふぉ" => &["fo"],
        "てぃ" => &["ti"],
        "でぃ" => &["di"],
        "うぃ" => &["wi"],
        "うぇ" => &["we"],
        "うぉ" => &["wo"],
        "ゔぁ" => &["va"],
        _ => return None,
    })
}

fn last_vowel(s: &str) -> Option<char> {
    s.chars().last().filter(|c| "aiueo".contains(*c))
}

/// Per-position alternatives for a hiragana word; None if it holds a non-kana char.
fn romaji_tokens(h: &[char]) -> Option<Vec<Vec<String>>> {
    // First pass: syllables, with っ, ん and ー kept as markers.
    enum T {
        Syl(&'static [&'static str]),
        Sokuon,
        N,
        Long,
    }
    let mut ts = Vec::new();
    let mut i = 0;
    while i < h.len() {
        let two: String = h[i..(i + 2).min(h.len())].iter().collect();
        let one = h[i].to_string();
        if h.len() > i + 1 {
            if let Some(a) = syllable(&two) {
                ts.push(T::Syl(a));
                i += 2;
                continue;
            }
        }
        ts.push(match h[i] {
            'っ' => T::Sokuon,
            'ん' => T::N,
            'ー' => T::Long,
            _ => T::Syl(syllable(&one)?),
        });
        i += 1;
    }
    let first = |t: Option<&T>| match t {
        Some(T::Syl(a)) => a[0].chars().next(),
        _ => None,
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut prev_vowel: Option<char> = None;
    let mut k = 0;
    while k < ts.len() {
        let alts: Vec<String> = match &ts[k] {
            T::Syl(a) => {
                // A vowel after the same (or a lengthening) vowel is a long vowel.
                let long: Option<&[&str]> = match (prev_vowel, a[0]) {
                    (Some('o'), "u") => Some(&["u", "", "o", "h"]),
                    (Some('o'), "o") => Some(&["o", "", "h"]),
                    (Some('u'), "u") => Some(&["u", ""]),
                    (Some('e'), "i") => Some(&["i", ""]),
                    (Some('i'), "i") => Some(&["i", ""]),
                    (Some('a'), "a") => Some(&["a", ""]),
                    _ => None,
                };
                prev_vowel = last_vowel(a[0]);
                match long {
                    Some(l) => {
                        // The vowel itself stays the same vowel for what follows.
                        prev_vowel = None;
                        l.iter().map(|s| s.to_string()).collect()
                    }
                    None => a.iter().map(|s| s.to_string()).collect(),
                }
            }
            T::Sokuon => {
                // Doubles the next consonant (っち → tchi); dropped at the end.
                let Some(T::Syl(a)) = ts.get(k + 1) else {
                    k += 1;
                    continue;
                };
                let doubled: Vec<String> = a
                    .iter()
                    .map(|s| {
                        let c = s.chars().next().unwrap_or('t');
                        if s.starts_with("ch") {
                            format!("t{s}")
                        } else if "aiueo".contains(c) {
                            s.to_string()
                        } else {
                            format!("{c}{s}")
                        }
                    })
                    .collect();
                prev_vowel = last_vowel(a[0]);
                out.push(doubled);
                k += 2;
                continue;
            }
            T::N => {
                prev_vowel = None;
                match first(ts.get(k + 1)) {
                    Some(c) if "aiueoy".contains(c) => vec!["n'".into(), "n".into(), "nn".into()],
                    Some(c) if "bmp".contains(c) => vec!["n".into(), "m".into()],
                    _ => vec!["n".into()],
                }
            }
            T::Long => match prev_vowel {
                Some('o') => vec!["o".into(), "".into(), "u".into(), "h".into()],
                Some(v) => vec![v.to_string(), "".into()],
                None => vec!["".into()],
            },
        };
        out.push(alts);
        k += 1;
    }
    Some(out)
}

const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// Length in chars of a leading prefecture name (0 if none).
fn prefecture_len(s: &str) -> usize {
    PREFECTURES.iter().find(|p| s.starts_with(*p)).map(|p| p.chars().count()).unwrap_or(0)
}

/// End (exclusive) of the municipality after `from`: up to the first 市/区/町/村 (past a
/// 郡 if present), then through a ward (区) of a designated city.
fn city_end(chars: &[char], from: usize) -> Option<usize> {
    const WINDOW: usize = 8;
    let find = |start: usize, set: &[char]| {
        (start..chars.len().min(start + WINDOW)).find(|&i| i > start && set.contains(&chars[i]))
    };
    let start = find(from, &['郡']).map(|i| i + 1).unwrap_or(from);
    let i = find(start, &['市', '区', '町', '村'])?;
    if chars[i] == '市' {
        if let Some(w) = find(i + 1, &['区']) {
            return Some(w + 1);
        }
    }
    Some(i + 1)
}

/// Variant kanji folded to the common form, so 髙橋 finds 高橋. Old/new forms common in names.
const KANJI_VARIANTS: &[(char, char)] = &[
    ('髙', '高'),
    ('﨑', '崎'),
    ('嵜', '崎'),
    ('碕', '崎'),
    ('邊', '辺'),
    ('邉', '辺'),
    ('齋', '斎'),
    ('齊', '斎'),
    ('斉', '斎'),
    ('濱', '浜'),
    ('濵', '浜'),
    ('澤', '沢'),
    ('櫻', '桜'),
    ('廣', '広'),
    ('國', '国'),
    ('德', '徳'),
    ('眞', '真'),
    ('惠', '恵'),
    ('藏', '蔵'),
    ('龍', '竜'),
    ('嶋', '島'),
    ('嶌', '島'),
    ('冨', '富'),
    ('峯', '峰'),
    ('槇', '槙'),
    ('渕', '淵'),
    ('𠮷', '吉'),
    ('桒', '桑'),
    ('莊', '荘'),
    ('彌', '弥'),
    ('壽', '寿'),
    ('實', '実'),
    ('團', '団'),
    ('榮', '栄'),
    ('滿', '満'),
    ('禮', '礼'),
    ('與', '与'),
    ('會', '会'),
    ('淸', '清'),
    ('靜', '静'),
    ('曾', '曽'),
    ('晉', '晋'),
    ('來', '来'),
    ('黑', '黒'),
    ('萬', '万'),
    ('邨', '村'),
    ('舘', '館'),
    ('髮', '髪'),
    ('條', '条'),
    ('埜', '野'),
];

fn fold_kanji(c: char) -> char {
    KANJI_VARIANTS.iter().find(|(v, _)| *v == c).map(|(_, n)| *n).unwrap_or(c)
}

/// Characters removed by `fold`: hyphens and dashes of every width, and the middle dot.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' | '・' | '\u{FF65}'
    )
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// A folded text and, for each folded char, the range of original chars it came from.
#[derive(Clone)]
pub struct Folded {
    pub chars: Vec<char>,
    /// `origin[i] = (start, end)`: original char indices `start..end` produced folded char i.
    pub origin: Vec<(usize, usize)>,
    /// The original text as chars.
    pub original: Vec<char>,
}

impl Folded {
    /// True if whitespace was removed between folded chars `i - 1` and `i`: a word boundary
    /// for digit runs even though `fold` joined them.
    pub fn gap_has_space(&self, i: usize) -> bool {
        if i == 0 || i >= self.chars.len() {
            return true;
        }
        let (a, b) = (self.origin[i - 1].1, self.origin[i].0);
        a < b && self.original[a..b].iter().any(|c| c.is_whitespace())
    }

    /// The original chars removed between folded chars `i - 1` and `i`.
    pub fn gap(&self, i: usize) -> &[char] {
        if i == 0 || i >= self.chars.len() {
            return &[];
        }
        let (a, b) = (self.origin[i - 1].1, self.origin[i].0);
        if a < b {
            &self.original[a..b]
        } else {
            &[]
        }
    }

    /// Original char range covered by folded chars `start..end` (end exclusive, non-empty).
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        (self.origin[start].0, self.origin[end - 1].1)
    }
}

/// The search normal form, with a map from each folded char to the original char index it
/// came from (the first original char of its NFKC cluster).
///
/// Folding: NFKC (full/half width, ㍼ → 昭和); katakana → hiragana; variant kanji → common
/// form; uppercase; variation selectors, whitespace, hyphens/dashes (‐ - － ― – — −) and
/// `・` removed; the long-vowel mark ー removed only between two digits (where it is a dash
/// typed in kana mode), because inside kana it is part of the name (ユーコ ≠ ユコ).
pub fn fold(text: &str) -> (String, Vec<usize>) {
    let f = fold_mapped(text);
    (f.chars.iter().collect(), f.origin.iter().map(|r| r.0).collect())
}

/// [`fold`] with the full origin ranges; what the matchers use.
pub fn fold_mapped(text: &str) -> Folded {
    let original: Vec<char> = text.chars().collect();
    let mut chars = Vec::with_capacity(original.len());
    let mut origin = Vec::with_capacity(original.len());
    let mut i = 0;
    while i < original.len() {
        // A cluster is a char plus the combining marks NFKC may compose onto it
        // (ﾀﾞ → ダ), so every folded char maps to whole original chars.
        let mut j = i + 1;
        while j < original.len() && attaches(original[j]) {
            j += 1;
        }
        let c = original[i];
        if j == i + 1 && c.is_ascii() {
            // Alone, an ASCII char is its own NFKC form and no kana or variant kanji: only
            // the removals and the uppercasing below apply (most header text is ASCII).
            if !(c.is_whitespace() || is_separator(c)) {
                chars.push(c.to_ascii_uppercase());
                origin.push((i, j));
            }
            i = j;
            continue;
        }
        for c in original[i..j].iter().copied().nfkc() {
            if c.is_whitespace() || is_separator(c) || is_variation_selector(c) {
                continue;
            }
            let c = fold_kanji(katakana_to_hiragana(c));
            for u in c.to_uppercase() {
                chars.push(u);
                origin.push((i, j));
            }
        }
        i = j;
    }
    // ー between digits is a dash.
    let mut k = 1;
    while k + 1 < chars.len() {
        if chars[k] == 'ー' && chars[k - 1].is_ascii_digit() && chars[k + 1].is_ascii_digit() {
            chars.remove(k);
            origin.remove(k);
        } else {
            k += 1;
        }
    }
    Folded { chars, origin, original }
}

fn attaches(c: char) -> bool {
    // ASCII decomposes to itself, combining class 0.
    !c.is_ascii() && c.nfkd().next().is_some_and(|d| canonical_combining_class(d) != 0)
}

fn katakana_to_hiragana(c: char) -> char {
    match c {
        'ァ'..='ヶ' | 'ヽ' | 'ヾ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exam(fields: &[(Column, &str)]) -> RawExam {
        RawExam::with_fields(fields)
    }

    fn has(set: &IdentifierSet, kind: IdKind, raw: &str) -> bool {
        let (f, _) = fold(raw);
        set.variants().any(|(k, v)| k == kind && v == f)
    }

    #[test]
    fn fold_normalizes_and_maps() {
        assert_eq!(fold("ﾀｶﾊｼ ﾊﾅｺ").0, "たかはしはなこ");
        assert_eq!(fold("タカハシ　ハナコ").0, "たかはしはなこ");
        assert_eq!(fold("髙橋").0, "高橋");
        assert_eq!(fold("山﨑").0, "山崎");
        assert_eq!(fold("０９０‐１２３４‐５６７８").0, "09012345678");
        assert_eq!(fold("090ー1234ー5678").0, "09012345678");
        assert_eq!(fold("ユーコ").0, "ゆーこ");
        assert_eq!(fold("e2026").0, "E2026");
        assert_eq!(fold("㍼25年").0, "昭和25年");
        assert_eq!(fold("ヤマ・ダ").0, "やまだ");
        // ﾀﾞ is two original chars folded into one; the map points at the first.
        let (f, map) = fold("aﾀﾞb");
        assert_eq!(f, "AだB");
        assert_eq!(map, vec![0, 1, 3]);
        let m = fold_mapped("aﾀﾞb");
        assert_eq!(m.original_range(1, 2), (1, 3));
    }

    #[test]
    fn from_exam_variants() {
        let e = exam(&[
            (Column::PatientName, "髙橋　花子"),
            (Column::PatientKana, "ﾀｶﾊｼ ﾊﾅｺ"),
            (Column::PatientId, "00123456"),
            (Column::BirthDate, "S25.01.02"),
            (Column::Phone, "０９０‐１２３４‐５６７８"),
            (Column::Address, "京都府京都市上京区丸太町通烏丸西入ル123"),
            (Column::ExamId, "E2026112500123"),
            (Column::ReferringPhysician, "佐藤 一郎"),
            (Column::Operator, "鈴木 花"),
        ]);
        let s = IdentifierSet::from_exam(&e);
        assert!(has(&s, IdKind::PatientName, "高橋花子"));
        assert!(has(&s, IdKind::PatientName, "高橋"));
        assert!(has(&s, IdKind::PatientName, "花子"));
        assert!(has(&s, IdKind::PatientKana, "たかはしはなこ"));
        assert!(has(&s, IdKind::PatientKana, "タカハシ"));
        assert!(has(&s, IdKind::PatientId, "00123456"));
        assert!(has(&s, IdKind::PatientId, "123456"));
        assert!(has(&s, IdKind::BirthDate, "昭和25年1月2日"));
        assert!(has(&s, IdKind::BirthDate, "1950/1/2"));
        assert!(has(&s, IdKind::Phone, "09012345678"));
        assert!(has(&s, IdKind::Address, "京都府京都市上京区"));
        assert!(has(&s, IdKind::Address, "京都市上京区"));
        assert!(has(&s, IdKind::ExamId, "E2026112500123"));
        assert!(has(&s, IdKind::Physician, "佐藤一郎"));
        assert!(has(&s, IdKind::Physician, "佐藤"));
        assert!(has(&s, IdKind::Physician, "鈴木"));
        // Given names of physicians and 1-char parts are not searched alone.
        assert!(!has(&s, IdKind::Physician, "一郎"));
        assert!(!has(&s, IdKind::Physician, "花"));
        assert!(s.variants().all(|(_, v)| searchable(v)));
        assert!(!format!("{s:?}").contains("123456"));
    }

    #[test]
    fn romaji_hepburn_variants() {
        let has = |kana: &str, want: &[&str]| {
            let v = romaji_variants(kana);
            for w in want {
                assert!(v.iter().any(|x| x == w), "{kana}: {w} not in {v:?}");
            }
        };
        has("カトウ", &["katou", "kato", "katoo", "katoh"]);
        has("ｹﾝｲﾁ", &["ken'ichi", "kenichi", "keniti"]);
        has("ちひろ", &["chihiro", "tihiro"]);
        has("コバヤシ", &["kobayashi", "kobayasi"]);
        has("ジュンペイ", &["junpei", "jumpei", "zyunpei", "jyunpe"]);
        has("ハットリ", &["hattori"]);
        has("ホッチ", &["hotchi", "hotti"]);
        has("ユーコ", &["yuuko", "yuko"]);
        has("シュウヘイ", &["shuuhei", "shuhei", "syuhei"]);
        has("オオノ", &["oono", "ono", "ohno"]);
        assert!(romaji_variants("山田").is_empty());
    }

    #[test]
    fn romaji_and_short_parts_of_the_patient_name() {
        let s = IdentifierSet::from_exam(&exam(&[
            (Column::PatientName, "田村 正"),
            (Column::PatientKana, "タムラ タダシ"),
        ]));
        for v in ["TAMURA", "TADASHI", "TADASI", "TAMURATADASHI", "TADASHITAMURA"] {
            assert!(has(&s, IdKind::PatientName, v), "{v}");
        }
        assert_eq!(s.short_names().collect::<Vec<_>>(), vec!["正"]);
        assert!(!format!("{s:?}").contains('正'));
        // Parts under 3 letters are not searched alone.
        let s = IdentifierSet::from_exam(&exam(&[(Column::PatientKana, "モリ アイ")]));
        assert!(has(&s, IdKind::PatientName, "MORI"));
        assert!(!has(&s, IdKind::PatientName, "AI"));
        assert!(has(&s, IdKind::PatientName, "MORIAI"));
    }

    #[test]
    fn short_ids_and_city_splits() {
        let s = IdentifierSet::from_exam(&exam(&[(Column::PatientId, "00000123")]));
        assert!(has(&s, IdKind::PatientId, "00000123"));
        assert!(!has(&s, IdKind::PatientId, "123"));
        let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "東京都千代田区丸の内1-1")]));
        assert!(has(&s, IdKind::Address, "東京都千代田区"));
        let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "北海道札幌市中央区北1条")]));
        assert!(has(&s, IdKind::Address, "北海道札幌市中央区"));
        let s = IdentifierSet::from_exam(&exam(&[(Column::Address, "長野県北佐久郡軽井沢町長倉")]));
        assert!(has(&s, IdKind::Address, "長野県北佐久郡軽井沢町"));
    }
}
