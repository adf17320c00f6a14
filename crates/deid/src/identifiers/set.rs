//! Building an exam's [`IdentifierSet`]: every identifier field in the spellings it may take
//! in the exam's text (name parts, romaji, ids without leading zeros, date forms, the address
//! split at the municipality), folded, longest first.

use super::{fold, romaji_variants, searchable, IdKind};
use crate::dates;
use crate::word_lists::PREFECTURES;
use fgw_records::{Column, RawExam};
use std::collections::BTreeSet;
use unicode_normalization::UnicodeNormalization;

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
    /// From an exam row's identifier fields.
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

    /// Number of searchable variants.
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

    /// True if the set has no searchable variant.
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
    /// prefecture, the rest after it (if long enough to be specific), and the town of the
    /// rest without its block numbers: free text names where a patient lives as
    /// "永田町在住", not with the numbers.
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
        let town = town_of(&rest);
        if town.chars().count() >= 2 && town != rest {
            self.add(IdKind::Address, &town);
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

/// The town of an address's rest: up to its first block number (`9-8-7`, `六丁目`, `1条`).
fn town_of(rest: &str) -> String {
    let mut town: String =
        rest.chars().take_while(|c| !c.is_ascii_digit() && !matches!(c, '-' | '‐' | '−')).collect();
    if let Some(before) = town.strip_suffix("丁目") {
        town = before.trim_end_matches(|c| "一二三四五六七八九十".contains(c)).to_string();
    }
    town
}

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
