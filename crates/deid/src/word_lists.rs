//! The free-text scrubber's word lists: plain text files under `data/freetext/` that a
//! clinician reviews (each file says what it is for and who reviews it), embedded at build
//! time and parsed once, on first use.
//!
//! Format: one entry per line; a line starting with `#` is a comment; blank lines are
//! ignored. Tagged lists allow one tag after the entry (`先生  doctor`); char lists take one
//! character per line. An entry listed twice, a second field where none is allowed, an
//! unknown tag or an empty list is an error: the unit test below parses every list, so a bad
//! edit fails the build's tests rather than the box.
//!
//! Entries keep the file's order: some matchers take the first entry that matches.

use std::sync::LazyLock;

/// Why an embedded word list does not parse. Names the file and line, never the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WordListError {
    /// A line with a field this list does not take (a tag, a second word, an unknown tag).
    #[error("{file}:{line}: unexpected field")]
    Field { file: &'static str, line: usize },
    /// An entry that is already in the list.
    #[error("{file}:{line}: entry listed twice")]
    Duplicate { file: &'static str, line: usize },
    /// A char list entry that is not exactly one character.
    #[error("{file}:{line}: not one character")]
    NotOneChar { file: &'static str, line: usize },
    /// No entries at all.
    #[error("{file}: no entries")]
    Empty { file: &'static str },
}

/// One embedded list: its file name under `data/freetext/` and its text.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    file: &'static str,
    text: &'static str,
}

macro_rules! source {
    ($file:literal) => {
        Source { file: $file, text: include_str!(concat!("../../../data/freetext/", $file)) }
    };
}

/// A line's `(line number, entry, tag)`.
type Entry = (usize, &'static str, Option<&'static str>);

/// Every entry line, in file order, duplicates rejected.
fn entries(src: Source) -> Result<Vec<Entry>, WordListError> {
    let file = src.file;
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in src.text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut fields = l.split_whitespace();
        let (Some(word), tag) = (fields.next(), fields.next()) else {
            continue;
        };
        if fields.next().is_some() {
            return Err(WordListError::Field { file, line });
        }
        if out.iter().any(|(_, w, _)| *w == word) {
            return Err(WordListError::Duplicate { file, line });
        }
        out.push((line, word, tag));
    }
    if out.is_empty() {
        return Err(WordListError::Empty { file });
    }
    Ok(out)
}

/// A list of words, no tags.
fn words(src: Source) -> Result<Vec<&'static str>, WordListError> {
    entries(src)?
        .into_iter()
        .map(|(line, w, tag)| match tag {
            None => Ok(w),
            Some(_) => Err(WordListError::Field { file: src.file, line }),
        })
        .collect()
}

/// A list of words, each with `tag` or nothing after it: `(word, has the tag)`.
fn tagged(src: Source, tag: &str) -> Result<Vec<(&'static str, bool)>, WordListError> {
    entries(src)?
        .into_iter()
        .map(|(line, w, t)| match t {
            None => Ok((w, false)),
            Some(t) if t == tag => Ok((w, true)),
            Some(_) => Err(WordListError::Field { file: src.file, line }),
        })
        .collect()
}

/// A set of single characters, as one string in file order.
fn chars(src: Source) -> Result<String, WordListError> {
    entries(src)?
        .into_iter()
        .map(|(line, w, tag)| {
            let mut c = w.chars();
            match (tag, c.next(), c.next()) {
                (None, Some(ch), None) => Ok(ch),
                (Some(_), _, _) => Err(WordListError::Field { file: src.file, line }),
                _ => Err(WordListError::NotOneChar { file: src.file, line }),
            }
        })
        .collect()
}

/// Parsed on first use. The lists are embedded and checked by the tests, so a parse error
/// here is a build that skipped them: fail loudly rather than scrub with a list missing.
fn load<T>(r: Result<T, WordListError>) -> T {
    r.unwrap_or_else(|e| panic!("embedded word list: {e}"))
}

type Words = LazyLock<Vec<&'static str>>;
type Tagged = LazyLock<Vec<(&'static str, bool)>>;
type Chars = LazyLock<String>;

/// Tag of the doctor entries in [`HONORIFICS`] and [`ROLES`].
const DOCTOR: &str = "doctor";

const NAME_STOP_WORDS_SRC: Source = source!("name-stop-words.txt");
const NAME_BREAKERS_SRC: Source = source!("name-breaker-kanji.txt");
const NAME_SINGLE_STOP_SRC: Source = source!("name-single-kanji-stop.txt");
const HONORIFICS_SRC: Source = source!("honorifics.txt");
const ROLES_SRC: Source = source!("roles.txt");
const LIKE_AFTER_SRC: Source = source!("like-after.txt");
const ROMAJI_STOP_SRC: Source = source!("romaji-stop.txt");
const DATE_ERAS_SRC: Source = source!("date-eras.txt");
const DATE_FRACTION_OF_SRC: Source = source!("date-fraction-of.txt");
const DATE_SCORE_WORDS_SRC: Source = source!("date-score-words.txt");
const PREFECTURES_SRC: Source = source!("prefectures.txt");
const ADDRESS_END_SRC: Source = source!("address-end-words.txt");
const BUILDING_WORDS_SRC: Source = source!("building-words.txt");
const NUMBER_KEYS_SRC: Source = source!("number-keys.txt");
const NAME_COMPOUND_HEADS_SRC: Source = source!("name-compound-heads.txt");
const CLINICAL_NOT_NAMES_SRC: Source = source!("clinical-not-names.txt");

/// Words that are not names next to a cue, in folded form (`name-stop-words.txt`).
pub(crate) static NAME_STOP_WORDS: Words = Words::new(|| load(words(NAME_STOP_WORDS_SRC)));
/// Kanji that never occur in names (`name-breaker-kanji.txt`).
pub(crate) static NAME_BREAKERS: Chars = Chars::new(|| load(chars(NAME_BREAKERS_SRC)));
/// One-kanji words that are not names (`name-single-kanji-stop.txt`).
pub(crate) static NAME_SINGLE_STOP: Chars = Chars::new(|| load(chars(NAME_SINGLE_STOP_SRC)));
/// Honorifics after a name; `true` for the doctor ones (`honorifics.txt`).
pub(crate) static HONORIFICS: Tagged = Tagged::new(|| load(tagged(HONORIFICS_SRC, DOCTOR)));
/// Role and relation words before a name; `true` for doctor roles (`roles.txt`).
pub(crate) static ROLES: Tagged = Tagged::new(|| load(tagged(ROLES_SRC, DOCTOR)));
/// Words after 様 that make it "-like" (`like-after.txt`).
pub(crate) static LIKE_AFTER: Words = Words::new(|| load(words(LIKE_AFTER_SRC)));
/// Abbreviations that look like a romaji name (`romaji-stop.txt`).
pub(crate) static ROMAJI_STOP: Words = Words::new(|| load(words(ROMAJI_STOP_SRC)));
/// Era names that start a date (`date-eras.txt`).
pub(crate) static DATE_ERAS: Words = Words::new(|| load(words(DATE_ERAS_SRC)));
/// Quantities a fraction is "of" (`date-fraction-of.txt`).
pub(crate) static DATE_FRACTION_OF: Words = Words::new(|| load(words(DATE_FRACTION_OF_SRC)));
/// Scales whose value is written `n/max` (`date-score-words.txt`).
pub(crate) static DATE_SCORE_WORDS: Words = Words::new(|| load(words(DATE_SCORE_WORDS_SRC)));
/// The 47 prefectures, the one table for identifiers and free text (`prefectures.txt`).
pub(crate) static PREFECTURES: Words = Words::new(|| load(words(PREFECTURES_SRC)));
/// Words that end an address run (`address-end-words.txt`).
pub(crate) static ADDRESS_END: Words = Words::new(|| load(words(ADDRESS_END_SRC)));
/// Building words after an address (`building-words.txt`).
pub(crate) static BUILDING_WORDS: Words = Words::new(|| load(words(BUILDING_WORDS_SRC)));
/// Keywords that announce an identifying number, first match wins (`number-keys.txt`).
pub(crate) static NUMBER_KEYS: Words = Words::new(|| load(words(NUMBER_KEYS_SRC)));
/// Words after a name that make it an eponym, facility or place (`name-compound-heads.txt`).
pub(crate) static NAME_COMPOUND_HEADS: Words = Words::new(|| load(words(NAME_COMPOUND_HEADS_SRC)));
/// Clinical words the analyser takes for names (`clinical-not-names.txt`).
pub(crate) static CLINICAL_NOT_NAMES: Words = Words::new(|| load(words(CLINICAL_NOT_NAMES_SRC)));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifiers::fold;

    #[test]
    fn every_embedded_list_parses() {
        for src in [
            NAME_STOP_WORDS_SRC,
            LIKE_AFTER_SRC,
            ROMAJI_STOP_SRC,
            DATE_ERAS_SRC,
            DATE_FRACTION_OF_SRC,
            DATE_SCORE_WORDS_SRC,
            PREFECTURES_SRC,
            ADDRESS_END_SRC,
            BUILDING_WORDS_SRC,
            NUMBER_KEYS_SRC,
            NAME_COMPOUND_HEADS_SRC,
            CLINICAL_NOT_NAMES_SRC,
        ] {
            let w = words(src).unwrap_or_else(|e| panic!("{e}"));
            assert!(!w.is_empty() && w.iter().all(|w| !w.trim().is_empty()), "{}", src.file);
        }
        for src in [HONORIFICS_SRC, ROLES_SRC] {
            let w = tagged(src, DOCTOR).unwrap_or_else(|e| panic!("{e}"));
            assert!(w.iter().any(|(_, d)| *d) && w.iter().any(|(_, d)| !*d), "{}", src.file);
        }
        for src in [NAME_BREAKERS_SRC, NAME_SINGLE_STOP_SRC] {
            let c = chars(src).unwrap_or_else(|e| panic!("{e}"));
            let mut sorted: Vec<char> = c.chars().collect();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), c.chars().count(), "{}", src.file);
        }
        // The statics load (a panic here would be a list the checks above missed).
        assert_eq!(PREFECTURES.len(), 47);
        for l in [&*NAME_STOP_WORDS, &*LIKE_AFTER, &*ROMAJI_STOP, &*DATE_ERAS, &*NUMBER_KEYS] {
            assert!(!l.is_empty());
        }
        for l in [&*NAME_COMPOUND_HEADS, &*CLINICAL_NOT_NAMES] {
            assert!(!l.is_empty());
        }
        for l in [&*DATE_FRACTION_OF, &*DATE_SCORE_WORDS, &*ADDRESS_END, &*BUILDING_WORDS] {
            assert!(!l.is_empty());
        }
        assert!(!HONORIFICS.is_empty() && !ROLES.is_empty());
        assert!(!NAME_BREAKERS.is_empty() && !NAME_SINGLE_STOP.is_empty());
    }

    #[test]
    fn stop_words_are_in_folded_form() {
        // They are compared with folded candidates: an entry that folding changes (katakana,
        // lower-case ASCII, a variant kanji) would never match.
        for w in NAME_STOP_WORDS.iter() {
            assert_eq!(fold(w).0, *w, "name-stop-words.txt");
        }
        for ch in NAME_SINGLE_STOP.chars() {
            assert_eq!(fold(&ch.to_string()).0, ch.to_string(), "name-single-kanji-stop.txt");
        }
    }

    #[test]
    fn malformed_lines_are_rejected() {
        let src = |text| Source { file: "t.txt", text };
        assert_eq!(words(src("# c\n\na\nb\n")), Ok(vec!["a", "b"]));
        assert_eq!(
            words(src("a\nb\na\n")),
            Err(WordListError::Duplicate { file: "t.txt", line: 3 })
        );
        assert_eq!(words(src("a b\n")), Err(WordListError::Field { file: "t.txt", line: 1 }));
        assert_eq!(words(src("a doctor\n")), Err(WordListError::Field { file: "t.txt", line: 1 }));
        assert_eq!(words(src("# only\n\n")), Err(WordListError::Empty { file: "t.txt" }));
        assert_eq!(tagged(src("a doctor\nb\n"), DOCTOR), Ok(vec![("a", true), ("b", false)]));
        assert_eq!(
            tagged(src("a nurse\n"), DOCTOR),
            Err(WordListError::Field { file: "t.txt", line: 1 })
        );
        assert_eq!(chars(src("あ\nい\n")), Ok("あい".to_string()));
        assert_eq!(chars(src("あい\n")), Err(WordListError::NotOneChar { file: "t.txt", line: 1 }));
    }
}
