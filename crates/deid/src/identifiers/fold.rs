//! The search normal form: identifiers and text are both folded (NFKC, katakana as hiragana,
//! variant kanji to their common form, upper case, separators removed) and compared there,
//! with a map back to the original chars.

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

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
    /// The folded chars.
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
