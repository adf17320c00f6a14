//! Japanese free-text patterns that do not depend on the exam's own identifiers: other
//! people's names next to an honorific or role word, dates in every written form, street
//! addresses, and numbers announced by an identifying keyword (患者ID, カルテ番号, 保険者番号…).
//!
//! These finders read the original chars through a 1:1 narrowed view (full-width ASCII made
//! ASCII, dashes unified) instead of the folded form: here the separators (`/`, `-`, the space
//! between surname and given name) and the script (katakana vs hiragana) carry meaning, and
//! `fold` removes or merges them.
//!
//! Precision rules, on purpose conservative on the side of replacing:
//! - a name is looked for next to a cue (honorific, role, family word, `Dr`) by the rules of
//!   `names`, and without one by a second opinion, the morphological analyser (`morph`: MeCab
//!   with IPADIC) and the reading lexicon (`name_lexicon`), combined in `no_cue`: eponyms,
//!   drugs, anatomy and term-list spellings stay, and every name match is completed over the
//!   given name after it and the surname before it;
//! - clinical compounds before a role word (内視鏡医師, 担当看護師, 胃体下部様, 隆起様) are
//!   rejected by a stop-list and by "breaker" kanji that never occur in names (癌, 胃, 医…);
//! - durations and sizes (`3日後`, `1年後`, `10mm`) and fractions (`2/3周`) are not dates; a
//!   bare year (`2026年`) or month (`11月`) is kept; `M/D` after a score word (`NRS 2/10`) or
//!   before 陽性/陰性 or "の + a quantity" (`2/3の日数`) is a fraction. A bare `1/2` elsewhere
//!   is still read as a date: the two cannot be told apart without context;
//! - a prefecture alone or a city alone (`京都市在住`) is not an address.
//!
//! The word lists these finders use (stop words, honorifics, role words, eras, prefectures,
//! number keywords…) are reviewed data files under `data/freetext/`, see `word_lists`.
//!
//! One module per kind of pattern: `names` (and given names after a found surname), `no_cue`
//! (names without a cue, with `morph` and `name_lexicon`), `dates`, `addresses`,
//! `number_keys` (keyed and accession numbers). Shared here: the narrowed view and the char
//! classes and prefix tests they all use.

mod addresses;
mod dates;
mod morph;
mod name_lexicon;
mod names;
mod no_cue;
mod number_keys;
#[cfg(test)]
mod tests;

use super::identifiers::fold;
use super::word_lists::NAME_BREAKERS;

pub(super) use addresses::find_addresses;
pub(super) use dates::find_dates;
pub(super) use morph::analyse;
pub use morph::AnalyserError;
pub(super) use name_lexicon::lexicon;
pub(super) use names::{extend_given_names, find_person_names};
pub(super) use no_cue::add_uncued_names;
pub(super) use number_keys::{find_accession_numbers, find_keyed_numbers};

/// The original chars, full-width ASCII narrowed, ideographic space made ASCII, dashes
/// unified; one char per original char so indices are original indices.
pub(super) fn narrow(orig: &[char]) -> Vec<char> {
    let mut c: Vec<char> = orig
        .iter()
        .map(|&ch| match ch {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch),
            '\u{3000}' | '\t' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => '-',
            _ => ch,
        })
        .collect();
    // ー typed between digits in kana mode is a dash.
    for i in 1..c.len().saturating_sub(1) {
        if matches!(c[i], 'ー' | 'ｰ') && c[i - 1].is_ascii_digit() && c[i + 1].is_ascii_digit() {
            c[i] = '-';
        }
    }
    c
}

pub(super) fn is_kanji(ch: char) -> bool {
    matches!(ch,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}' | '々' | '〆')
}

fn is_katakana(ch: char) -> bool {
    matches!(ch, '\u{30A1}'..='\u{30FA}' | 'ー' | 'ヽ' | 'ヾ' | '・' | '\u{FF65}'..='\u{FF9F}')
}

fn is_hiragana(ch: char) -> bool {
    matches!(ch, '\u{3041}'..='\u{3096}' | 'ゝ' | 'ゞ')
}

/// Kanji, or ノ/ヶ/ケ between two kanji (一ノ瀬, 霞ヶ関).
fn kanji_at(c: &[char], i: usize) -> bool {
    is_kanji(c[i])
        || (matches!(c[i], 'ノ' | 'ヶ' | 'ケ')
            && i > 0
            && i + 1 < c.len()
            && is_kanji(c[i - 1])
            && is_kanji(c[i + 1]))
}

/// Kanji that do not occur in Japanese personal names (`name-breaker-kanji.txt`): disease,
/// organ, procedure and role characters. A name candidate never extends over one, so
/// 病院田中先生 yields 田中 and 内視鏡医師 yields nothing.
fn breaker(ch: char) -> bool {
    NAME_BREAKERS.contains(ch)
}

/// Chars `s..e` in folded form, as the stop words are written.
fn key(c: &[char], s: usize, e: usize) -> String {
    let raw: String = c[s..e].iter().collect();
    fold(&raw).0
}

/// Run of name kanji ending at `e`, at most `max` long, stopping at a breaker.
fn kanji_back(c: &[char], e: usize, max: usize) -> usize {
    let mut a = e;
    while a > 0 && e - a < max && kanji_at(c, a - 1) && !breaker(c[a - 1]) {
        a -= 1;
    }
    a
}

// Char by char, stopping at the first mismatch: these run for every position and every
// word of the lists, so counting the word's chars first would dominate.
fn starts_with_by(c: &[char], i: usize, w: &str, same: impl Fn(&char, &char) -> bool) -> bool {
    let mut rest = c.get(i..).unwrap_or_default().iter();
    w.chars().all(|b| rest.next().is_some_and(|a| same(a, &b)))
}

fn starts_with(c: &[char], i: usize, w: &str) -> bool {
    starts_with_by(c, i, w, char::eq)
}

fn starts_with_ascii_ci(c: &[char], i: usize, w: &str) -> bool {
    starts_with_by(c, i, w, char::eq_ignore_ascii_case)
}

/// The first chars of `words` (both cases of ASCII letters), sorted: most positions of a
/// text start none of a list's words, and a lookup here rules them out before the list is
/// walked word by word.
fn first_chars<'a>(words: impl Iterator<Item = &'a str>) -> Vec<char> {
    let mut v: Vec<char> = words
        .filter_map(|w| w.chars().next())
        .flat_map(|ch| [ch.to_ascii_lowercase(), ch.to_ascii_uppercase()])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

type FirstChars = std::sync::LazyLock<Vec<char>>;

/// First index at or after `i` that is not a space.
fn sp(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] == ' ' {
        i += 1;
    }
    i
}

/// True if `c[i]` is `ch`.
fn at(c: &[char], i: usize, ch: char) -> bool {
    c.get(i) == Some(&ch)
}
