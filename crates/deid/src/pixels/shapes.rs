//! Identifier-shaped strings in OCR text, whoever they belong to: a released frame should
//! hold no patient id, date or addressed name at all, not only none of this exam's (the
//! overlay may name another patient, or an identifier the export does not list). Shapes:
//! 7 or more digits, a date in any usual Japanese or Western form, and a name followed by an
//! honorific. The text is read NFKC-normalised with whitespace removed (OCR spaces CJK).

use unicode_normalization::UnicodeNormalization;

/// What an identifier-shaped string looked like (reported; never the string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Seven or more digits in a row (a patient or accession number).
    Digits,
    /// A date: `YYYY/MM/DD`, `YYYY-MM-DD`, `YYYY.MM.DD`, `YY/MM/DD`, `YYYY年M月D日`,
    /// `昭和45年3月2日`, `R5.3.2`.
    Date,
    /// A name followed by an honorific (様, さん, 殿, 氏).
    NameHonorific,
}

impl Shape {
    /// Stable key for reasons and reports.
    pub fn key(self) -> &'static str {
        match self {
            Shape::Digits => "digits",
            Shape::Date => "date",
            Shape::NameHonorific => "name-honorific",
        }
    }
}

/// Digits in a row from which a number is identifier-shaped.
pub const MIN_DIGITS: usize = 7;

/// The first identifier-shaped string's shape in `text`, if any.
pub fn find_shape(text: &str) -> Option<Shape> {
    let s: Vec<char> = text.nfkc().filter(|c| !c.is_whitespace()).collect();
    if digit_run(&s) {
        return Some(Shape::Digits);
    }
    if (0..s.len()).any(|i| date_at(&s, i)) {
        return Some(Shape::Date);
    }
    if (0..s.len()).any(|i| honorific_after_name(&s, i)) {
        return Some(Shape::NameHonorific);
    }
    None
}

fn digit_run(s: &[char]) -> bool {
    let mut run = 0;
    for &c in s {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= MIN_DIGITS {
            return true;
        }
    }
    false
}

/// `lo..=hi` digits at `i` (as many as there are, up to `hi`): value and end.
fn number(s: &[char], i: usize, lo: usize, hi: usize) -> Option<(u32, usize)> {
    let mut j = i;
    let mut v = 0u32;
    while j < s.len() && j - i < hi && s[j].is_ascii_digit() {
        v = v * 10 + s[j].to_digit(10)?;
        j += 1;
    }
    (j - i >= lo && (j >= s.len() || !s[j].is_ascii_digit())).then_some((v, j))
}

fn is(s: &[char], i: usize, set: &str) -> bool {
    s.get(i).is_some_and(|c| set.contains(*c))
}

/// Month and day, after the year: `M<sep>D` with one of `seps`, or `M月D日` (日 optional).
fn month_day(s: &[char], i: usize, seps: &str) -> bool {
    let Some((m, j)) = number(s, i, 1, 2) else { return false };
    if !(1..=12).contains(&m) {
        return false;
    }
    let sep = if is(s, j, seps) || is(s, j, "月") { j + 1 } else { return false };
    number(s, sep, 1, 2).is_some_and(|(d, _)| (1..=31).contains(&d))
}

const ERAS: [&str; 5] = ["明治", "大正", "昭和", "平成", "令和"];

fn date_at(s: &[char], i: usize) -> bool {
    // Not in the middle of a longer number.
    if i > 0 && s[i - 1].is_ascii_digit() {
        return false;
    }
    // Era in kanji: 昭和45年3月2日, 令和元年5月1日.
    for era in ERAS {
        let e: Vec<char> = era.chars().collect();
        if s[i..].starts_with(&e) {
            let k = i + e.len();
            let after_year =
                if is(s, k, "元") { Some(k + 1) } else { number(s, k, 1, 2).map(|(_, j)| j) };
            if let Some(j) = after_year.filter(|&j| is(s, j, "年./-")) {
                if month_day(s, j + 1, "./-") {
                    return true;
                }
            }
        }
    }
    // Era letter: R5.3.2, S27.01.21, H2/03/15.
    if is(s, i, "MTSHRmtshr") && !s.get(i.wrapping_sub(1)).is_some_and(|c| c.is_alphabetic()) {
        if let Some((_, j)) = number(s, i + 1, 1, 2) {
            if is(s, j, "./-") && month_day(s, j + 1, "./-") {
                return true;
            }
        }
    }
    // Western: 2024/11/08, 2024-11-08, 2024.11.08, 2024年11月8日, 24/11/08.
    match number(s, i, 2, 4) {
        Some((_, j)) if j - i == 4 => {
            (is(s, j, "/-.") && month_day(s, j + 1, "/-."))
                || (is(s, j, "年") && month_day(s, j + 1, ""))
        }
        Some((_, j)) if j - i == 2 => is(s, j, "/") && month_day(s, j + 1, "/"),
        _ => false,
    }
}

/// Kanji, hiragana or katakana (a Japanese name's letters).
fn name_char(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{309F}' | '\u{30A1}'..='\u{30FA}' | '\u{30FC}' | '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '々')
}

const HONORIFICS: [&str; 4] = ["様", "さん", "殿", "氏"];

/// Two or more name letters ending at `i`, then an honorific.
fn honorific_after_name(s: &[char], i: usize) -> bool {
    if i < 2 || !(name_char(s[i - 1]) && name_char(s[i - 2])) {
        return false;
    }
    HONORIFICS.iter().any(|h| {
        let h: Vec<char> = h.chars().collect();
        s[i..].starts_with(&h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_dates_and_addressed_names() {
        for (t, want) in [
            ("ID:00123456", Some(Shape::Digits)),
            ("ID 7305 182", Some(Shape::Digits)),
            ("123456", None),
            ("2024/11/08", Some(Shape::Date)),
            ("検査日 2024-11-08", Some(Shape::Date)),
            ("2024.1.8", Some(Shape::Date)),
            ("1952年1月21日", Some(Shape::Date)),
            ("昭和45年3月2日", Some(Shape::Date)),
            ("令和元年5月1日", Some(Shape::Date)),
            ("R5.3.2", Some(Shape::Date)),
            ("S27.01.21", Some(Shape::Date)),
            ("H2/03/15", Some(Shape::Date)),
            ("24/11/08", Some(Shape::Date)),
            ("2024/13/08", None),
            ("12mm 3/4", None),
            ("09:47:30", None),
            ("髙橋一郎 様", Some(Shape::NameHonorific)),
            ("タカハシさん", Some(Shape::NameHonorific)),
            ("渡邊殿", Some(Shape::NameHonorific)),
            ("様", None),
            ("EG 15mm Ⅱa", None),
        ] {
            assert_eq!(find_shape(t), want, "{t}");
        }
    }
}
