//! Other people's names, found only next to a cue: an honorific or role after the name
//! (田中様, 鈴木Dr), a role or relation word before it (主治医 木村, 長男 清水), `Dr.`/`Ns.`,
//! a signature closing a line (消化器内科 岡田 裕介); and a given name after a found surname.
//! Clinical compounds are kept out by the stop words and the breaker kanji.

use super::{
    at, breaker, first_chars, is_hiragana, is_kanji, is_katakana, kanji_at, kanji_back, key, sp,
    starts_with, starts_with_ascii_ci, FirstChars,
};
use crate::identifiers::IdKind;
use crate::text::{Hit, Match, Pattern};
use crate::word_lists::{
    HONORIFICS, LIKE_AFTER, NAME_SINGLE_STOP as SINGLE_STOP, NAME_STOP_WORDS as STOP, ROLES,
    ROMAJI_STOP,
};

/// Hiragana a hiragana candidate must not end with: it is a particle or verb ending, so the
/// run is grammar (こちらの先生), not a name. Before さん/ちゃん/くん, where grammar is rarer,
/// た and て may end a name (しょうたくん).
const PARTICLE_END: &str = "のはがをにでへもたて";
const PARTICLE_END_FAMILIAR: &str = "のはがをにでへも";

fn is_stop(k: &str) -> bool {
    STOP.contains(&k)
}

/// Stop word that the folded candidate `k` starts with and is longer than, if any (longest).
fn stop_prefix(k: &str) -> Option<&'static str> {
    STOP.iter()
        .filter(|w| k.len() > w.len() && k.starts_with(**w) && w.chars().count() >= 2)
        .max_by_key(|w| w.len())
        .copied()
}

/// Start, after skipping `chars` name chars (and spaces) from `s`.
fn skip_chars(c: &[char], mut s: usize, chars: usize) -> usize {
    let mut k = 0;
    while k < chars && s < c.len() {
        if c[s] != ' ' {
            k += 1;
        }
        s += 1;
    }
    while s < c.len() && c[s] == ' ' {
        s += 1;
    }
    s
}

/// A kanji candidate `[s, e)` after stop-word checks, with leading stop words stripped.
fn accept_kanji(c: &[char], mut s: usize, e: usize) -> Option<usize> {
    let mut k = key(c, s, e);
    while let Some(w) = stop_prefix(&k) {
        s = skip_chars(c, s, w.chars().count());
        k = key(c, s, e);
    }
    let n = k.chars().count();
    let one = n == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
    let ends_stop = STOP.iter().any(|w| k.ends_with(*w) && w.chars().count() >= 3);
    (s < e && n > 0 && !one && !is_stop(&k) && !ends_stop).then_some(s)
}

/// Run of name kanji starting at `s`, stopping at a breaker or an honorific (木村氏).
fn kanji_forward(c: &[char], s: usize, max: usize) -> usize {
    let mut e = s;
    while e < c.len()
        && e - s < max
        && kanji_at(c, e)
        && !breaker(c[e])
        && !(e > s && starts_honorific(c, e))
    {
        e += 1;
    }
    e
}

fn katakana_letter(ch: char) -> bool {
    is_katakana(ch) && !matches!(ch, '・' | '･' | 'ﾞ' | 'ﾟ' | 'ー' | 'ｰ')
}

fn accept_kana(c: &[char], mut s: usize, e: usize) -> Option<usize> {
    while s < e && matches!(c[s], '・' | '･' | 'ー' | 'ｰ' | ' ') {
        s += 1;
    }
    let letters = c[s..e].iter().filter(|&&ch| katakana_letter(ch)).count();
    let k = key(c, s, e);
    let ends_stop = STOP.iter().any(|w| k.ends_with(*w) && w.chars().count() >= 3);
    ((2..=12).contains(&letters) && !is_stop(&k) && !ends_stop).then_some(s)
}

fn romaji_word(w: &[char]) -> bool {
    if w.len() < 2 {
        return false;
    }
    let upper: String = w.iter().collect::<String>().to_ascii_uppercase();
    let first_up = w.first().is_some_and(|ch| ch.is_ascii_uppercase());
    let rest_lower = w[1..].iter().all(|ch| ch.is_ascii_lowercase());
    let all_upper = w.iter().all(|ch| ch.is_ascii_uppercase());
    first_up
        && (rest_lower || (all_upper && w.len() >= 3))
        && !ROMAJI_STOP.contains(&upper.as_str())
}

fn punct_boundary(ch: char) -> bool {
    ch.is_whitespace() || "、。,.:;：；「」『』()（）[]【】〈〉<>!?！？/・\"'".contains(ch)
}

/// The name ending at `p` (the start of an honorific), if any: `(start, end)`.
fn name_before(c: &[char], p: usize) -> Option<(usize, usize)> {
    let familiar = ["さん", "ちゃん", "くん", "君"].iter().any(|w| starts_with(c, p, w));
    let mut e = p;
    if e > 0 && c[e - 1] == ' ' {
        e -= 1;
    }
    if e == 0 {
        return None;
    }
    let last = c[e - 1];
    if kanji_at(c, e - 1) {
        let a = kanji_back(c, e, 6);
        if a == e {
            return None;
        }
        // The part next to the honorific must be acceptable alone (3日後 担当看護師).
        let mut s = accept_kanji(c, a, e)?;
        // Surname, one space, given name (田中 太郎様).
        if s == a && e - a <= 3 && a >= 2 && c[a - 1] == ' ' && kanji_at(c, a - 2) {
            let b = kanji_back(c, a - 1, 3);
            // Only a whole word joins (胃角 高橋様 is not 角高橋), and not a counter word
            // after a number (3日後 田中様).
            let whole = b == 0 || !(kanji_at(c, b - 1) || c[b - 1].is_ascii_alphanumeric());
            // A relation or role word before the space is not a surname (父 拓也さん).
            let k0 = key(c, b, a - 1);
            let role = is_stop(&k0)
                || (k0.chars().count() == 1 && k0.chars().all(|ch| SINGLE_STOP.contains(ch)));
            if b < a - 1 && whole && !role && (a - 1 - b) + (e - a) <= 6 {
                s = accept_kanji(c, b, e).unwrap_or(s);
            }
        }
        // One kanji glued to the end of a longer word (病棟看護師) is that word's tail; kanji
        // right after a digit are a counter or unit (生検2個 Dr, 3日後 様).
        let glued = s > 0 && ((e - s == 1 && kanji_at(c, s - 1)) || c[s - 1].is_ascii_digit());
        (!glued).then_some((s, e))
    } else if is_katakana(last) && last != '・' {
        let mut a = e;
        while a > 0 && e - a < 14 && is_katakana(c[a - 1]) {
            a -= 1;
        }
        if a >= 2 && c[a - 1] == ' ' && is_katakana(c[a - 2]) {
            let mut b = a - 1;
            while b > 0 && (a - 1 - b) < 10 && is_katakana(c[b - 1]) {
                b -= 1;
            }
            if accept_kana(c, b, a - 1).is_some() {
                a = b;
            }
        }
        accept_kana(c, a, e).map(|s| (s, e))
    } else if is_hiragana(last) {
        let mut a = e;
        while a > 0 && is_hiragana(c[a - 1]) {
            a -= 1;
        }
        let len = e - a;
        let k = key(c, a, e);
        let bounded = a == 0 || punct_boundary(c[a - 1]);
        let ends = if familiar { PARTICLE_END_FAMILIAR } else { PARTICLE_END };
        let particle = k.chars().last().is_some_and(|ch| ends.contains(ch));
        ((2..=8).contains(&len) && bounded && !particle && !is_stop(&k)).then_some((a, e))
    } else if last.is_ascii_alphabetic() {
        romaji_back(c, e)
    } else {
        None
    }
}

fn romaji_back(c: &[char], e: usize) -> Option<(usize, usize)> {
    let word_back = |e: usize| {
        let mut a = e;
        while a > 0 && c[a - 1].is_ascii_alphabetic() {
            a -= 1;
        }
        let bounded = a == 0 || !(c[a - 1].is_ascii_alphanumeric() || c[a - 1] == '.');
        (bounded && romaji_word(&c[a..e])).then_some(a)
    };
    let a = word_back(e)?;
    let s = if a >= 2 && c[a - 1] == ' ' && c[a - 2].is_ascii_alphabetic() {
        word_back(a - 1).unwrap_or(a)
    } else {
        a
    };
    Some((s, e))
}

/// A kanji name read forward may end at `e`: at a non-kanji or an honorific (田中医師), not
/// at a breaker inside a clinical word (父 大腸癌), and not before okurigana (大きさ, 付き添い).
fn kanji_name_ends(c: &[char], e: usize) -> bool {
    let Some(&next) = c.get(e) else {
        return true;
    };
    (!kanji_at(c, e) || starts_honorific(c, e))
        && (!is_hiragana(next) || AFTER_NAME_KANA.contains(next))
}

/// The name starting at `s` (after a role word and its separator), if any.
fn name_after(c: &[char], s: usize) -> Option<(usize, usize)> {
    let n = c.len();
    if s >= n {
        return None;
    }
    if kanji_at(c, s) {
        let e = kanji_forward(c, s, 7);
        if e == s || e - s > 6 {
            return None;
        }
        if !kanji_name_ends(c, e) {
            return None;
        }
        // A relation or role word after the role (キーパーソン: 母 太郎) is not the name;
        // the name after it is found from that word.
        let k1 = key(c, s, e);
        let one = k1.chars().count() == 1 && k1.chars().all(|ch| SINGLE_STOP.contains(ch));
        if one || is_stop(&k1) {
            return None;
        }
        let mut end = e;
        if e - s <= 3 && e + 1 < n && c[e] == ' ' && kanji_at(c, e + 1) {
            let e2 = kanji_forward(c, e + 1, 4);
            let k2 = key(c, e + 1, e2);
            let ok = e2 > e + 1 && e2 - (e + 1) <= 3 && kanji_name_ends(c, e2);
            if ok && !is_stop(&k2) && stop_prefix(&k2).is_none() {
                end = e2;
            }
        }
        let k = key(c, s, end);
        let one = k.chars().count() == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
        (!is_stop(&k) && stop_prefix(&k).is_none() && !one).then_some((s, end))
    } else if is_katakana(c[s]) && c[s] != '・' {
        let run = |from: usize| {
            let mut e = from;
            while e < n && e - from < 12 && is_katakana(c[e]) {
                e += 1;
            }
            e
        };
        let e = run(s);
        let mut end = e;
        if e + 1 < n && c[e] == ' ' && is_katakana(c[e + 1]) {
            let e2 = run(e + 1);
            if accept_kana(c, e + 1, e2).is_some() {
                end = e2;
            }
        }
        accept_kana(c, s, end)?;
        let k = key(c, s, e);
        (!is_stop(&k)).then_some((s, end))
    } else if c[s].is_ascii_alphabetic() {
        let word = |from: usize| {
            let mut e = from;
            while e < n && c[e].is_ascii_alphabetic() {
                e += 1;
            }
            (romaji_word(&c[from..e]) && (e >= n || !c[e].is_ascii_alphanumeric())).then_some(e)
        };
        let e = word(s)?;
        let end = if e + 1 < n && c[e] == ' ' { word(e + 1).unwrap_or(e) } else { e };
        Some((s, end))
    } else {
        None
    }
}

fn starts_honorific(c: &[char], i: usize) -> bool {
    HONORIFICS.iter().any(|(w, _)| starts_with(c, i, w))
}

/// Hiragana that may follow a name (particles, さん/ちゃん/くん); other hiragana after a
/// kanji run make it a word stem with okurigana.
const AFTER_NAME_KANA: &str = "よとのはがにへでもやさちくか";

static ROLE_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(ROLES.iter().map(|(w, _)| *w)));
static HONORIFIC_FIRST_CHARS: FirstChars =
    FirstChars::new(|| first_chars(HONORIFICS.iter().map(|(w, _)| *w)));

fn name_hit(doctor: bool) -> Hit {
    Hit::Pattern(if doctor { Pattern::Doctor } else { Pattern::PersonName })
}

/// Other people's names: `〇〇様/さん/先生/医師/Dr/氏/君/ちゃん/看護師/Ns/技師`,
/// `Dr.〇〇`, `担当:〇〇`, `主治医 〇〇`, `長男 〇〇`.
pub(crate) fn find_person_names(c: &[char], out: &mut Vec<Match>) {
    let n = c.len();
    let mut push = |(s, e): (usize, usize), doctor: bool| {
        if s < e {
            out.push(Match { start: s, end: e, hit: name_hit(doctor) });
        }
    };
    for p in 0..=n {
        if p == n || c[p] == '\n' {
            if let Some(m) = signature_before(c, p) {
                push(m, true);
            }
            continue;
        }
        // Honorific after the name.
        let honorifics =
            if HONORIFIC_FIRST_CHARS.binary_search(&c[p]).is_ok() { &HONORIFICS[..] } else { &[] };
        for &(w, doctor) in honorifics {
            if !starts_with(c, p, w) {
                continue;
            }
            let after = p + w.chars().count();
            let next = c.get(after).copied();
            let skip = match w {
                "氏" => matches!(next, Some('名' | '病' | '症')),
                "君" => next.is_some_and(is_kanji),
                "様" => LIKE_AFTER.iter().any(|l| starts_with(c, after, l)),
                _ => false,
            };
            if !skip {
                if let Some(m) = name_before(c, p) {
                    push(m, doctor);
                }
            }
        }
        // "Kondo MD": a romaji name before the degree.
        if starts_with(c, p, "MD")
            && p >= 2
            && c[p - 1] == ' '
            && c.get(p + 2).is_none_or(|ch| !ch.is_ascii_alphanumeric())
        {
            if let Some(m) = romaji_back(c, p - 1) {
                push(m, true);
            }
        }
        // Dr / Ns after the name (田中Dr, 鈴木 Ns): ASCII, so not inside a longer word.
        for (w, doctor) in [("dr", true), ("ns", false)] {
            let after = p + 2;
            if starts_with_ascii_ci(c, p, w)
                && (p == 0 || !c[p - 1].is_ascii_alphabetic())
                && c.get(after).is_none_or(|ch| !ch.is_ascii_alphabetic())
            {
                if let Some(m) = name_before(c, p) {
                    push(m, doctor);
                }
                if w == "dr" || at(c, after, '.') || at(c, after, ' ') {
                    // Dr.田中, Dr 田中, Dr:Tanaka; Ns. Yoshikawa, 外来Ns 杉本.
                    let mut s = after;
                    while s < n && s - after < 3 && matches!(c[s], '.' | ' ' | ':') {
                        s += 1;
                    }
                    if let Some(m) = name_after(c, s) {
                        push(m, doctor);
                    }
                }
            }
        }
        // Role word before the name; the longest one (母親 rather than 母).
        if ROLE_FIRST_CHARS.binary_search(&c[p]).is_err() {
            continue;
        }
        let role = ROLES
            .iter()
            .filter(|(w, _)| starts_with(c, p, w))
            .max_by_key(|(w, _)| w.chars().count());
        if let Some(&(w, doctor)) = role {
            let len = w.chars().count();
            // A one-kanji relation word inside a longer word (夫妻, 祖父) is not the role.
            if len == 1 && p > 0 && is_kanji(c[p - 1]) {
                continue;
            }
            let mut s = p + len;
            while s < n && s - (p + len) < 3 && matches!(c[s], ' ' | ':' | '=' | '(' | '（') {
                s += 1;
            }
            if s > p + len {
                let mut next = name_after(c, s);
                // A list of names after one role (介助：吉川、宮本, 読影 西村／上野).
                while let Some(m) = next {
                    push(m, doctor);
                    let mut k = m.1;
                    while k < n && c[k] == ' ' {
                        k += 1;
                    }
                    if k < n && "、,・/／".contains(c[k]) {
                        // Only short surnames continue a list; a longer word after 、 is the
                        // next item of the sentence (氏名 …、生年月日).
                        next = name_after(c, sp(c, k + 1)).filter(|&(a, b)| {
                            b - a <= 3
                                && c.get(b).is_none_or(|&ch| {
                                    " \n、,・/／。)）".contains(ch) || starts_honorific(c, b)
                                })
                        });
                    } else {
                        next = None;
                    }
                }
            }
        }
    }
}

/// A signature: surname, one space, given name (1–3 kanji each) closing a line or the
/// text, after the line start, 。 or a space (消化器内科 岡田 裕介, …お願いします。谷 健司).
fn signature_before(c: &[char], end: usize) -> Option<(usize, usize)> {
    let mut e = end;
    while e > 0 && c[e - 1] == ' ' {
        e -= 1;
    }
    let g = kanji_back(c, e, 4);
    if g == e || e - g > 3 || g < 2 || c[g - 1] != ' ' {
        return None;
    }
    let s = kanji_back(c, g - 1, 4);
    if s == g - 1 || (g - 1) - s > 3 {
        return None;
    }
    let before_ok = s == 0 || matches!(c[s - 1], '\n' | '。' | ' ');
    let part_ok = |a: usize, b: usize| {
        let k = key(c, a, b);
        let one = k.chars().count() == 1 && k.chars().all(|ch| SINGLE_STOP.contains(ch));
        !one && !is_stop(&k) && stop_prefix(&k).is_none()
    };
    (before_ok && part_ok(s, g - 1) && part_ok(g, e)).then_some((s, e))
}

/// A given name after a found surname and one space (田村 ミチ子, 大西 節子): 1–3 kanji, or
/// up to 4 katakana with at most one kanji after (ミチ子), ending where a name may end.
/// Returns the new end. Clinical and workflow words are excluded by the stop-list and the
/// breaker kanji, as for any name.
fn given_name_after(c: &[char], e: usize) -> Option<usize> {
    if !at(c, e, ' ') || e == 0 || !(kanji_at(c, e - 1) || katakana_letter(c[e - 1])) {
        return None;
    }
    let s = e + 1;
    let mut k = s;
    while k < c.len() && k - s < 4 && katakana_letter(c[k]) {
        k += 1;
    }
    let kana = k - s;
    let max_kanji = if kana > 0 { 1 } else { 3 };
    let ke = kanji_forward(c, k, max_kanji + 1);
    if ke - s == 0 || ke - k > max_kanji || !kanji_name_ends(c, ke) {
        return None;
    }
    let next = c.get(ke).copied();
    let ends = next.is_none_or(|ch| {
        punct_boundary(ch) || ch == '\n' || starts_honorific(c, ke) || AFTER_NAME_KANA.contains(ch)
    });
    let k1 = key(c, s, ke);
    let one = k1.chars().count() == 1 && k1.chars().all(|ch| SINGLE_STOP.contains(ch));
    (ends && !one && !is_stop(&k1) && stop_prefix(&k1).is_none()).then_some(ke)
}

/// Widen name matches (the patient's, a relative's, a doctor's) over a given name written
/// after a space, when only the surname was found.
pub(crate) fn extend_given_names(c: &[char], out: &mut [Match]) {
    for m in out.iter_mut() {
        let name = matches!(
            m.hit,
            Hit::Id(IdKind::PatientName | IdKind::PatientKana | IdKind::Physician)
                | Hit::Pattern(Pattern::PersonName | Pattern::Doctor)
        );
        // Only a lone surname is widened; a full name is complete (松本 拓也 携帯).
        if name && !c[m.start..m.end].contains(&' ') {
            if let Some(e) = given_name_after(c, m.end) {
                m.end = e;
            }
        }
    }
}
