//! Street addresses: prefecture + municipality + the rest, city + ward or town, ward or
//! town + block number, with a building and room after the block number. A prefecture or a
//! city alone is not an address.

use super::{
    at, breaker, first_chars, is_hiragana, is_kanji, is_katakana, kanji_back, starts_with,
    FirstChars,
};
use crate::text::{Hit, Match, Pattern};
use crate::word_lists::{ADDRESS_END, BUILDING_WORDS as BUILDING, PREFECTURES};

/// [`PREFECTURES`] as char slices, split once rather than on every search.
static PREFECTURE_CHARS: std::sync::LazyLock<Vec<Vec<char>>> =
    std::sync::LazyLock::new(|| PREFECTURES.iter().map(|p| p.chars().collect()).collect());

static PREFECTURE_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(PREFECTURES.iter().copied()));

fn address_char(c: &[char], e: usize, from: usize) -> bool {
    let ch = c[e];
    if is_kanji(ch) || ch.is_ascii_digit() || (is_katakana(ch) && ch != '・') {
        return true;
    }
    let between = e > from && e + 1 < c.len() && is_kanji(c[e + 1]);
    match ch {
        'の' | 'が' | 'ヶ' | 'ケ' => between && is_kanji(c[e - 1]),
        '-' => between || (e > from && e + 1 < c.len() && c[e + 1].is_ascii_digit()),
        _ => false,
    }
}

/// Town, block and building part after the municipality.
fn address_rest(c: &[char], from: usize) -> usize {
    let mut e = from;
    while e < c.len() && address_char(c, e, from) {
        if ADDRESS_END.iter().any(|w| starts_with(c, e, w)) {
            break;
        }
        e += 1;
    }
    while e > from && c[e - 1] == '-' {
        e -= 1;
    }
    building_after(c, e)
}

/// A building name and room after an address's block number and one space
/// (`… 1-2-3 パークサイド青葉 309号室`): taken into the address when a room or floor number
/// (`309号室`, `5F`, `3階`) or a building word (マンション, ハイツ, …) shows it is one, so
/// ordinary text after an address is left alone.
fn building_after(c: &[char], e: usize) -> usize {
    const ROOM: &[&str] = &["号室", "号", "階"];
    let space = |k: usize| k < c.len() && (c[k] == ' ' || c[k] == '\u{3000}');
    // The block number ends in a digit (`1-2-3`) or in 番/号/番地 after one (`2丁目15番3号`).
    // `c` is narrowed: full-width digits are ASCII here.
    let digit = |k: usize| c[k].is_ascii_digit();
    let block_end = e > 0
        && (digit(e - 1)
            || (matches!(c[e - 1], '号' | '番') && e >= 2 && digit(e - 2))
            || (e >= 3 && c[e - 2..e] == ['番', '地'] && digit(e - 3)));
    if !block_end || !space(e) {
        return e;
    }
    let mut k = e + 1;
    let name_start = k;
    while k < c.len()
        && k - name_start < 20
        && (is_katakana(c[k]) || is_kanji(c[k]) || c[k].is_ascii_alphabetic())
    {
        k += 1;
    }
    if k == name_start {
        return e;
    }
    let named = BUILDING.iter().any(|w| c[name_start..k].ends_with(&w.chars().collect::<Vec<_>>()));
    // Optional space, then the room: digits (with a dash) and 号室/号/階/F.
    let mut r = if space(k) { k + 1 } else { k };
    let digits = r;
    while r < c.len() && (c[r].is_ascii_digit() || c[r] == '-') {
        r += 1;
    }
    if r > digits {
        if let Some(w) = ROOM.iter().find(|w| starts_with(c, r, w)) {
            return r + w.chars().count();
        }
        if r < c.len() && (c[r] == 'F' || c[r] == 'f') {
            return r + 1;
        }
    }
    if named {
        k
    } else {
        e
    }
}

/// End of a municipality (…市[…区], …郡…町, …区, …町, …村) whose name starts at `from`.
fn municipality_end(c: &[char], from: usize) -> Option<usize> {
    let name = |k: usize| is_kanji(c[k]) || is_hiragana(c[k]) || is_katakana(c[k]);
    let find = |start: usize, set: &str, window: usize| {
        let mut k = start;
        while k < c.len() && k < start + window && name(k) {
            if k > start && set.contains(c[k]) {
                return Some(k);
            }
            k += 1;
        }
        None
    };
    let start = find(from, "郡", 6).map(|k| k + 1).unwrap_or(from);
    let k = find(start, "市区町村", 7)?;
    if c[k] == '市' {
        if let Some(w) = find(k + 1, "区", 5) {
            return Some(w + 1);
        }
    }
    Some(k + 1)
}

fn block_number(c: &[char], s: usize, e: usize) -> bool {
    c[s..e].iter().any(|ch| ch.is_ascii_digit())
        || (s..e).any(|k| ["丁目", "番地", "番", "号"].iter().any(|w| starts_with(c, k, w)))
}

/// Addresses: prefecture + municipality + rest (`京都府京都市上京区…1-2-3`), city + ward or
/// town (`横浜市中区…`), and ward or town + block number (`千代田区丸の内1丁目`).
pub(crate) fn find_addresses(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let prefs = &*PREFECTURE_CHARS;
    let mut push = |s: usize, e: usize| {
        out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Address) });
    };
    for i in 0..n {
        // Prefecture first; 府立/県立/都立 starts an institution name, not an address.
        let may_start = PREFECTURE_FIRST_CHARS.binary_search(&c[i]).is_ok();
        if let Some(p) = prefs.iter().find(|p| may_start && c[i..].starts_with(p)) {
            let m = i + p.len();
            if !at(c, m, '立') {
                if let Some(me) = municipality_end(c, m) {
                    push(i, address_rest(c, me));
                    continue;
                }
            }
        }
        let ch = c[i];
        // City first: the city name is the kanji (≤ 3) or hiragana (≤ 4) before 市.
        if ch == '市' && i > 0 && !at(c, i + 1, '立') {
            let mut a = i;
            while a > 0 && i - a < 3 && is_kanji(c[a - 1]) && !breaker(c[a - 1]) {
                a -= 1;
            }
            if a == i {
                while a > 0 && i - a < 4 && is_hiragana(c[a - 1]) {
                    a -= 1;
                }
            }
            let ward = |k: usize| {
                let mut e = k;
                while e < n && e - k < 6 && is_kanji(c[e]) {
                    if e > k && "区町村".contains(c[e]) {
                        return Some(e + 1);
                    }
                    e += 1;
                }
                None
            };
            if a < i {
                if let Some(we) = ward(i + 1) {
                    push(a, address_rest(c, we));
                    continue;
                }
                // City and town without a ward, with a block number (大津市浜大津1-2).
                let e = address_rest(c, i + 1);
                if e > i + 1 && block_number(c, i + 1, e) {
                    push(a, e);
                    continue;
                }
            }
        }
        // Ward or town with a block number after it.
        if (ch == '区' || ch == '町') && i > 0 {
            // Through a county (北佐久郡軽井沢町), else at most 4 kanji of town name.
            let wide = kanji_back(c, i, 8);
            let a = if c[wide..i].contains(&'郡') { wide } else { kanji_back(c, i, 4) };
            let e = address_rest(c, i + 1);
            if i - a >= 2 && e > i + 1 && block_number(c, i + 1, e) {
                push(a, e);
            }
        }
    }
}
