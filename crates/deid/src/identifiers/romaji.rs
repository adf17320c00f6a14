//! Romaji spellings of a kana name (Hepburn and the variants people write), searched as
//! whole words: Nakamura Kenichi, KATOH, Ken'ichi.

use super::fold;

/// Hepburn romanizations of one kana word (katakana, half-width or hiragana), with the
/// spellings people actually use side by side: long vowels written out, doubled or dropped
/// (おう → ou/oo/o/oh), Kunrei/Nihon-shiki forms (shi/si, chi/ti, tsu/tu, fu/hu, ji/zi,
/// sha/sya, ja/zya/jya), n/m before b/m/p, n' or n before a vowel or y, っ doubling (tch
/// for っち). Lowercase; at most [`MAX_ROMAJI`] spellings, preferred choices first. Empty
/// if the word has anything but kana.
pub fn romaji_variants(kana: &str) -> Vec<String> {
    let (h, _) = fold(kana);
    let chars: Vec<char> = h.chars().collect();
    let Some(tokens) = romaji_tokens(&chars) else {
        return Vec::new();
    };
    let mut out = vec![String::new()];
    for alts in tokens {
        let mut next = Vec::with_capacity(out.len() * alts.len());
        for prefix in &out {
            for a in &alts {
                if next.len() < MAX_ROMAJI {
                    next.push(format!("{prefix}{a}"));
                }
            }
        }
        out = next;
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out
}

/// Cap on spellings per word: names are short, but choices multiply.
const MAX_ROMAJI: usize = 96;

/// Alternatives for a (hiragana) syllable, Hepburn first.
fn syllable(s: &str) -> Option<&'static [&'static str]> {
    Some(match s {
        "あ" => &["a"],
        "い" => &["i"],
        "う" => &["u"],
        "え" => &["e"],
        "お" => &["o"],
        "を" => &["o", "wo"],
        "か" => &["ka"],
        "き" => &["ki"],
        "く" => &["ku"],
        "け" => &["ke"],
        "こ" => &["ko"],
        "が" => &["ga"],
        "ぎ" => &["gi"],
        "ぐ" => &["gu"],
        "げ" => &["ge"],
        "ご" => &["go"],
        "さ" => &["sa"],
        "し" => &["shi", "si"],
        "す" => &["su"],
        "せ" => &["se"],
        "そ" => &["so"],
        "ざ" => &["za"],
        "じ" => &["ji", "zi"],
        "ぢ" => &["ji", "di", "zi"],
        "ず" | "づ" => &["zu", "du"],
        "ぜ" => &["ze"],
        "ぞ" => &["zo"],
        "た" => &["ta"],
        "ち" => &["chi", "ti"],
        "つ" => &["tsu", "tu"],
        "て" => &["te"],
        "と" => &["to"],
        "だ" => &["da"],
        "で" => &["de"],
        "ど" => &["do"],
        "な" => &["na"],
        "に" => &["ni"],
        "ぬ" => &["nu"],
        "ね" => &["ne"],
        "の" => &["no"],
        "は" => &["ha"],
        "ひ" => &["hi"],
        "ふ" => &["fu", "hu"],
        "へ" => &["he"],
        "ほ" => &["ho"],
        "ば" => &["ba"],
        "び" => &["bi"],
        "ぶ" => &["bu"],
        "べ" => &["be"],
        "ぼ" => &["bo"],
        "ぱ" => &["pa"],
        "ぴ" => &["pi"],
        "ぷ" => &["pu"],
        "ぺ" => &["pe"],
        "ぽ" => &["po"],
        "ま" => &["ma"],
        "み" => &["mi"],
        "む" => &["mu"],
        "め" => &["me"],
        "も" => &["mo"],
        "や" => &["ya"],
        "ゆ" => &["yu"],
        "よ" => &["yo"],
        "ら" => &["ra"],
        "り" => &["ri"],
        "る" => &["ru"],
        "れ" => &["re"],
        "ろ" => &["ro"],
        "わ" => &["wa"],
        "ゐ" => &["i", "wi"],
        "ゑ" => &["e", "we"],
        "ゔ" => &["vu", "bu"],
        "ぁ" => &["a"],
        "ぃ" => &["i"],
        "ぅ" => &["u"],
        "ぇ" => &["e"],
        "ぉ" => &["o"],
        "ゃ" => &["ya"],
        "ゅ" => &["yu"],
        "ょ" => &["yo"],
        "きゃ" => &["kya"],
        "きゅ" => &["kyu"],
        "きょ" => &["kyo"],
        "ぎゃ" => &["gya"],
        "ぎゅ" => &["gyu"],
        "ぎょ" => &["gyo"],
        "しゃ" => &["sha", "sya"],
        "しゅ" => &["shu", "syu"],
        "しぇ" => &["she", "sye"],
        "しょ" => &["sho", "syo"],
        "じゃ" | "ぢゃ" => &["ja", "zya", "jya"],
        "じゅ" | "ぢゅ" => &["ju", "zyu", "jyu"],
        "じぇ" => &["je", "zye"],
        "じょ" | "ぢょ" => &["jo", "zyo", "jyo"],
        "ちゃ" => &["cha", "tya", "cya"],
        "ちゅ" => &["chu", "tyu", "cyu"],
        "ちぇ" => &["che", "tye"],
        "ちょ" => &["cho", "tyo", "cyo"],
        "にゃ" => &["nya"],
        "にゅ" => &["nyu"],
        "にょ" => &["nyo"],
        "ひゃ" => &["hya"],
        "ひゅ" => &["hyu"],
        "ひょ" => &["hyo"],
        "びゃ" => &["bya"],
        "びゅ" => &["byu"],
        "びょ" => &["byo"],
        "ぴゃ" => &["pya"],
        "ぴゅ" => &["pyu"],
        "ぴょ" => &["pyo"],
        "みゃ" => &["mya"],
        "みゅ" => &["myu"],
        "みょ" => &["myo"],
        "りゃ" => &["rya"],
        "りゅ" => &["ryu"],
        "りょ" => &["ryo"],
        "ふぁ" => &["fa"],
        "ふぃ" => &["fi"],
        "ふぇ" => &["fe"],
        "ふぉ" => &["fo"],
        "てぃ" => &["ti"],
        "でぃ" => &["di"],
        "うぃ" => &["wi"],
        "うぇ" => &["we"],
        "うぉ" => &["wo"],
        "ゔぁ" => &["va"],
        _ => return None,
    })
}

fn last_vowel(s: &str) -> Option<char> {
    s.chars().last().filter(|c| "aiueo".contains(*c))
}

/// Per-position alternatives for a hiragana word; None if it holds a non-kana char.
fn romaji_tokens(h: &[char]) -> Option<Vec<Vec<String>>> {
    // First pass: syllables, with っ, ん and ー kept as markers.
    enum T {
        Syl(&'static [&'static str]),
        Sokuon,
        N,
        Long,
    }
    let mut ts = Vec::new();
    let mut i = 0;
    while i < h.len() {
        let two: String = h[i..(i + 2).min(h.len())].iter().collect();
        let one = h[i].to_string();
        if h.len() > i + 1 {
            if let Some(a) = syllable(&two) {
                ts.push(T::Syl(a));
                i += 2;
                continue;
            }
        }
        ts.push(match h[i] {
            'っ' => T::Sokuon,
            'ん' => T::N,
            'ー' => T::Long,
            _ => T::Syl(syllable(&one)?),
        });
        i += 1;
    }
    let first = |t: Option<&T>| match t {
        Some(T::Syl(a)) => a[0].chars().next(),
        _ => None,
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut prev_vowel: Option<char> = None;
    let mut k = 0;
    while k < ts.len() {
        let alts: Vec<String> = match &ts[k] {
            T::Syl(a) => {
                // A vowel after the same (or a lengthening) vowel is a long vowel.
                let long: Option<&[&str]> = match (prev_vowel, a[0]) {
                    (Some('o'), "u") => Some(&["u", "", "o", "h"]),
                    (Some('o'), "o") => Some(&["o", "", "h"]),
                    (Some('u'), "u") => Some(&["u", ""]),
                    (Some('e'), "i") => Some(&["i", ""]),
                    (Some('i'), "i") => Some(&["i", ""]),
                    (Some('a'), "a") => Some(&["a", ""]),
                    _ => None,
                };
                prev_vowel = last_vowel(a[0]);
                match long {
                    Some(l) => {
                        // The vowel itself stays the same vowel for what follows.
                        prev_vowel = None;
                        l.iter().map(|s| s.to_string()).collect()
                    }
                    None => a.iter().map(|s| s.to_string()).collect(),
                }
            }
            T::Sokuon => {
                // Doubles the next consonant (っち → tchi); dropped at the end.
                let Some(T::Syl(a)) = ts.get(k + 1) else {
                    k += 1;
                    continue;
                };
                let doubled: Vec<String> = a
                    .iter()
                    .map(|s| {
                        let c = s.chars().next().unwrap_or('t');
                        if s.starts_with("ch") {
                            format!("t{s}")
                        } else if "aiueo".contains(c) {
                            s.to_string()
                        } else {
                            format!("{c}{s}")
                        }
                    })
                    .collect();
                prev_vowel = last_vowel(a[0]);
                out.push(doubled);
                k += 2;
                continue;
            }
            T::N => {
                prev_vowel = None;
                match first(ts.get(k + 1)) {
                    Some(c) if "aiueoy".contains(c) => vec!["n'".into(), "n".into(), "nn".into()],
                    Some(c) if "bmp".contains(c) => vec!["n".into(), "m".into()],
                    _ => vec!["n".into()],
                }
            }
            T::Long => match prev_vowel {
                Some('o') => vec!["o".into(), "".into(), "u".into(), "h".into()],
                Some(v) => vec![v.to_string(), "".into()],
                None => vec!["".into()],
            },
        };
        out.push(alts);
        k += 1;
    }
    Some(out)
}
