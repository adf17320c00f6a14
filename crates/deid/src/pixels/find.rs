//! Searching OCR output for the exam's own identifiers. Both sides are in the gate's search
//! normal form ([`fold`]: NFKC, full/half width, katakana → hiragana, variant kanji, spaces
//! and dashes removed), and the identifier set already holds the variants (romaji in Hepburn
//! spellings, birth date in Western and era forms, ids with and without leading zeros). OCR
//! misreads a character here and there, so a match may be a few edits away: the allowance
//! grows with the variant's length and is zero for short ones, where it would match noise.

use crate::identifiers::{fold, IdKind, IdentifierSet};

/// Edits allowed for a variant of `n` folded chars.
pub fn allowed_edits(n: usize) -> usize {
    match n {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The kind of the first identifier found in `text`, if any.
pub fn find_identifier(text: &str, ids: &IdentifierSet) -> Option<IdKind> {
    let (folded, _) = fold(text);
    let hay: Vec<char> = folded.chars().collect();
    ids.variants().find_map(|(kind, v)| {
        let needle: Vec<char> = v.chars().collect();
        approx_contains(&hay, &needle, allowed_edits(needle.len())).then_some(kind)
    })
}

/// True if some substring of `hay` is within `k` edits (Levenshtein) of `needle` (Sellers'
/// algorithm: a free start anywhere in the text).
pub fn approx_contains(hay: &[char], needle: &[char], k: usize) -> bool {
    let m = needle.len();
    if m == 0 {
        return true;
    }
    if k == 0 {
        return hay.windows(m).any(|w| w == needle);
    }
    // prev[i]: edits to match needle[..i] ending at the previous text position.
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for &c in hay {
        cur[0] = 0;
        for i in 1..=m {
            let sub = prev[i - 1] + usize::from(needle[i - 1] != c);
            cur[i] = sub.min(prev[i] + 1).min(cur[i - 1] + 1);
        }
        if cur[m] <= k {
            return true;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn edit_distance_window() {
        assert!(approx_contains(&chars("xxONOMISAKIyy"), &chars("ONOMISAKI"), 0));
        assert!(approx_contains(&chars("xxON0MISAKIyy"), &chars("ONOMISAKI"), 1));
        assert!(approx_contains(&chars("xxONMISAKIyy"), &chars("ONOMISAKI"), 1));
        assert!(!approx_contains(&chars("xxOAOMIZAKIyy"), &chars("ONOMISAKI"), 1));
        assert!(!approx_contains(&chars("1234"), &chars("1235"), 0));
    }

    #[test]
    fn allowance_grows_with_length() {
        assert_eq!(allowed_edits(3), 0);
        assert_eq!(allowed_edits(8), 1);
        assert_eq!(allowed_edits(12), 2);
    }
}
