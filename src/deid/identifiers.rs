//! The exam's own identifiers and the spellings they may take elsewhere in the exam, plus the
//! search normal form ([`fold`]) in which both the identifiers and the text are compared.
//!
//! Identifiers are kept only in memory for the one exam being de-identified; `Debug` shows
//! counts only.
//!
//! Searchable variants are limited to at least 2 characters (4 if all digits): a single kanji
//! surname such as 林 would otherwise match everywhere. Such names are only found as part of
//! the full name.

use super::dates;
use crate::record::{Column, RawExam};
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
}

impl std::fmt::Debug for IdentifierSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentifierSet({} variants)", self.variants.len())
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
                for s in dates::date_variants(d) {
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

    pub fn len(&self) -> usize {
        self.variants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }
}

#[derive(Default)]
struct Builder {
    set: BTreeSet<(IdKind, String)>,
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
        let mut variants: Vec<(IdKind, String)> = self.set.into_iter().collect();
        // Longest first; ties in kind/text order so the result is deterministic.
        variants.sort_by(|a, b| b.1.chars().count().cmp(&a.1.chars().count()).then(a.cmp(b)));
        // A spelling shared by two kinds (e.g. surname of patient and physician) is kept
        // once, under the first kind.
        let mut seen = BTreeSet::new();
        variants.retain(|(_, v)| seen.insert(v.clone()));
        IdentifierSet { variants }
    }
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
        let cluster: String = original[i..j].iter().collect();
        for c in cluster.nfkc() {
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
    c.nfkd().next().is_some_and(|d| canonical_combining_class(d) != 0)
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
