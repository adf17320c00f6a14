//! The comparison key of a spelling, char by char with the source range each came from.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// One normalized char and the byte range of the source text it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NChar {
    pub(crate) c: char,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Whitespace or a middle dot was removed just before it (a word boundary).
    pub(crate) gap: bool,
}

/// The comparison key of a spelling: NFKC; whitespace, middle dots and zero-width chars
/// removed; dashes unified to '-' (ー and 一 only between ASCII letters/digits, where they
/// are typos for a dash); ASCII upper case; macroscopic types rewritten to `0-` + Roman
/// numerals + subtype letter, absorbing a trailing 型 or 病変 (`0-2c`, `Ⅱc型` → `0-IIC`).
pub fn normalize(s: &str) -> String {
    norm_chars(s).into_iter().map(|n| n.c).collect()
}

pub(crate) fn norm_chars(s: &str) -> Vec<NChar> {
    let mut v = Vec::with_capacity(s.len());
    let mut gap = false;
    let mut it = s.char_indices().peekable();
    let mut chunk = String::new();
    while let Some((start, c)) = it.next() {
        // NFKC per base char plus its combining marks, so each output char knows its source
        // (half-width ﾞ/ﾟ become combining marks only under NFKC, hence listed).
        chunk.clear();
        chunk.push(c);
        let mut end = start + c.len_utf8();
        while let Some(&(i, m)) = it.peek() {
            if !(is_combining_mark(m) || matches!(m, '\u{FF9E}' | '\u{FF9F}')) {
                break;
            }
            chunk.push(m);
            end = i + m.len_utf8();
            it.next();
        }
        for n in chunk.nfkc() {
            if n.is_whitespace()
                || matches!(n, '・' | '·' | '‧' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}')
            {
                gap = true;
                continue;
            }
            v.push(NChar { c: n, start, end, gap });
            gap = false;
        }
    }
    for i in 0..v.len() {
        let c = v[i].c;
        let between_ascii = i > 0
            && i + 1 < v.len()
            && v[i - 1].c.is_ascii_alphanumeric()
            && v[i + 1].c.is_ascii_alphanumeric();
        if matches!(c, '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '﹣' | '⁃')
            || (matches!(c, 'ー' | '一') && between_ascii)
        {
            v[i].c = '-';
        }
    }
    let v = rewrite_macro(&v);
    v.into_iter().map(|n| NChar { c: n.c.to_ascii_uppercase(), ..n }).collect()
}

fn rewrite_macro(v: &[NChar]) -> Vec<NChar> {
    let mut out = Vec::with_capacity(v.len() + 4);
    let mut i = 0;
    while i < v.len() {
        match macro_at(v, i) {
            Some((emit, next)) => {
                out.extend(emit);
                i = next;
            }
            None => {
                out.push(v[i]);
                i += 1;
            }
        }
    }
    out
}

/// A macroscopic type starting at `i`: the chars to emit and the index after it.
fn macro_at(v: &[NChar], i: usize) -> Option<(Vec<NChar>, usize)> {
    let at = |j: usize| v.get(j).map(|n| n.c);
    if i > 0 && !v[i].gap && v[i - 1].c.is_ascii_alphanumeric() {
        return None;
    }
    let prefix = at(i) == Some('0') && at(i + 1) == Some('-');
    let mut j = if prefix { i + 2 } else { i };
    let body_at = j;
    let n = match at(j) {
        Some(d @ '1'..='3') if prefix => {
            j += 1;
            d as usize - '0' as usize
        }
        _ => {
            let mut n = 0;
            // Lower-case roman (ⅱ → ii) only after 0-, so English "is"/"ip" stay words.
            while (at(j) == Some('I') || (prefix && at(j) == Some('i'))) && n < 4 {
                n += 1;
                j += 1;
            }
            n
        }
    };
    if n == 0 || n > 3 {
        return None;
    }
    let subtypes: &[&str] = match n {
        1 => &["sp", "ps", "p", "s"],
        2 => &["a", "b", "c"],
        _ => &[],
    };
    let free_after = |k: usize| v.get(k).is_none_or(|x| x.gap || !x.c.is_ascii_alphanumeric());
    // Without the 0- prefix only a lower-case subtype marks a macroscopic type (Ⅱc, Is), so
    // English words and upper-case abbreviations are left alone.
    let suffix = subtypes.iter().find(|sub| {
        let len = sub.len();
        v.len() >= j + len
            && v[j..j + len]
                .iter()
                .zip(sub.chars())
                .all(|(x, s)| x.c == s || (prefix && x.c == s.to_ascii_uppercase()))
            && free_after(j + len)
    });
    let suffix_len = suffix.map_or(0, |s| s.len());
    if suffix.is_none() && !(prefix && free_after(j)) {
        return None;
    }
    let mut k = j + suffix_len;
    let mut end = v[k - 1].end;
    if at(k) == Some('型') {
        end = v[k].end;
        k += 1;
    } else if at(k) == Some('病') && at(k + 1) == Some('変') {
        end = v[k + 1].end;
        k += 2;
    }
    let mk = |c: char, src: &NChar| NChar { c, start: src.start, end: src.end, gap: false };
    let mut emit = Vec::with_capacity(3 + n + suffix_len);
    if prefix {
        emit.push(mk('0', &v[i]));
        emit.push(mk('-', &v[i + 1]));
    } else {
        emit.push(mk('0', &v[body_at]));
        emit.push(mk('-', &v[body_at]));
    }
    let body_src: Vec<&NChar> = if v[body_at].c.is_ascii_digit() {
        vec![&v[body_at]; n]
    } else {
        v[body_at..j].iter().collect()
    };
    for src in body_src {
        emit.push(mk('I', src));
    }
    for x in &v[j..j + suffix_len] {
        emit.push(mk(x.c.to_ascii_uppercase(), x));
    }
    emit[0].gap = v[i].gap;
    if let Some(last) = emit.last_mut() {
        last.end = end;
    }
    Some((emit, k))
}
