//! Names without cues: the analyser's opinion (`morph`) and the reading lexicon
//! (`name_lexicon`), combined with the cue rules (`names`) and the exam's own identifiers.
//!
//! - **Candidates.** Runs of morphemes tagged 人名 (姓, 名, 一般), joined directly or, 姓 then
//!   名, across one space (中村 一郎), at least one of them a dictionary word (MeCab guesses
//!   人名 for unknown words too, and alone such a guess is not trusted); not a lone given name
//!   glued inside a kanji compound (血管|透|見) nor the tail of a katakana word (ケア|マネ).
//!   Kanji standing alone between punctuation or particles that the analyser tags as a place
//!   or a common noun: a dictionary surname of 2+ kanji (太田, 山口), a surname + given name
//!   split (南陽子), a one-kanji surname between particles (説明は森に). Katakana names, which
//!   MeCab seldom knows: a surname reading and a given-name reading, spaced or dotted
//!   (ナカムラ イチロウ; one of the two may be a short unknown word) or joined (キムラハナコ).
//!   Romaji: two capitalised words, one a known surname or given name, the other one too or
//!   at least read as romaji (Kobayashi Naoki, NAKAMURA Ichiro, Hoshi Yua).
//! - **Clinical words stay.** A candidate is dropped when a compound head follows it
//!   (`name-compound-heads.txt`: 木村・竹本分類, 山田Ⅲ型, 高安動脈炎, 中村病院), when it lies
//!   inside a clinical word the analyser errs on (`clinical-not-names.txt`) or a spelling of
//!   the JED term lists, or when it is a name stop word.
//! - **Combination.** A candidate that overlaps a name the rules or the own identifiers found
//!   widens that match (its typed placeholder stays: [医師] remains [医師]); one that
//!   overlaps another kind of match (date, address) is dropped; any other is a new
//!   [`Pattern::PersonName`].
//! - **Completion.** Every name match, whoever found it, is widened over a given name right
//!   after it and a surname right before it (one space allowed): 「[医師]健太」 cannot happen.

use super::morph::{Morpheme, Tag};
use super::name_lexicon::NameLexicon;
use super::{breaker, is_hiragana, is_kanji, kanji_at, key, starts_with, starts_with_ascii_ci};
use crate::identifiers::IdKind;
use crate::text::{Hit, Match, Pattern};
use crate::word_lists::{
    CLINICAL_NOT_NAMES, HONORIFICS, NAME_COMPOUND_HEADS, NAME_SINGLE_STOP, NAME_STOP_WORDS, ROLES,
    ROMAJI_STOP,
};
use std::sync::LazyLock;

/// How far after a name a compound head is looked for (木村・竹本分類, 工藤分類 VI型).
const HEAD_WINDOW: usize = 16;

/// Most morphemes joined into one name (姓 名, or a name of three dictionary words).
const MAX_PARTS: usize = 4;

/// Clinical spellings a candidate must not lie in: `clinical-not-names.txt` and every
/// spelling of the JED term lists that has a kanji or katakana (ASCII abbreviations never
/// overlap a kanji or kana name).
static PROTECTED: LazyLock<Vec<Vec<char>>> = LazyLock::new(|| {
    let list = fgw_records::terms::TermList::embedded();
    let terms = fgw_records::terms::TermCategory::ALL
        .iter()
        .flat_map(|cat| list.terms(*cat))
        .chain(list.site_qualifiers());
    let mut v: Vec<Vec<char>> = CLINICAL_NOT_NAMES.iter().map(|w| w.chars().collect()).collect();
    for t in terms {
        let spellings = std::iter::once(&t.label).chain(&t.synonyms).chain(&t.organ_synonyms);
        for s in spellings {
            let w: Vec<char> = s.chars().collect();
            if w.iter().any(|&ch| is_kanji(ch) || katakana_letter(ch)) {
                v.push(w);
            }
        }
    }
    v.sort();
    v.dedup();
    v
});

/// A full-width katakana letter or the long-vowel mark (half-width kana are left to the
/// cue rules).
fn katakana_letter(ch: char) -> bool {
    matches!(ch, 'ァ'..='ヺ' | 'ー')
}

fn romaji_letters(ch: char) -> bool {
    ch.is_ascii_alphabetic()
}

/// The names of `c` no cue announces, clinical words removed: `(start, end)` in chars.
pub(crate) fn find_uncued_names(
    c: &[char],
    morphs: &[Morpheme],
    lex: &NameLexicon,
) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    analyser_spans(c, morphs, &mut spans);
    kanji_spans(c, morphs, lex, &mut spans);
    katakana_spans(c, lex, &mut spans);
    romaji_spans(c, lex, &mut spans);
    spans.retain(|&(s, e)| !protected(c, morphs, s, e));
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// Morpheme `next` continues a name ending at `e`: adjacent, or after one space.
fn joins(c: &[char], e: usize, next: usize) -> bool {
    next == e || (next == e + 1 && c[e] == ' ')
}

fn analyser_spans(c: &[char], morphs: &[Morpheme], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while i < morphs.len() {
        // The tail of a longer katakana word is not a name (ケア|マネ).
        let s = morphs[i].start;
        let kana_tail = s > 0 && katakana_letter(c[s]) && katakana_letter(c[s - 1]);
        if !morphs[i].is_name() || kana_tail {
            i += 1;
            continue;
        }
        let (mut e, mut known) = (morphs[i].end, morphs[i].known);
        let mut j = i + 1;
        // Across a space only surname then given name (中村 一郎), not two surnames.
        while j < morphs.len()
            && j - i < MAX_PARTS
            && morphs[j].is_name()
            && (morphs[j].start == e
                || (joins(c, e, morphs[j].start)
                    && morphs[j - 1].tag == Tag::Surname
                    && morphs[j].tag != Tag::Surname))
        {
            e = morphs[j].end;
            known |= morphs[j].known;
            j += 1;
        }
        // A lone given name glued inside a kanji compound is that compound's morpheme
        // (血管|透|見), not a name.
        let glued = j == i + 1
            && morphs[i].tag != Tag::Surname
            && s > 0
            && kanji_at(c, s - 1)
            && e < c.len()
            && kanji_at(c, e);
        if known && !glued && plausible(c, s, e) {
            out.push((s, e));
        }
        i = j;
    }
}

/// Shapes the analyser's 人名 tag is not trusted on: ASCII (romaji has its own finder),
/// one hiragana, a one-kanji word of the single-kanji stop list, a name stop word.
fn plausible(c: &[char], s: usize, e: usize) -> bool {
    let w = &c[s..e];
    if w.iter().any(|ch| ch.is_ascii() && *ch != ' ') {
        return false;
    }
    let k = key(c, s, e);
    let n = k.chars().count();
    let one_stop = n == 1 && k.chars().all(|ch| NAME_SINGLE_STOP.contains(ch));
    let one_kana = n == 1 && w.iter().all(|&ch| is_hiragana(ch) || katakana_letter(ch));
    !one_stop && !one_kana && !NAME_STOP_WORDS.contains(&k.as_str())
}

/// Hiragana that may follow a name written alone (particles).
const PARTICLE_AFTER: &str = "にがとよかのへもはや";

/// A name may start at `a`: the text starts there, or a non-name char is before it.
fn bounded_before(c: &[char], a: usize) -> bool {
    a == 0 || !(kanji_at(c, a - 1) || katakana_letter(c[a - 1]) || c[a - 1].is_ascii_alphanumeric())
}

/// A name may end at `b`: the text ends, or punctuation, a space or a particle follows.
fn bounded_after(c: &[char], b: usize) -> bool {
    c.get(b).is_none_or(|&ch| {
        !(kanji_at(c, b) || katakana_letter(ch) || ch.is_ascii_alphanumeric())
            && (!is_hiragana(ch) || PARTICLE_AFTER.contains(ch))
    })
}

/// Kanji `a..b` are free of what never is in a name: breaker kanji, verbal and time nouns,
/// honorifics and role words, stop words.
fn name_like_kanji(c: &[char], morphs: &[Morpheme], a: usize, b: usize) -> bool {
    if a >= b || (a..b).any(|i| !kanji_at(c, i) || breaker(c[i])) {
        return false;
    }
    let first = morphs.partition_point(|m| m.start < a);
    let mut inside = morphs[first..].iter().take_while(|m| m.start < b).filter(|m| m.end <= b);
    let grammar = inside
        .any(|m| matches!(m.tag, Tag::VerbalNoun | Tag::Adverbial | Tag::NameSuffix | Tag::Other));
    let cue = (a..b).any(|i| {
        HONORIFICS.iter().any(|(w, _)| starts_with(c, i, w))
            || ROLES.iter().any(|(w, _)| starts_with(c, i, w))
    });
    let k = key(c, a, b);
    let one_stop = k.chars().count() == 1 && k.chars().all(|ch| NAME_SINGLE_STOP.contains(ch));
    !grammar && !cue && !one_stop && !NAME_STOP_WORDS.contains(&k.as_str())
}

/// Kanji names the analyser tags as a place, an organisation or a common noun (太田, 山口,
/// 南陽子, 東雲美咲): a run of kanji standing alone (bounded by punctuation, spaces or
/// particles) that is a dictionary surname of 2+ kanji, or splits into a dictionary surname
/// and given name.
fn kanji_spans(c: &[char], morphs: &[Morpheme], lex: &NameLexicon, out: &mut Vec<(usize, usize)>) {
    let mut a = 0;
    while a < c.len() {
        if !kanji_at(c, a) {
            a += 1;
            continue;
        }
        let mut b = a;
        while b < c.len() && kanji_at(c, b) {
            b += 1;
        }
        let n = b - a;
        if n == 1 && lone_surname(c, morphs, lex, a) {
            out.push((a, b));
        } else if (2..=6).contains(&n)
            && bounded_before(c, a)
            && bounded_after(c, b)
            && name_like_kanji(c, morphs, a, b)
        {
            let w = word(c, a, b);
            let split = (a + 1..b).any(|k| {
                lex.is_surname_kanji(&word(c, a, k)) && lex.is_given_kanji(&word(c, k, b))
            });
            if split || lex.is_surname_kanji(&w) {
                out.push((a, b));
            }
        }
        a = b;
    }
}

/// A one-kanji surname that is also a word (森, 林, 南, 星), written alone between
/// particles or punctuation: 「説明は森に行った」.
fn lone_surname(c: &[char], morphs: &[Morpheme], lex: &NameLexicon, a: usize) -> bool {
    let before = a == 0 || "はをにがともへ、。 \n".contains(c[a - 1]);
    let after = c.get(a + 1).is_some_and(|ch| "にがとよかへの、".contains(*ch));
    let alone = morph_starting(morphs, a).is_some_and(|m| m.end == a + 1);
    before
        && after
        && alone
        && lex.is_surname_kanji(&c[a].to_string())
        && name_like_kanji(c, morphs, a, a + 1)
}

/// Runs of katakana letters: `(start, end)`.
fn katakana_runs(c: &[char]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if katakana_letter(c[i]) && c[i] != 'ー' {
            let s = i;
            while i < c.len() && katakana_letter(c[i]) {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    runs
}

fn word(c: &[char], s: usize, e: usize) -> String {
    c[s..e].iter().collect()
}

fn katakana_spans(c: &[char], lex: &NameLexicon, out: &mut Vec<(usize, usize)>) {
    let runs = katakana_runs(c);
    for (i, &(s, e)) in runs.iter().enumerate() {
        // Surname, then a space or a middle dot, then a given name.
        // One of the two may be missing from the dictionary (ユア, a recent given name) if
        // it is short and plain (2-4 letters, no long vowel, not a stop word) and stands
        // alone.
        if let Some(&(s2, e2)) = runs.get(i + 1) {
            let (w1, w2) = (word(c, s, e), word(c, s2, e2));
            let plain = |a: usize, b: usize| {
                (2..=4).contains(&(b - a))
                    && !c[a..b].contains(&'ー')
                    && !NAME_STOP_WORDS.contains(&key(c, a, b).as_str())
            };
            let pair = s2 == e + 1
                && matches!(c[e], ' ' | '・')
                && ((lex.is_surname(&w1) && lex.is_given(&w2))
                    || (lex.is_surname(&w1) && plain(s2, e2) && bounded_after(c, e2))
                    || (lex.is_given(&w2) && plain(s, e) && bounded_before(c, s)));
            if pair {
                out.push((s, e2));
                continue;
            }
        }
        // Written as one word (キムラハナコ): some split is surname + given name, each of 2+
        // letters, the given name not starting with a small kana or ン (クリ|ニック).
        let splits = |k: usize| {
            !matches!(
                c[k],
                'ァ' | 'ィ' | 'ゥ' | 'ェ' | 'ォ' | 'ッ' | 'ャ' | 'ュ' | 'ョ' | 'ン' | 'ー'
            ) && lex.is_surname(&word(c, s, k))
                && lex.is_given(&word(c, k, e))
        };
        if (4..=10).contains(&(e - s))
            && !NAME_STOP_WORDS.contains(&key(c, s, e).as_str())
            && (s + 2..=e - 2).any(splits)
        {
            out.push((s, e));
        }
    }
}

/// A romaji word that may be a name: capitalised or all upper case, not an abbreviation.
fn romaji_name_word(w: &str) -> bool {
    let mut chars = w.chars();
    let first_up = chars.next().is_some_and(|ch| ch.is_ascii_uppercase());
    let rest_lower = w.chars().skip(1).all(|ch| ch.is_ascii_lowercase());
    let all_upper = w.chars().all(|ch| ch.is_ascii_uppercase());
    w.len() >= 2
        && first_up
        && (rest_lower || all_upper)
        && !ROMAJI_STOP.contains(&w.to_ascii_uppercase().as_str())
}

/// ASCII letter words with word boundaries: `(start, end)`.
fn romaji_words(c: &[char]) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if romaji_letters(c[i]) && (i == 0 || !c[i - 1].is_ascii_alphanumeric()) {
            let s = i;
            while i < c.len() && romaji_letters(c[i]) {
                i += 1;
            }
            if i >= c.len() || !c[i].is_ascii_digit() {
                words.push((s, i));
            }
        } else {
            i += 1;
        }
    }
    words
}

fn romaji_spans(c: &[char], lex: &NameLexicon, out: &mut Vec<(usize, usize)>) {
    let words = romaji_words(c);
    for pair in words.windows(2) {
        let ((s, e), (s2, e2)) = (pair[0], pair[1]);
        if s2 != e + 1 || c[e] != ' ' {
            continue;
        }
        let (w1, w2) = (word(c, s, e), word(c, s2, e2));
        if !romaji_name_word(&w1) || !romaji_name_word(&w2) {
            continue;
        }
        // One word known as a name, the other at least read as romaji (Shinonome Takuya,
        // Hoshi Yua); English words seldom read as romaji (Pit, Type, Group).
        let (s1, g1) = (lex.romaji_surname(&w1), lex.romaji_given(&w1));
        let (s2, g2) = (lex.romaji_surname(&w2), lex.romaji_given(&w2));
        let (r1, r2) = (NameLexicon::romaji_reads(&w1), NameLexicon::romaji_reads(&w2));
        let name = (s1 && (g2 || r2)) || (g1 && (s2 || r2)) || (r1 && (s2 || g2));
        if name {
            out.push((s, e2));
        }
    }
}

/// A compound head follows the name ending at `e`, directly or after joined names,
/// separators, numerals or letters (木村・竹本分類, 山田Ⅲ型, 工藤分類).
fn head_follows(c: &[char], morphs: &[Morpheme], e: usize) -> bool {
    let mut k = e;
    while k < c.len() && k - e < HEAD_WINDOW {
        if NAME_COMPOUND_HEADS.iter().any(|h| starts_with_ascii_ci(c, k, h)) {
            return true;
        }
        let ch = c[k];
        let skip = "・･-/&＆ ".contains(ch)
            || ch.is_ascii_alphanumeric()
            || matches!(ch, 'Ⅰ'..='Ⅻ' | 'ⅰ'..='ⅻ');
        if skip {
            k += 1;
        } else if let Some(m) = morph_starting(morphs, k).filter(|m| m.is_name()) {
            k = m.end;
        } else if katakana_letter(ch) {
            // A katakana eponym part (マロリー・ワイス症候群).
            while k < c.len() && katakana_letter(c[k]) {
                k += 1;
            }
        } else {
            return false;
        }
    }
    false
}

/// The morpheme starting at char `k` (morphemes are in text order and do not overlap).
fn morph_starting(morphs: &[Morpheme], k: usize) -> Option<&Morpheme> {
    let i = morphs.partition_point(|m| m.start < k);
    morphs.get(i).filter(|m| m.start == k)
}

/// The morpheme ending at char `k`.
fn morph_ending(morphs: &[Morpheme], k: usize) -> Option<&Morpheme> {
    let i = morphs.partition_point(|m| m.end < k);
    morphs.get(i).filter(|m| m.end == k)
}

/// Chars `s..e` lie inside a protected clinical spelling (only inside: 日下部 is a name,
/// though 下部 is a site qualifier).
fn in_clinical_word(c: &[char], mut s: usize, mut e: usize) -> bool {
    while s < e && matches!(c[s], ' ' | '・') {
        s += 1;
    }
    while e > s && matches!(c[e - 1], ' ' | '・') {
        e -= 1;
    }
    PROTECTED.iter().any(|w| {
        let n = w.len();
        n >= e - s && (e.saturating_sub(n)..=s).any(|p| p + n <= c.len() && c[p..p + n] == w[..])
    })
}

/// The candidate `s..e` is (part of) a clinical word, an eponym, a facility or a place.
pub(crate) fn protected(c: &[char], morphs: &[Morpheme], s: usize, e: usize) -> bool {
    head_follows(c, morphs, e) || in_clinical_word(c, s, e)
}

fn is_name_hit(h: Hit) -> bool {
    matches!(
        h,
        Hit::Id(IdKind::PatientName | IdKind::PatientKana | IdKind::Physician)
            | Hit::Pattern(Pattern::PersonName | Pattern::Doctor)
    )
}

/// Add the names without cues to `raw` (what the rules and the own identifiers found), then
/// complete every name match. See the module doc for how the two opinions combine.
pub(crate) fn add_uncued_names(
    c: &[char],
    morphs: &[Morpheme],
    lex: &NameLexicon,
    raw: &mut Vec<Match>,
) {
    for (s, e) in find_uncued_names(c, morphs, lex) {
        let mut overlapped = false;
        for m in raw.iter_mut().filter(|m| m.start < e && s < m.end) {
            overlapped = true;
            if is_name_hit(m.hit) {
                m.start = m.start.min(s);
                m.end = m.end.max(e);
            }
        }
        if !overlapped {
            raw.push(Match { start: s, end: e, hit: Hit::Pattern(Pattern::PersonName) });
        }
    }
    complete_names(c, morphs, lex, raw);
}

/// Widen every name match over a given name after it and a surname before it.
pub(crate) fn complete_names(
    c: &[char],
    morphs: &[Morpheme],
    lex: &NameLexicon,
    raw: &mut [Match],
) {
    for m in raw.iter_mut().filter(|m| is_name_hit(m.hit)) {
        for _ in 0..2 {
            // The added part only: a clinical word there, or a compound head after it.
            match name_after(c, morphs, lex, m.end) {
                Some(e) if !head_follows(c, morphs, e) && !in_clinical_word(c, m.end, e) => {
                    m.end = e
                }
                _ => break,
            }
        }
        if let Some(s) = surname_before(c, morphs, lex, m.start) {
            if !in_clinical_word(c, s, m.start) {
                m.start = s;
            }
        }
    }
}

/// End of a name part that starts at `e` or after one space: a dictionary 人名 morpheme, or
/// a katakana or romaji word read as a given name or surname.
fn name_after(c: &[char], morphs: &[Morpheme], lex: &NameLexicon, e: usize) -> Option<usize> {
    if e == 0 || e >= c.len() {
        return None;
    }
    let k = if matches!(c[e], ' ' | '・') { e + 1 } else { e };
    if k >= c.len() {
        return None;
    }
    let last = c[e - 1];
    if let Some(m) = morph_starting(morphs, k) {
        let cjk = c[m.start..m.end].iter().all(|&ch| is_kanji(ch) || katakana_letter(ch));
        if m.is_name() && m.known && cjk && plausible(c, m.start, m.end) {
            return Some(m.end);
        }
    }
    // A given name the dictionary does not know (蒼, 颯太, 結愛), or cut by the analyser
    // (悠|真に): at most 2 name-like kanji, then punctuation or a particle.
    if kanji_at(c, e - 1) && kanji_at(c, k) {
        let mut x = k;
        while x < c.len() && x - k < 3 && kanji_at(c, x) {
            x += 1;
        }
        if x - k <= 2 && bounded_after(c, x) && name_like_kanji(c, morphs, k, x) {
            return Some(x);
        }
    }
    if katakana_letter(last) && k == e + 1 && katakana_letter(c[k]) {
        let mut x = k;
        while x < c.len() && katakana_letter(c[x]) {
            x += 1;
        }
        let w = word(c, k, x);
        if lex.is_given(&w) || lex.is_surname(&w) {
            return Some(x);
        }
    }
    if romaji_letters(last) && k == e + 1 && c[e] == ' ' && romaji_letters(c[k]) {
        let mut x = k;
        while x < c.len() && romaji_letters(c[x]) {
            x += 1;
        }
        let w = word(c, k, x);
        let bounded = x >= c.len() || !c[x].is_ascii_alphanumeric();
        if bounded && romaji_name_word(&w) && (lex.romaji_given(&w) || lex.romaji_surname(&w)) {
            return Some(x);
        }
    }
    None
}

/// Start of a surname that ends at `s` or one space before it (the given name was found).
fn surname_before(c: &[char], morphs: &[Morpheme], lex: &NameLexicon, s: usize) -> Option<usize> {
    if s == 0 {
        return None;
    }
    let k = if matches!(c[s - 1], ' ' | '・') { s - 1 } else { s };
    if let Some(m) = morph_ending(morphs, k) {
        if m.tag == Tag::Surname && m.known && plausible(c, m.start, m.end) {
            return Some(m.start);
        }
    }
    // A surname the analyser does not tag (東雲) before a given name it does: at most 3
    // name-like kanji standing after punctuation, a space or a particle.
    let given = morph_starting(morphs, s).is_some_and(|m| m.tag == Tag::Given);
    if given && k > 0 && kanji_at(c, k - 1) && kanji_at(c, s) {
        let mut y = k;
        while y > 0 && k - y < 4 && kanji_at(c, y - 1) {
            y -= 1;
        }
        if k - y <= 3 && bounded_before(c, y) && name_like_kanji(c, morphs, y, k) {
            return Some(y);
        }
    }
    if k > 0 && k < s && katakana_letter(c[s]) && katakana_letter(c[k - 1]) {
        let mut x = k;
        while x > 0 && katakana_letter(c[x - 1]) {
            x -= 1;
        }
        if lex.is_surname(&word(c, x, k)) {
            return Some(x);
        }
    }
    None
}
