//! Identifying numbers: any number after a keyword (患者ID, カルテ番号, 記号, 番号) and
//! accession, pathology and certificate numbers by their shape (`S24-01873`, `第1234-56号`).

use super::{at, first_chars, is_kanji, starts_with_ascii_ci, FirstChars};
use crate::text::{Hit, Match, Pattern};
use crate::word_lists::NUMBER_KEYS;

static NUMBER_KEY_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(NUMBER_KEYS.iter().copied()));

/// Numbers after an identifying keyword, even short ones: `患者ID 123`, `ID:A12345`,
/// `記号 12 番号 345`.
pub(crate) fn find_keyed_numbers(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    for p in 0..n {
        if NUMBER_KEY_FIRST_CHARS.binary_search(&c[p]).is_err() {
            continue;
        }
        let Some(w) = NUMBER_KEYS.iter().find(|w| starts_with_ascii_ci(c, p, w)) else {
            continue;
        };
        let prev = if p > 0 { Some(c[p - 1]) } else { None };
        let bare = matches!(*w, "記号" | "番号" | "ID" | "MRN");
        if bare && prev.is_some_and(|ch| is_kanji(ch) && *w != "ID") {
            continue;
        }
        if w.is_ascii() && prev.is_some_and(|ch| ch.is_ascii_alphanumeric()) {
            continue;
        }
        let mut s = p + w.chars().count();
        while s < n && matches!(c[s], ' ' | ':' | '#' | '.' | '=') && s - p < 12 {
            s += 1;
        }
        let mut e = s;
        while e < n && e - s < 3 && c[e].is_ascii_alphabetic() {
            e += 1;
        }
        let digits_from = e;
        while e < n && (c[e].is_ascii_digit() || (c[e] == '-' && e > digits_from)) {
            e += 1;
        }
        while e > digits_from && c[e - 1] == '-' {
            e -= 1;
        }
        let has_digit = c[digits_from..e].iter().any(|ch| ch.is_ascii_digit());
        let letter_joined = e < n && c[e].is_ascii_alphabetic();
        let unit = e < n && "時分秒歳名個回枚本日月年件例:/%".contains(c[e]);
        let decimal = at(c, e, '.') && c.get(e + 1).is_some_and(|ch| ch.is_ascii_digit());
        if has_digit && !letter_joined && !unit && !decimal {
            out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Number) });
        }
    }
}

/// Accession and pathology numbers with a letter part (`S24-01873`, `P24-00931`,
/// `24-G-000512`) and certificate numbers (`第1234-56号`). The last digit group needs 4+
/// digits, so `CA19-9`, `LA-B` and `0-IIc` stay.
pub(crate) fn find_accession_numbers(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let run = |k: usize, pred: fn(char) -> bool| {
        let mut e = k;
        while e < n && pred(c[e]) {
            e += 1;
        }
        e
    };
    let digit = |ch: char| ch.is_ascii_digit();
    let upper = |ch: char| ch.is_ascii_uppercase();
    for i in 0..n {
        if i > 0 && c[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let end_ok = |e: usize| c.get(e).is_none_or(|ch| !ch.is_ascii_alphanumeric());
        // Letters + digits - digits
        let l = run(i, upper);
        if (1..=3).contains(&(l - i)) {
            let d = run(l, digit);
            if (2..=4).contains(&(d - l)) && at(c, d, '-') {
                let d2 = run(d + 1, digit);
                if d2 - (d + 1) >= 4 && end_ok(d2) {
                    out.push(Match { start: i, end: d2, hit: Hit::Pattern(Pattern::Number) });
                    continue;
                }
            }
        }
        // digits - letters - digits
        let d = run(i, digit);
        if (2..=4).contains(&(d - i)) && at(c, d, '-') {
            let l = run(d + 1, upper);
            if (1..=3).contains(&(l - d - 1)) && at(c, l, '-') {
                let d2 = run(l + 1, digit);
                if d2 - (l + 1) >= 4 && end_ok(d2) {
                    out.push(Match { start: i, end: d2, hit: Hit::Pattern(Pattern::Number) });
                    continue;
                }
            }
        }
        // 第…号
        if c[i] == '第' {
            let s = i + 1;
            let mut e = s;
            while e < n && (c[e].is_ascii_digit() || (c[e] == '-' && e > s)) {
                e += 1;
            }
            let digits = c[s..e].iter().filter(|ch| ch.is_ascii_digit()).count();
            if digits >= 3 && c[e - 1] != '-' && at(c, e, '号') {
                out.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::Number) });
            }
        }
    }
}
