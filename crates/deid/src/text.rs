//! Free-text scrubbing: the exam's own identifiers (every variant, matched in [`fold`]ed form
//! and mapped back to the original span), generic contact patterns (phone, postal code,
//! e-mail, long numbers) and the Japanese patterns of [`text_ja`] (other people's names by
//! honorific or role, dates, addresses, keyed numbers) are replaced with typed placeholders.
//! Everything else is left byte-for-byte, so clinical wording (`0-Ⅱc`, `10mm`, `3日後`)
//! survives; exam dates travel as structured fields, so dates in free text go.
//!
//! Digit rule: a match that starts (ends) with a digit must not continue a longer digit run
//! to its left (right), so patient id 1125 is not found inside 2026-11-25 and 10mm stays.
//! Whitespace counts as a boundary even though `fold` removes it ("ID 123456 2026/11/25"),
//! dashes do not. An all-digit id may be preceded by extra zeros (00123456 finds 123456).
//!
//! [`find`] is also what `verify` runs over the finished record, so the scrubber and the
//! verifier can never disagree about what counts as an identifier.
//!
//! [`fold`]: super::identifiers::fold
//! [`text_ja`]: super::text_ja

use super::identifiers::{fold_mapped, Folded, IdKind, IdentifierSet};
use super::text_ja;

/// Generic patterns that are identifiers whoever they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// A Japanese phone number (landline, mobile, 0120/0800, +81).
    Phone,
    /// A postal code (`〒` + 7 digits, or `NNN-NNNN`).
    PostalCode,
    /// An e-mail address.
    Email,
    /// 6+ contiguous digits, optionally after up to 3 letters (K4389867): patient, chart,
    /// accession and insurance numbers. Clinical numbers are short or carry units, and dates
    /// written with separators do not match.
    IdNumber,
    /// Someone else's name next to an honorific, role or relation word (see [`text_ja`]).
    ///
    /// [`text_ja`]: super::text_ja
    PersonName,
    /// A name next to 先生/医師/Dr or a doctor role (主治医, 術者).
    Doctor,
    /// A date in any written form; exam dates travel as structured fields instead.
    Date,
    /// Prefecture/city/ward/town with the rest of the street address.
    Address,
    /// A number of any length after an identifying keyword (患者ID, カルテ番号, 記号, 番号).
    Number,
}

/// What was found: one of this exam's identifiers, or a generic pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hit {
    /// One of this exam's own identifiers.
    Id(IdKind),
    /// A generic pattern, whoever it belongs to.
    Pattern(Pattern),
}

impl Hit {
    /// Stable snake-case name of what was found (reports, quarantine reasons); never the value.
    pub fn key(self) -> &'static str {
        match self {
            Hit::Id(k) => k.key(),
            Hit::Pattern(Pattern::Phone) => "phone_pattern",
            Hit::Pattern(Pattern::PostalCode) => "postal_code",
            Hit::Pattern(Pattern::Email) => "email",
            Hit::Pattern(Pattern::IdNumber) => "id_number",
            Hit::Pattern(Pattern::PersonName) => "person_name",
            Hit::Pattern(Pattern::Doctor) => "doctor_name",
            Hit::Pattern(Pattern::Date) => "date",
            Hit::Pattern(Pattern::Address) => "address_pattern",
            Hit::Pattern(Pattern::Number) => "keyed_number",
        }
    }

    /// Typed placeholder put where the match was.
    pub fn placeholder(self) -> &'static str {
        match self {
            Hit::Id(k) => k.placeholder(),
            Hit::Pattern(Pattern::Phone) => "[電話]",
            Hit::Pattern(Pattern::PostalCode) => "[郵便番号]",
            Hit::Pattern(Pattern::Email) => "[メール]",
            Hit::Pattern(Pattern::IdNumber) | Hit::Pattern(Pattern::Number) => "[番号]",
            Hit::Pattern(Pattern::PersonName) => "[氏名]",
            Hit::Pattern(Pattern::Doctor) => "[医師]",
            Hit::Pattern(Pattern::Date) => "[日付]",
            Hit::Pattern(Pattern::Address) => "[住所]",
        }
    }
}

/// A span of the original text, in chars (`start..end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// First char of the span.
    pub start: usize,
    /// One past the last char of the span.
    pub end: usize,
    /// What the span is.
    pub hit: Hit,
}

/// A scrubbed text and what was replaced in it.
pub struct Scrubbed {
    /// The text with every match replaced by its placeholder.
    pub text: String,
    /// One entry per replaced span, in text order.
    pub replaced: Vec<Hit>,
}

impl std::fmt::Debug for Scrubbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even scrubbed text is patient narrative: keep it out of logs.
        write!(f, "Scrubbed({} chars, {} replaced)", self.text.chars().count(), self.replaced.len())
    }
}

/// Replace every identifier and pattern in `text` with its placeholder.
pub fn scrub(text: &str, ids: &IdentifierSet) -> Scrubbed {
    scrub_checked(text, ids).0
}

/// [`scrub`] with each of `sets` in turn (a DICOM object has one set per name spelling); the
/// same text as chaining [`scrub`] calls.
pub fn scrub_each(text: &str, sets: &[IdentifierSet]) -> String {
    let mut cur = text.to_string();
    // True when the last search over `cur` found nothing: then no set-independent pattern is
    // in it, and a set whose own identifiers are absent too would leave it as it is, so the
    // full search (most of the cost) is skipped for that set.
    let mut clean = false;
    // `cur` folded, made once for all the sets skipped while it stays the same.
    let mut folded: Option<Folded> = None;
    for set in sets {
        if clean && !has_own(folded.get_or_insert_with(|| fold_mapped(&cur)), set) {
            continue;
        }
        let (s, c) = scrub_checked(&cur, set);
        cur = s.text;
        clean = c;
        folded = None;
    }
    cur
}

/// [`scrub`], and whether its last search found nothing.
fn scrub_checked(text: &str, ids: &IdentifierSet) -> (Scrubbed, bool) {
    let mut cur = text.to_string();
    let mut replaced = Vec::new();
    let mut clean = false;
    // Re-scan the result: replacing can join text that now forms a match. Bounded, since
    // placeholders themselves never match.
    for _ in 0..4 {
        let ms = find(&cur, ids);
        if ms.is_empty() {
            clean = true;
            break;
        }
        let chars: Vec<char> = cur.chars().collect();
        let mut out = String::with_capacity(cur.len());
        let mut i = 0;
        for m in &ms {
            out.extend(&chars[i..m.start]);
            out.push_str(m.hit.placeholder());
            replaced.push(m.hit);
            i = m.end;
        }
        out.extend(&chars[i..]);
        cur = out;
    }
    (Scrubbed { text: cur, replaced }, clean)
}

fn has_own(f: &Folded, ids: &IdentifierSet) -> bool {
    let mut raw = Vec::new();
    find_ids(f, ids, &mut raw);
    !raw.is_empty()
}

/// Only this exam's own identifiers, merged: what `verify` searches in structured fields
/// (dates, codes), where the generic patterns would flag the field's own format.
pub fn find_own(text: &str, ids: &IdentifierSet) -> Vec<Match> {
    let f = fold_mapped(text);
    let mut raw = Vec::new();
    find_ids(&f, ids, &mut raw);
    merge(raw)
}

/// The first of `sets`' own identifiers in `text` (sets in order, then text order), as
/// [`find_own`] with each set in turn; the text is folded once.
pub fn find_own_each(text: &str, sets: &[IdentifierSet]) -> Option<Match> {
    let f = fold_mapped(text);
    sets.iter().find_map(|ids| {
        let mut raw = Vec::new();
        find_ids(&f, ids, &mut raw);
        merge(raw).first().copied()
    })
}

/// Which opinions look for other people's names. The gate always uses [`NameOpinions::Both`];
/// the other two exist so the benchmark can set them side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameOpinions {
    /// The cue rules only (honorifics, roles, relations, signatures): the scrubber before
    /// the analyser.
    Rules,
    /// The morphological analyser and the reading lexicon only, without the cue rules.
    Analyser,
    /// Both, combined as `text_ja::no_cue` describes (the gate's choice).
    #[default]
    Both,
}

/// Check that the morphological analyser can run in this process: its dictionary and name
/// lexicon are installed and load. The binary calls this at start-up and refuses to run
/// without it; [`find`] itself panics rather than scrub with the rules alone.
pub fn analyser_ready() -> Result<(), text_ja::AnalyserError> {
    text_ja::analyse(&['\u{4e2d}'])?;
    text_ja::lexicon().map(|_| ())
}

/// All identifier and pattern spans in `text`, merged so they do not overlap, in text order.
///
/// # Panics
/// If the morphological analyser cannot run (see [`analyser_ready`]): the gate fails closed
/// rather than miss the names only the analyser finds.
pub fn find(text: &str, ids: &IdentifierSet) -> Vec<Match> {
    find_with(text, ids, NameOpinions::Both)
}

/// [`find`] with a choice of name opinions (benchmarks); panics as [`find`] does.
pub fn find_with(text: &str, ids: &IdentifierSet, opinions: NameOpinions) -> Vec<Match> {
    let f = fold_mapped(text);
    let mut raw = Vec::new();
    find_ids(&f, ids, &mut raw);
    find_phones(&f, &mut raw);
    find_postal(&f, &mut raw);
    find_emails(&f, &mut raw);
    let c = text_ja::narrow(&f.original);
    if opinions != NameOpinions::Analyser {
        text_ja::find_person_names(&c, &mut raw);
    }
    text_ja::find_dates(&c, &mut raw);
    text_ja::find_addresses(&c, &mut raw);
    if opinions != NameOpinions::Analyser {
        text_ja::extend_given_names(&c, &mut raw);
    }
    if opinions != NameOpinions::Rules {
        let unavailable = |e: text_ja::AnalyserError| -> ! { panic!("{e}") };
        let morphs = text_ja::analyse(&c).unwrap_or_else(|e| unavailable(e));
        let lex = text_ja::lexicon().unwrap_or_else(|e| unavailable(e));
        text_ja::add_uncued_names(&c, &morphs, lex, &mut raw);
    }
    // Generic numbers only where nothing more specific matched, so the typed placeholder
    // ([患者ID], [電話]) wins.
    let mut numbers = Vec::new();
    find_id_numbers(&f, &mut numbers);
    text_ja::find_keyed_numbers(&c, &mut numbers);
    text_ja::find_accession_numbers(&c, &mut numbers);
    numbers.retain(|n| !raw.iter().any(|m| n.start < m.end && m.start < n.end));
    raw.extend(numbers);
    merge(raw)
}

fn merge(mut raw: Vec<Match>) -> Vec<Match> {
    // Earliest first, then longest, then identifiers before patterns.
    raw.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.hit.cmp(&b.hit)));
    let mut merged: Vec<Match> = Vec::with_capacity(raw.len());
    for m in raw {
        match merged.last_mut() {
            Some(last) if m.start < last.end => last.end = last.end.max(m.end),
            _ => merged.push(m),
        }
    }
    merged
}

fn push(f: &Folded, out: &mut Vec<Match>, start: usize, end: usize, hit: Hit) {
    let (s, e) = f.original_range(start, end);
    out.push(Match { start: s, end: e, hit });
}

fn digit_boundary_before(f: &Folded, s: usize) -> bool {
    s == 0 || !f.chars[s - 1].is_ascii_digit() || f.gap_has_space(s)
}

fn digit_boundary_after(f: &Folded, e: usize) -> bool {
    e >= f.chars.len() || !f.chars[e].is_ascii_digit() || f.gap_has_space(e)
}

fn find_ids(f: &Folded, ids: &IdentifierSet, out: &mut Vec<Match>) {
    let mut own = Vec::new();
    find_variants(f, ids, &mut own);
    find_short_names(f, ids, &mut own);
    join_name_parts(&f.original, &mut own);
    out.extend(own);
}

/// Bit of a pair of adjacent chars in a 4096-bit filter.
fn pair_bit(a: char, b: char) -> usize {
    let h = (a as u32).wrapping_mul(0x9E37_79B1) ^ (b as u32).wrapping_mul(0x85EB_CA77);
    (h >> 20) as usize
}

fn find_variants(f: &Folded, ids: &IdentifierSet, out: &mut Vec<Match>) {
    let n = f.chars.len();
    // Every pair of adjacent chars of the text: a variant with a pair not in it cannot occur,
    // which rules out nearly all of a set's variants (hundreds of romaji spellings) without
    // scanning the text for each.
    let mut pairs = [0u64; 64];
    for w in f.chars.windows(2) {
        let b = pair_bit(w[0], w[1]);
        pairs[b / 64] |= 1 << (b % 64);
    }
    let may_occur = |pat: &[char]| {
        pat.windows(2).all(|w| {
            let b = pair_bit(w[0], w[1]);
            pairs[b / 64] & (1 << (b % 64)) != 0
        })
    };
    for (kind, pat) in ids.variant_chars() {
        let (Some(&first), Some(&last)) = (pat.first(), pat.last()) else {
            continue;
        };
        if pat.len() > n || !may_occur(pat) {
            continue;
        }
        let mut s = 0;
        while s + pat.len() <= n {
            if f.chars[s] != first || f.chars[s..s + pat.len()] != pat[..] {
                s += 1;
                continue;
            }
            let e = s + pat.len();
            let mut start = Some(s);
            if first.is_ascii_digit() && !digit_boundary_before(f, s) {
                // Extra leading zeros are the same id.
                let mut k = s;
                if first != '0' {
                    while k > 0 && f.chars[k - 1] == '0' && !f.gap_has_space(k) {
                        k -= 1;
                    }
                }
                start = (k < s && digit_boundary_before(f, k)).then_some(k);
            }
            // A romaji name is a whole word: KATO is not inside KATOH's neighbour MUKATO, and a
            // short part does not eat an English or clinical word.
            let name_kind =
                matches!(kind, IdKind::PatientName | IdKind::PatientKana | IdKind::Physician);
            let word_ok = !name_kind
                || ((!first.is_ascii_alphabetic() || letter_boundary(f, s))
                    && (!last.is_ascii_alphabetic() || letter_boundary(f, e)));
            match start {
                Some(st) if word_ok && (!last.is_ascii_digit() || digit_boundary_after(f, e)) => {
                    push(f, out, st, e, Hit::Id(kind));
                    s = e;
                }
                _ => s += 1,
            }
        }
    }
}

/// True if folded chars `i - 1` and `i` are not two letters of one word (the text starts or
/// ends there, one side is not an ASCII letter, or something was folded away between them).
fn letter_boundary(f: &Folded, i: usize) -> bool {
    i == 0
        || i >= f.chars.len()
        || !f.chars[i - 1].is_ascii_alphabetic()
        || !f.chars[i].is_ascii_alphabetic()
        || !f.gap(i).is_empty()
}

/// Honorifics after which a one-kanji own name part (正さん) is the patient's name.
const SHORT_NAME_HONORIFICS: &[&str] = &["さん", "様", "ちゃん", "くん", "君", "氏", "殿"];

/// The patient's one-char name parts, only right before an honorific and not glued to a
/// preceding kanji (田中正さん is someone else's full name).
fn find_short_names(f: &Folded, ids: &IdentifierSet, out: &mut Vec<Match>) {
    let c = &f.chars;
    for v in ids.short_names() {
        let pat: Vec<char> = v.chars().collect();
        let n = pat.len();
        for s in 0..c.len().saturating_sub(n) {
            if c[s..s + n] != pat[..]
                || (s > 0 && text_ja::is_kanji(c[s - 1]) && f.gap(s).is_empty())
            {
                continue;
            }
            let e = s + n;
            let hon = SHORT_NAME_HONORIFICS.iter().any(|h| {
                let h: Vec<char> = h.chars().collect();
                c.len() >= e + h.len() && c[e..e + h.len()] == h[..] && f.gap(e).is_empty()
            });
            if hon {
                push(f, out, s, e, Hit::Id(IdKind::PatientName));
            }
        }
    }
}

/// Two of the patient's name parts separated only by whitespace (Nakamura Kenichi) are one
/// name: the first match is widened over the second so the space goes too.
fn join_name_parts(original: &[char], out: &mut [Match]) {
    let is_name = |m: &Match| matches!(m.hit, Hit::Id(IdKind::PatientName | IdKind::PatientKana));
    out.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    for i in 0..out.len() {
        if !is_name(&out[i]) {
            continue;
        }
        let end = out[i].end;
        let next = out[i + 1..]
            .iter()
            .filter(|m| is_name(m) && m.start > end)
            .map(|m| (m.start, m.end))
            .min();
        if let Some((s2, e2)) = next {
            if original[end..s2].iter().all(|c| c.is_whitespace()) && s2 - end <= 2 {
                out[i].end = e2;
            }
        }
    }
}

/// Japanese phone numbers: 10 digits starting 0 (landline, 0120), 11 for 0X0 mobiles/IP and
/// 0800, with any separators (removed by fold) and parentheses; also +81 forms.
fn find_phones(f: &Folded, out: &mut Vec<Match>) {
    let c = &f.chars;
    let n = c.len();
    let digits_from = |k0: usize, max: usize| {
        let mut ds = Vec::new();
        let mut k = k0;
        while k < n && ds.len() < max {
            if c[k].is_ascii_digit() {
                ds.push(k);
            } else if c[k] != '(' && c[k] != ')' {
                break;
            }
            k += 1;
        }
        ds
    };
    for s in 0..n {
        if c[s] == '0' {
            let paren = s > 0 && c[s - 1] == '(';
            if !paren && !digit_boundary_before(f, s) {
                continue;
            }
            let ds = digits_from(s, 11);
            if ds.len() < 10 || c[ds[1]] == '0' {
                continue;
            }
            // The "(" is part of the number only around an area code, (06)6204-7712; before a
            // whole number, （075-441-5106）, it belongs to the sentence.
            let closes = c[s..ds[ds.len() - 1]].contains(&')');
            let start = if paren && closes { s - 1 } else { s };
            let d = |i: usize| c[ds[i]];
            let eleven = ds.len() == 11
                && ((('5'..='9').contains(&d(1)) && d(2) == '0')
                    || (d(1) == '8' && d(2) == '0' && d(3) == '0'));
            let last = ds[if eleven { 10 } else { 9 }];
            if digit_boundary_after(f, last + 1) {
                push(f, out, start, last + 1, Hit::Pattern(Pattern::Phone));
            }
        } else if c[s] == '+' && s + 2 < n && c[s + 1] == '8' && c[s + 2] == '1' {
            let mut ds = digits_from(s + 3, 11);
            if ds.first().is_some_and(|&k| c[k] == '0') {
                ds.remove(0); // +81(0)90…: the trunk zero in parentheses
            }
            if ds.len() < 9 {
                continue;
            }
            let ten = ds.len() >= 10 && ('5'..='9').contains(&c[ds[0]]) && c[ds[1]] == '0';
            let last = ds[if ten { 9 } else { 8 }];
            if digit_boundary_after(f, last + 1) {
                push(f, out, s, last + 1, Hit::Pattern(Pattern::Phone));
            }
        }
    }
}

/// `〒` + 7 digits, or `NNN-NNNN` written with a dash (7 bare digits are too common).
fn find_postal(f: &Folded, out: &mut Vec<Match>) {
    let c = &f.chars;
    let n = c.len();
    let seven = |s: usize| s + 7 <= n && c[s..s + 7].iter().all(|d| d.is_ascii_digit());
    for (s, &ch) in c.iter().enumerate() {
        if ch == '〒' {
            if seven(s + 1) && digit_boundary_after(f, s + 8) {
                push(f, out, s, s + 8, Hit::Pattern(Pattern::PostalCode));
            }
        } else if ch.is_ascii_digit()
            && digit_boundary_before(f, s)
            && seven(s)
            && digit_boundary_after(f, s + 7)
            && (s + 1..s + 7).all(|i| {
                let g = f.gap(i);
                if i == s + 3 {
                    g.len() == 1 && matches!(g[0], '-' | '‐'..='―' | '−' | '－' | 'ー')
                } else {
                    g.is_empty()
                }
            })
        {
            push(f, out, s, s + 7, Hit::Pattern(Pattern::PostalCode));
        }
    }
}

fn find_id_numbers(f: &Folded, out: &mut Vec<Match>) {
    let c = &f.chars;
    let n = c.len();
    let mut s = 0;
    while s < n {
        if !c[s].is_ascii_digit() || !digit_boundary_before(f, s) {
            s += 1;
            continue;
        }
        // Extend over digits that were adjacent in the original (no folded-away dash).
        let mut e = s + 1;
        while e < n && c[e].is_ascii_digit() && f.gap(e).is_empty() {
            e += 1;
        }
        if e - s >= 6 && digit_boundary_after(f, e) {
            let mut b = s;
            while b > 0 && s - b < 3 && c[b - 1].is_ascii_alphabetic() && f.gap(b).is_empty() {
                b -= 1;
            }
            // With a letter prefix, a letter suffix glued on is part of the number too
            // (resident card AB12345678CD); without one it is a unit (123456mg stays whole).
            let mut end = e;
            if b < s {
                while end < n
                    && end - e < 3
                    && c[end].is_ascii_alphabetic()
                    && f.gap(end).is_empty()
                {
                    end += 1;
                }
                if end < n && c[end].is_ascii_alphanumeric() && f.gap(end).is_empty() {
                    end = e;
                }
            }
            push(f, out, b, end, Hit::Pattern(Pattern::IdNumber));
        }
        s = e;
    }
}

fn find_emails(f: &Folded, out: &mut Vec<Match>) {
    let c = &f.chars;
    let n = c.len();
    let local = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '%' | '+');
    let domain = |ch: char| ch.is_ascii_alphanumeric() || ch == '.';
    for at in (0..n).filter(|&i| c[i] == '@') {
        let mut l = at;
        while l > 0 && local(c[l - 1]) && !f.gap_has_space(l) {
            l -= 1;
        }
        let mut r = at + 1;
        while r < n && domain(c[r]) && !f.gap_has_space(r) {
            r += 1;
        }
        while r > at + 1 && c[r - 1] == '.' {
            r -= 1;
        }
        if l < at && r > at + 1 && c[at + 1..r].contains(&'.') {
            push(f, out, l, r, Hit::Pattern(Pattern::Email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgw_records::{Column, RawExam};

    fn ids() -> IdentifierSet {
        let fields = [
            (Column::PatientName, "髙橋　花子"),
            (Column::PatientKana, "ﾀｶﾊｼ ﾊﾅｺ"),
            (Column::PatientId, "00123456"),
            (Column::BirthDate, "S25.01.02"),
            (Column::Phone, "075-231-5171"),
            (Column::Address, "京都府京都市上京区丸太町通烏丸西入ル"),
            (Column::ExamId, "E2026112500123"),
            (Column::ReferringPhysician, "佐藤 一郎"),
            (Column::Operator, "鈴木 一"),
        ];
        IdentifierSet::from_exam(&RawExam::with_fields(&fields))
    }

    fn s(t: &str) -> String {
        scrub(t, &ids()).text
    }

    #[test]
    fn names_in_every_spelling() {
        assert_eq!(s("高橋花子様"), "[氏名]様");
        assert_eq!(s("髙橋 花子さん"), "[氏名]さん");
        assert_eq!(s("たかはし はなこ"), "[氏名]");
        assert_eq!(s("ﾀｶﾊｼさん、ハナコさん"), "[氏名]さん、[氏名]さん");
        assert_eq!(s("佐藤先生、鈴木先生"), "[医師]先生、[医師]先生");
    }

    #[test]
    fn ids_dates_contacts() {
        assert_eq!(s("ID 123456 2026/11/25"), "ID [患者ID] [日付]");
        assert_eq!(s("ID:００１２３４５６。"), "ID:[患者ID]。");
        assert_eq!(s("ID0000123456"), "ID[患者ID]");
        // Not the patient id (digit rule), but still a long number: generic [番号].
        assert_eq!(s("1234567は別"), "[番号]は別");
        assert_eq!(s("生年月日 昭和25年1月2日生"), "生年月日 [生年月日]生");
        assert_eq!(s("S25.1.2 / 1950-01-02 / 19500102"), "[生年月日] / [生年月日] / [生年月日]");
        assert_eq!(s("TEL(075)231-5171"), "TEL[電話]");
        assert_eq!(s("携帯０９０ー９８７６ー５４３２まで"), "携帯[電話]まで");
        assert_eq!(s("090 9876 5432 2個"), "[電話] 2個");
        assert_eq!(s("+81-90-9876-5432"), "[電話]");
        assert_eq!(s("〒602-8570 京都市上京区"), "[郵便番号] [住所]");
        assert_eq!(s("連絡 Taro.Y-1@mail.example-hp.jp."), "連絡 [メール].");
        assert_eq!(s("検査ID E2026112500123"), "検査ID [検査ID]");
    }

    #[test]
    fn long_numbers_are_identifiers_short_ones_are_not() {
        let ids = ids();
        let out =
            scrub("旧カルテ K4389867、保険番号12345678。腫瘍10mm、12-15mm、0-IIc、生検3個。", &ids);
        assert!(!out.text.contains("4389867") && !out.text.contains("12345678"), "{}", out.text);
        assert!(out.text.contains("[番号]"));
        for keep in ["10mm", "12-15mm", "0-IIc", "生検3個"] {
            assert!(out.text.contains(keep), "{keep} lost: {}", out.text);
        }
    }

    #[test]
    fn clinical_text_survives() {
        for t in [
            "胃体下部小弯に0-Ⅱc病変。大きさ10mm。",
            "早期胃癌 0-Ⅱc; 逆流性食道炎",
            "3日後 ESD施行、12-15mm、Hb 12.3、2/3周性",
            "検体番号 1234-567",
            "ピロリ除菌後。フォローは1年後。",
        ] {
            let r = scrub(t, &ids());
            assert_eq!(r.text, t);
            assert!(r.replaced.is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(t in "\\PC{0,40}") {
            let ids = ids();
            let once = scrub(&t, &ids).text;
            proptest::prop_assert!(find(&once, &ids).is_empty());
            proptest::prop_assert_eq!(scrub(&once, &ids).text, once);
        }
    }

    fn own(name: &str, kana: &str, birth: &str) -> IdentifierSet {
        IdentifierSet::from_exam(&RawExam::with_fields(&[
            (Column::PatientName, name),
            (Column::PatientKana, kana),
            (Column::BirthDate, birth),
        ]))
    }

    #[test]
    fn romaji_names_whole_words_only() {
        let ids = own("中村 健一", "ナカムラ ケンイチ", "1961-11-03");
        let t = |x: &str| scrub(x, &ids).text;
        assert_eq!(t("Nakamura Kenichi 63M"), "[氏名] 63M");
        assert_eq!(t("KENICHI NAKAMURA, Ken'ichi"), "[氏名], [氏名]");
        assert_eq!(t("Pt: NAKAMURAKENICHI"), "Pt: [氏名]");
        // Not inside longer words.
        assert_eq!(t("Kenichiro, Nakamuras"), "Kenichiro, Nakamuras");
        let ids = own("加藤 美穂", "カトウ ミホ", "1972-12-25");
        assert_eq!(scrub("Kato Miho, 25 Dec 1972", &ids).text, "[氏名], [生年月日]");
        assert_eq!(scrub("Katoh M, Dec 25, 1972", &ids).text, "[氏名] M, [生年月日]");
    }

    #[test]
    fn one_kanji_given_name_only_before_an_honorific() {
        let ids = own("田村 正", "タムラ タダシ", "1944-10-10");
        let t = |x: &str| scrub(x, &ids).text;
        assert_eq!(t("正さん、正様"), "[氏名]さん、[氏名]様");
        assert_eq!(t("正常。正中"), "正常。正中");
        // A relative's given name after the shared surname goes with it.
        assert_eq!(t("奥様 田村 ミチ子様"), "奥様 [氏名]様");
        assert_eq!(t("田村 来院"), "[氏名] 来院");
        let r = scrub("正さん", &ids);
        assert_eq!(r.replaced, vec![Hit::Id(IdKind::PatientName)]);
    }

    #[test]
    fn phone_bracket_stays_with_the_sentence() {
        assert_eq!(s("妻（075-441-5106）"), "妻（[電話]）");
        assert_eq!(s("勤務先 (06)6204-7712"), "勤務先 [電話]");
    }

    #[test]
    fn replaced_lists_kinds() {
        let r = scrub("高橋様 ID123456 〒602-8570", &ids());
        assert_eq!(
            r.replaced,
            vec![
                Hit::Id(IdKind::PatientName),
                Hit::Id(IdKind::PatientId),
                Hit::Pattern(Pattern::PostalCode)
            ]
        );
        assert!(!format!("{r:?}").contains("ID"));
    }
}
