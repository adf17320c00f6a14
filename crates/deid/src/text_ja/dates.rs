//! Dates in every written form: Western (`2026/11/25`, `2026年11月25日`), era (`令和8年…`,
//! `R8.11.25`, `H15.6`), month and day (`11/25`, `11月25日`) and English (`Dec 25, 1972`).
//! Durations, sizes, fractions and scores are not dates.

use super::{at, sp, starts_with, starts_with_ascii_ci};
use crate::dates::MONTHS_EN;
use crate::text::{Hit, Match, Pattern};
use crate::word_lists::{
    DATE_ERAS as ERAS, DATE_FRACTION_OF as FRACTION_OF, DATE_SCORE_WORDS as SCORE_WORDS,
};

/// Up to `max` digits at `i` (at least `min`), not followed by another digit.
fn num(c: &[char], i: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let mut e = i;
    let mut v = 0u32;
    while e < c.len() && e - i < max && c[e].is_ascii_digit() {
        v = v * 10 + c[e].to_digit(10).unwrap_or(0);
        e += 1;
    }
    let more = e < c.len() && c[e].is_ascii_digit();
    (e - i >= min && !more).then_some((v, e))
}

fn md_ok(m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// `M月[D日]` at `i`: end after 月 or after 日.
fn month_day_kanji(c: &[char], i: usize) -> Option<usize> {
    let (m, e) = num(c, i, 1, 2)?;
    let e = sp(c, e);
    if !(1..=12).contains(&m) || !at(c, e, '月') {
        return None;
    }
    let e1 = e + 1;
    let d = sp(c, e1);
    if let Some((dd, e2)) = num(c, d, 1, 2) {
        let e2 = sp(c, e2);
        if (1..=31).contains(&dd) && at(c, e2, '日') {
            return Some(e2 + 1);
        }
    }
    Some(e1)
}

/// `sep M sep D` with one separator repeated; end after D.
fn sep_md(c: &[char], i: usize, seps: &str) -> Option<usize> {
    let sep = *c.get(i)?;
    if !seps.contains(sep) {
        return None;
    }
    let (m, e) = num(c, i + 1, 1, 2)?;
    if !at(c, e, sep) {
        return None;
    }
    let (d, e) = num(c, e + 1, 1, 2)?;
    md_ok(m, d).then_some(e)
}

fn after_score_word(c: &[char], i: usize) -> bool {
    let mut b = i;
    while b > 0 && matches!(c[b - 1], ' ' | ':' | '：' | '=') && i - b < 3 {
        b -= 1;
    }
    SCORE_WORDS.iter().any(|w| {
        let n = w.chars().count();
        b >= n && starts_with_ascii_ci(c, b - n, w)
    })
}

/// What may follow `M/D` without it being a fraction or a ratio (2/3周, 1/2個, 1/2陽性).
fn fraction_follows(c: &[char], e: usize) -> bool {
    let Some(&next) = c.get(e) else {
        return false;
    };
    "周個程以回本枚箇例件人名倍量割陽陰%/".contains(next)
        || (next == 'の' && FRACTION_OF.iter().any(|w| starts_with(c, e + 1, w)))
        || (next == '.' && c.get(e + 1).is_some_and(|ch| ch.is_ascii_digit()))
        || starts_with_ascii_ci(c, e, "mm")
        || starts_with_ascii_ci(c, e, "cm")
}

/// An English month name at `i` as a word (`Dec`, `Dec.`, `December`, `DEC`): month and end.
/// Capitalized only, so the verb "may" and "mar" inside prose are not months.
fn month_en(c: &[char], i: usize) -> Option<(u32, usize)> {
    if i > 0 && c[i - 1].is_ascii_alphabetic() || !c.get(i)?.is_ascii_uppercase() {
        return None;
    }
    let word_end = |e: usize| !c.get(e).is_some_and(|ch| ch.is_ascii_alphabetic());
    for (m, (full, abbr)) in MONTHS_EN.iter().enumerate() {
        let m = m as u32 + 1;
        for w in [*full, "Sept", *abbr] {
            if w == "Sept" && m != 9 {
                continue;
            }
            if !starts_with_ascii_ci(c, i, w) {
                continue;
            }
            let n = w.chars().count();
            if word_end(i + n) {
                let e = if at(c, i + n, '.') && w.len() < full.len() { i + n + 1 } else { i + n };
                return Some((m, e));
            }
        }
    }
    None
}

/// `[,] YYYY` after a day or month ending at `e`: end after the year.
fn english_year(c: &[char], e: usize) -> Option<usize> {
    let mut k = e;
    if at(c, k, ',') {
        k += 1;
    }
    let k2 = sp(c, k);
    if k2 == k && k == e {
        return None;
    }
    let (y, ye) = num(c, k2, 4, 4)?;
    (1868..=2099).contains(&y).then_some(ye)
}

/// `Dec 25, 1972`, `December 25 1972`, `Apr 12`, `May 2027`: end of the date at `i`.
/// A month name alone is not a date.
fn english_date(c: &[char], i: usize) -> Option<usize> {
    let (_, me) = month_en(c, i)?;
    let k = sp(c, me);
    if k == me {
        return None;
    }
    if let Some(ye) = num(c, k, 4, 4).filter(|(y, _)| (1868..=2099).contains(y)).map(|x| x.1) {
        return Some(ye);
    }
    let (d, de) = num(c, k, 1, 2)?;
    if !(1..=31).contains(&d) || c.get(de).is_some_and(|ch| ch.is_ascii_alphanumeric()) {
        return None;
    }
    Some(english_year(c, de).unwrap_or(de))
}

/// After an era letter and year ending at `e`: `H28年10月[5日]` or year and month alone
/// (`H15.6`, `R4.10`). The bare year-month form only for Showa, Heisei and Reiwa within
/// the era's years and not followed by a letter, digit or unit, since `T1.5` or `M2.5`
/// read as stages and sizes.
fn era_year_month(c: &[char], era: char, y: u32, e: usize) -> Option<usize> {
    let j = sp(c, e);
    if at(c, j, '年') {
        let k = sp(c, j + 1);
        if c.get(k).is_some_and(|ch| ch.is_ascii_digit()) {
            return month_day_kanji(c, k);
        }
        return None;
    }
    let max_year = match era {
        'S' => 64,
        'H' => 31,
        'R' => 30,
        _ => return None,
    };
    if y == 0 || y > max_year || !matches!(c.get(e), Some('.' | '/')) {
        return None;
    }
    let (m, e2) = num(c, e + 1, 1, 2)?;
    let unit = c.get(e2).is_some_and(|ch| ch.is_ascii_alphanumeric() || "%.°".contains(*ch));
    ((1..=12).contains(&m) && !unit).then_some(e2)
}

/// End of a date starting at `i`, if one does.
fn date_at(c: &[char], i: usize) -> Option<usize> {
    let prev = if i > 0 { Some(c[i - 1]) } else { None };
    if let Some(era) = ERAS.iter().find(|e| starts_with(c, i, e)) {
        let j = sp(c, i + era.chars().count());
        let e = if at(c, j, '元') { j + 1 } else { num(c, j, 1, 2)?.1 };
        let e = sp(c, e);
        if !at(c, e, '年') {
            return None;
        }
        return month_day_kanji(c, sp(c, e + 1));
    }
    let ch = c[i];
    if let Some(e) = english_date(c, i) {
        return Some(e);
    }
    if "MTSHRmtshr".contains(ch) && !prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        let (y, e) = num(c, i + 1, 1, 2)?;
        if let Some(end) = sep_md(c, e, "./-") {
            return Some(end);
        }
        return era_year_month(c, ch.to_ascii_uppercase(), y, e);
    }
    if !ch.is_ascii_digit() || prev.is_some_and(|p| p.is_ascii_digit()) {
        return None;
    }
    if let Some((d, e)) = num(c, i, 1, 2) {
        // 25 Dec 1972, 3 March
        let k = if matches!(c.get(e), Some(' ' | '-')) { e + 1 } else { e };
        if (1..=31).contains(&d) && k > e {
            if let Some((_, me)) = month_en(c, k) {
                return Some(english_year(c, me).unwrap_or(me));
            }
        }
    }
    let after_sep = prev.is_some_and(|p| "./-".contains(p));
    if let Some((y, e)) = num(c, i, 4, 4) {
        if !(1868..=2099).contains(&y) {
            return None;
        }
        if let Some(end) = sep_md(c, e, "/-.") {
            return Some(end);
        }
        if matches!(c.get(e), Some('/' | '-')) {
            if let Some((m, e2)) = num(c, e + 1, 1, 2) {
                let cont = matches!(c.get(e2), Some('/' | '-' | '.'))
                    && c.get(e2 + 1).is_some_and(|ch| ch.is_ascii_digit());
                if (1..=12).contains(&m) && !cont {
                    return Some(e2);
                }
            }
        }
        let j = sp(c, e);
        if at(c, j, '年') {
            let k = sp(c, j + 1);
            if c.get(k).is_some_and(|ch| ch.is_ascii_digit()) {
                return month_day_kanji(c, k);
            }
        }
        return None;
    }
    if after_sep {
        return None;
    }
    if let Some((_, e)) = num(c, i, 2, 2) {
        if let Some(end) = sep_md(c, e, "/") {
            return Some(end);
        }
    }
    let (m, e) = num(c, i, 1, 2)?;
    if at(c, e, '/') {
        let (d, e2) = num(c, e + 1, 1, 2)?;
        return (md_ok(m, d) && !fraction_follows(c, e2) && !after_score_word(c, i)).then_some(e2);
    }
    let k = sp(c, e);
    if at(c, k, '月') {
        let end = month_day_kanji(c, i)?;
        // A bare month (11月) is kept; only month and day together are a date.
        return (c[end - 1] == '日').then_some(end);
    }
    None
}

/// Dates: `2026/11/25`, `2026-11-25`, `2026.11.25`, `2026年11月25日`, `2026年11月`, `2026/11`,
/// `26/11/25`, `R8.11.25`, `令和8年11月25日`, `令和元年5月1日`, `11/25`, `11月25日`.
pub(crate) fn find_dates(c: &[char], out: &mut Vec<Match>) {
    let mut i = 0;
    while i < c.len() {
        match date_at(c, i) {
            Some(e) => {
                out.push(Match { start: i, end: e, hit: Hit::Pattern(Pattern::Date) });
                i = e;
            }
            None => i += 1,
        }
    }
}
