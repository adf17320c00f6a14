//! Dates and times as Japanese department systems write them: western (`1950/01/02`,
//! `1950-1-2`, `19500102`, `1950年1月2日`) and era (`S25.01.02`, `昭和25年1月2日`, `令和元年5月1日`),
//! full- or half-width. Also the variants a date may take in free text, for searching.
//!
//! Era dates are checked against the era's real range (`H31.5.1` does not exist: that day is
//! `R1.5.1`), so a typo does not silently become a different person's birth date.

use chrono::{Datelike, NaiveDate, NaiveTime};
use fgw_format::package::{Age, AgeBucket};
use unicode_normalization::UnicodeNormalization;

/// Why a date or time did not parse. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("empty")]
    /// Nothing but whitespace.
    Empty,
    #[error("not a recognized date or time format")]
    /// No format the parser knows.
    Format,
    #[error("no such calendar day")]
    /// Parsed, but not a day of the calendar.
    NoSuchDate,
    #[error("date outside the range of its era")]
    /// A Japanese era year beyond that era.
    OutsideEra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

impl Era {
    pub(crate) const ALL: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

    pub(crate) fn letter(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    pub(crate) fn kanji(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// First and last day. Meiji is taken from 1868-01-01: 明治元年 was applied retroactively
    /// to the whole of 1868, and the lunar calendar years before 1873 are out of scope.
    fn range(self) -> (NaiveDate, Option<NaiveDate>) {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid era boundary");
        match self {
            Era::Meiji => (d(1868, 1, 1), Some(d(1912, 7, 29))),
            Era::Taisho => (d(1912, 7, 30), Some(d(1926, 12, 24))),
            Era::Showa => (d(1926, 12, 25), Some(d(1989, 1, 7))),
            Era::Heisei => (d(1989, 1, 8), Some(d(2019, 4, 30))),
            Era::Reiwa => (d(2019, 5, 1), None),
        }
    }

    fn first_year(self) -> i32 {
        self.range().0.year()
    }

    /// The era a date belongs to, with the era year.
    pub(crate) fn of(date: NaiveDate) -> Option<(Era, i32)> {
        Era::ALL.iter().copied().find_map(|e| {
            let (start, end) = e.range();
            (date >= start && end.is_none_or(|end| date <= end))
                .then(|| (e, date.year() - e.first_year() + 1))
        })
    }
}

/// NFKC, dash variants unified to `-`; keeps internal whitespace (callers decide).
fn normalize(s: &str) -> String {
    s.nfkc()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' => '-',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Parse a birth or exam date. A trailing time (`2026/11/25 09:15`) is ignored.
pub fn parse_date(s: &str) -> Result<NaiveDate, DateError> {
    let n = normalize(s);
    if n.is_empty() {
        return Err(DateError::Empty);
    }
    let mut parts = n.split_whitespace();
    if let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) {
        if parse_time(second).is_ok() {
            return parse_compact(first);
        }
    }
    parse_compact(&n.chars().filter(|c| !c.is_whitespace()).collect::<String>())
}

fn parse_compact(s: &str) -> Result<NaiveDate, DateError> {
    let upper = s.to_uppercase();
    let mut era = None;
    let mut rest = upper.as_str();
    for e in Era::ALL {
        if let Some(r) = rest.strip_prefix(e.kanji()) {
            era = Some(e);
            rest = r;
            break;
        }
        if let Some(r) = rest.strip_prefix(e.letter()) {
            era = Some(e);
            rest = r;
            break;
        }
    }
    // 元年 is year 1 of an era.
    let owned;
    if era.is_some() && rest.starts_with('元') {
        owned = format!("1{}", &rest['元'.len_utf8()..]);
        rest = &owned;
    }
    let groups: Vec<&str> =
        rest.trim_end_matches('日').split(['/', '-', '.', '年', '月']).collect();
    let nums: Vec<u32> = match groups.as_slice() {
        [one] => split_compact(one, era.is_some())?,
        [y, m, d] => {
            let ok = |g: &str, max: usize| !g.is_empty() && g.len() <= max;
            let ylen = if era.is_some() { 2 } else { 4 };
            if !ok(y, ylen) || (era.is_none() && y.len() != 4) || !ok(m, 2) || !ok(d, 2) {
                return Err(DateError::Format);
            }
            vec![num(y)?, num(m)?, num(d)?]
        }
        _ => return Err(DateError::Format),
    };
    let (y, m, d) = (nums[0], nums[1], nums[2]);
    match era {
        None => NaiveDate::from_ymd_opt(y as i32, m, d).ok_or(DateError::NoSuchDate),
        Some(e) => {
            if y == 0 {
                return Err(DateError::OutsideEra);
            }
            let date = NaiveDate::from_ymd_opt(e.first_year() + y as i32 - 1, m, d)
                .ok_or(DateError::NoSuchDate)?;
            let (start, end) = e.range();
            if date < start || end.is_some_and(|end| date > end) {
                return Err(DateError::OutsideEra);
            }
            Ok(date)
        }
    }
}

/// `19500102` (western) or `250102` (era).
fn split_compact(g: &str, era: bool) -> Result<Vec<u32>, DateError> {
    let ylen = if era { 2 } else { 4 };
    if g.len() != ylen + 4 || !g.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Format);
    }
    Ok(vec![num(&g[..ylen])?, num(&g[ylen..ylen + 2])?, num(&g[ylen + 2..])?])
}

fn num(g: &str) -> Result<u32, DateError> {
    if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Format);
    }
    g.parse().map_err(|_| DateError::Format)
}

/// `09:15`, `9:15`, `0915`, `09:15:30`, `9時15分`.
pub(crate) fn parse_time(s: &str) -> Result<NaiveTime, DateError> {
    let n: String = normalize(s).chars().filter(|c| !c.is_whitespace()).collect();
    if n.is_empty() {
        return Err(DateError::Empty);
    }
    let n = n.trim_end_matches(['分', '秒']);
    let groups: Vec<&str> = n.split([':', '時', '分']).collect();
    let (h, m, sec) = match groups.as_slice() {
        [hm] if hm.len() == 4 && hm.bytes().all(|b| b.is_ascii_digit()) => {
            (num(&hm[..2])?, num(&hm[2..])?, 0)
        }
        [h, m] if h.len() <= 2 && m.len() == 2 => (num(h)?, num(m)?, 0),
        [h, m, s] if h.len() <= 2 && m.len() == 2 && s.len() == 2 => (num(h)?, num(m)?, num(s)?),
        _ => return Err(DateError::Format),
    };
    NaiveTime::from_hms_opt(h, m, sec).ok_or(DateError::Format)
}

/// Age in completed years at the exam. None if the birth date is after the exam or more than
/// 130 years before it (a data error, not a person). 90 and above is one bucket.
pub(crate) fn age_at(birth: NaiveDate, exam: NaiveDate) -> Option<Age> {
    if birth > exam {
        return None;
    }
    let mut years = exam.year() - birth.year();
    if (exam.month(), exam.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    match years {
        y if y > 130 => None,
        y if y >= 90 => Some(Age::Bucket(AgeBucket::NinetyPlus)),
        y => Some(Age::Years(y as u8)),
    }
}

/// Spellings of `d` that may appear in free text, for searching (not folded: callers fold).
/// Western with `/ - . 年月日` (month and day zero-padded or not, in every combination),
/// compact `YYYYMMDD`, and era forms with letter (`S25.01.02`, `S25/1/2`, `S25-1-2`) or kanji
/// (`昭和25年1月2日`, `昭和元年…` for year 1). Sorted, no duplicates.
pub(crate) fn date_variants(d: NaiveDate) -> Vec<String> {
    let (y, m, dd) = (d.year(), d.month(), d.day());
    let ms = [format!("{m}"), format!("{m:02}")];
    let ds = [format!("{dd}"), format!("{dd:02}")];
    let mut out = vec![format!("{y:04}{m:02}{dd:02}")];
    for mm in &ms {
        for dd in &ds {
            for sep in ["/", "-", "."] {
                out.push(format!("{y}{sep}{mm}{sep}{dd}"));
            }
            out.push(format!("{y}年{mm}月{dd}日"));
        }
    }
    if let Some((era, ey)) = Era::of(d) {
        let eys = [format!("{ey}"), format!("{ey:02}")];
        for mm in &ms {
            for dd in &ds {
                for yy in &eys {
                    for sep in ["/", "-", "."] {
                        out.push(format!("{}{yy}{sep}{mm}{sep}{dd}", era.letter()));
                    }
                    out.push(format!("{}{yy}年{mm}月{dd}日", era.kanji()));
                }
                if ey == 1 {
                    out.push(format!("{}元年{mm}月{dd}日", era.kanji()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// English month names, full and abbreviated (`Sept` as well as `Sep`).
pub(crate) const MONTHS_EN: [(&str, &str); 12] = [
    ("January", "Jan"),
    ("February", "Feb"),
    ("March", "Mar"),
    ("April", "Apr"),
    ("May", "May"),
    ("June", "Jun"),
    ("July", "Jul"),
    ("August", "Aug"),
    ("September", "Sep"),
    ("October", "Oct"),
    ("November", "Nov"),
    ("December", "Dec"),
];

/// English spellings of `d` for searching, as English summaries and referral letters write
/// them: `25 Dec 1972`, `Dec 25, 1972`, `December 25, 1972`, `Dec. 25, 1972`, day padded or
/// not. Kept apart from [`date_variants`] because `parse_date` reads export columns, which
/// never hold these. Sorted, no duplicates.
pub(crate) fn english_date_variants(d: NaiveDate) -> Vec<String> {
    let (y, m, dd) = (d.year(), d.month(), d.day());
    let (full, abbr) = MONTHS_EN[m as usize - 1];
    let mut names = vec![full.to_string(), abbr.to_string(), format!("{abbr}.")];
    if m == 9 {
        names.extend(["Sept".to_string(), "Sept.".to_string()]);
    }
    let mut out = Vec::new();
    for day in [format!("{dd}"), format!("{dd:02}")] {
        for mon in &names {
            out.push(format!("{day} {mon} {y}"));
            out.push(format!("{mon} {day}, {y}"));
            out.push(format!("{mon} {day} {y}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, dd).unwrap()
    }

    #[test]
    fn western_forms() {
        for s in [
            "1950/01/02",
            "1950-1-2",
            "19500102",
            "1950年1月2日",
            "1950.01.02",
            "１９５０／０１／０２",
            "１９５０年１月２日",
            " 1950/1/2 ",
            "1950/01/02 09:15",
        ] {
            assert_eq!(parse_date(s), Ok(d(1950, 1, 2)), "{s}");
        }
    }

    #[test]
    fn era_forms() {
        for s in [
            "S25.01.02",
            "S25/1/2",
            "昭和25年1月2日",
            "s25.1.2",
            "Ｓ２５．０１．０２",
            "㍼25年1月2日",
        ] {
            assert_eq!(parse_date(s), Ok(d(1950, 1, 2)), "{s}");
        }
        assert_eq!(parse_date("令和元年5月1日"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_date("R5.4.1"), Ok(d(2023, 4, 1)));
        assert_eq!(parse_date("H31.4.30"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("平成元年1月8日"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("T1.7.30"), Ok(d(1912, 7, 30)));
        assert_eq!(parse_date("M45.7.29"), Ok(d(1912, 7, 29)));
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_date(""), Err(DateError::Empty));
        assert_eq!(parse_date("H31.5.1"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("S64.1.8"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("R0.5.1"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("1950/02/30"), Err(DateError::NoSuchDate));
        assert_eq!(parse_date("S25.02.30"), Err(DateError::NoSuchDate));
        for s in ["不明", "1950", "50/1/2", "X25.1.2", "1950/1/2/3", "195012"] {
            assert_eq!(parse_date(s), Err(DateError::Format), "{s}");
        }
        // The error text never echoes the value.
        assert!(!parse_date("山田").unwrap_err().to_string().contains("山田"));
    }

    #[test]
    fn times() {
        let t = NaiveTime::from_hms_opt(9, 15, 0).unwrap();
        for s in ["09:15", "9:15", "0915", "０９：１５", "9時15分", "09:15:00"] {
            assert_eq!(parse_time(s), Ok(t), "{s}");
        }
        assert!(parse_time("25:00").is_err());
        assert!(parse_time("915").is_err());
    }

    #[test]
    fn ages() {
        assert_eq!(age_at(d(1950, 1, 2), d(2026, 1, 1)), Some(Age::Years(75)));
        assert_eq!(age_at(d(1950, 1, 2), d(2026, 1, 2)), Some(Age::Years(76)));
        assert_eq!(age_at(d(1936, 1, 1), d(2026, 1, 1)), Some(Age::Bucket(AgeBucket::NinetyPlus)));
        assert_eq!(age_at(d(1936, 1, 2), d(2026, 1, 1)), Some(Age::Years(89)));
        assert_eq!(age_at(d(2027, 1, 1), d(2026, 1, 1)), None);
        assert_eq!(age_at(d(1890, 1, 1), d(2026, 1, 1)), None);
        assert_eq!(age_at(d(2026, 1, 1), d(2026, 1, 1)), Some(Age::Years(0)));
    }

    proptest::proptest! {
        // Export values are arbitrary text: parsing must fail cleanly, never panic.
        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse_date(&s);
            let _ = parse_time(&s);
        }
    }

    #[test]
    fn no_panic_on_multibyte() {
        assert!(parse_time("𠮷").is_err());
        assert!(parse_date("S𠮷").is_err());
    }

    #[test]
    fn variants() {
        let v = date_variants(d(1950, 1, 2));
        for s in [
            "1950/01/02",
            "1950/1/2",
            "1950-1-2",
            "1950.01.02",
            "19500102",
            "1950年1月2日",
            "1950年01月02日",
            "S25.01.02",
            "S25.1.2",
            "S25/1/2",
            "昭和25年1月2日",
            "昭和25年01月02日",
        ] {
            assert!(v.iter().any(|x| x == s), "{s}");
        }
        // Every variant parses back to the same day.
        for s in &v {
            assert_eq!(parse_date(s), Ok(d(1950, 1, 2)), "{s}");
        }
        let e = english_date_variants(d(1972, 12, 25));
        for s in ["25 Dec 1972", "Dec 25, 1972", "December 25, 1972", "Dec. 25, 1972"] {
            assert!(e.iter().any(|x| x == s), "{s}");
        }
        assert!(english_date_variants(d(2001, 9, 3)).iter().any(|x| x == "Sept 03, 2001"));
        let r = date_variants(d(2019, 5, 1));
        assert!(r.iter().any(|x| x == "令和元年5月1日"));
        assert!(r.iter().any(|x| x == "R1.5.1"));
        assert!(!r.iter().any(|x| x.starts_with('H')));
    }
}
