//! Readings of Japanese surnames and given names, for names the analyser cannot tag: written
//! in katakana (ナカムラ イチロウ, キムラハナコ) or romaji (Kobayashi Naoki). MeCab tags a
//! kanji name from its dictionary, but not a reading it has never seen as a word.
//!
//! The readings come from the same Debian package as the analyser's dictionary:
//! `mecab-ipadic` ships IPADIC's sources, and `Noun.name.csv` (EUC-JP) lists every person
//! name with its kind (姓, 名, 一般) and its reading, in katakana. Loaded once per process.
//!
//! Readings are compared in a folded form ([`reading_key`]) that forgets what romaji
//! spellings forget: long vowels (ユウコ = Yuko = Yuuko, オオノ = Ono = Ohno = Oono) and ヅ/ヂ.

use super::morph::AnalyserError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// IPADIC's person names as Debian's `mecab-ipadic` installs them.
pub(crate) const NAME_CSV: &str = "/usr/share/mecab/dic/ipadic/Noun.name.csv";

/// Folded readings of surnames and of given names.
pub(crate) struct NameLexicon {
    surnames: HashSet<String>,
    given: HashSet<String>,
    /// Kanji spellings (中村, 美咲), for names the analyser tags as places or common nouns.
    surname_kanji: HashSet<String>,
    given_kanji: HashSet<String>,
}

static LEXICON: LazyLock<Result<NameLexicon, AnalyserError>> =
    LazyLock::new(|| NameLexicon::load(Path::new(NAME_CSV)));

/// The process's lexicon, loaded on first use.
pub(crate) fn lexicon() -> Result<&'static NameLexicon, AnalyserError> {
    LEXICON.as_ref().map_err(Clone::clone)
}

impl NameLexicon {
    fn load(path: &Path) -> Result<NameLexicon, AnalyserError> {
        let missing = || AnalyserError::Missing { path: path.to_path_buf() };
        let bytes = std::fs::read(path).map_err(|_| missing())?;
        let (text, _, _) = encoding_rs::EUC_JP.decode(&bytes);
        let lex = NameLexicon::parse(&text);
        for (set, kind) in [(&lex.surnames, "surname"), (&lex.given, "given name")] {
            if set.is_empty() {
                return Err(AnalyserError::Lexicon { path: PathBuf::from(path), kind });
            }
        }
        Ok(lex)
    }

    /// IPADIC CSV rows: surface, ids, cost, 名詞, 固有名詞, 人名, kind, *, *, base, reading, ….
    fn parse(text: &str) -> NameLexicon {
        let mut lex = NameLexicon {
            surnames: HashSet::new(),
            given: HashSet::new(),
            surname_kanji: HashSet::new(),
            given_kanji: HashSet::new(),
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            let (Some(surface), Some(kind), Some(reading)) = (f.first(), f.get(7), f.get(11))
            else {
                continue;
            };
            if surface.chars().all(super::is_kanji) {
                match *kind {
                    "姓" => lex.surname_kanji.insert(surface.to_string()),
                    "名" => lex.given_kanji.insert(surface.to_string()),
                    _ => false,
                };
            }
            let key = reading_key(reading);
            // One-mora readings (イ, ト) would match inside any katakana word.
            if key.chars().count() < 2 {
                continue;
            }
            match *kind {
                "姓" => lex.surnames.insert(key),
                "名" => lex.given.insert(key),
                _ => false,
            };
        }
        lex
    }

    /// `word` (kanji) is spelled as a surname in the dictionary.
    pub(crate) fn is_surname_kanji(&self, word: &str) -> bool {
        self.surname_kanji.contains(word)
    }

    /// `word` (kanji) is spelled as a given name in the dictionary.
    pub(crate) fn is_given_kanji(&self, word: &str) -> bool {
        self.given_kanji.contains(word)
    }

    /// `word` (one romaji word) reads as kana at all (English words rarely do: Pit, Type).
    pub(crate) fn romaji_reads(word: &str) -> bool {
        !romaji_to_kana(word).is_empty()
    }

    /// `word` (katakana) reads as a surname.
    pub(crate) fn is_surname(&self, word: &str) -> bool {
        self.surnames.contains(&reading_key(word))
    }

    /// `word` (katakana) reads as a given name.
    pub(crate) fn is_given(&self, word: &str) -> bool {
        self.given.contains(&reading_key(word))
    }

    /// `word` (one romaji word, any case) spells a surname.
    pub(crate) fn romaji_surname(&self, word: &str) -> bool {
        romaji_to_kana(word).iter().any(|k| self.is_surname(k))
    }

    /// `word` (one romaji word, any case) spells a given name.
    pub(crate) fn romaji_given(&self, word: &str) -> bool {
        romaji_to_kana(word).iter().any(|k| self.is_given(k))
    }

    #[cfg(test)]
    pub(crate) fn from_csv(text: &str) -> NameLexicon {
        NameLexicon::parse(text)
    }
}

fn vowel(ch: char) -> Option<char> {
    const ROWS: [(char, &str); 5] = [
        ('a', "アカサタナハマヤラワガザダバパァャ"),
        ('i', "イキシチニヒミリギジヂビピィ"),
        ('u', "ウクスツヌフムユルグズヅブプゥュヴ"),
        ('e', "エケセテネヘメレゲゼデベペェ"),
        ('o', "オコソトノホモヨロヲゴゾドボポォョ"),
    ];
    ROWS.iter().find(|(_, row)| row.contains(ch)).map(|(v, _)| *v)
}

/// A katakana reading with long vowels and ヅ/ヂ/ヲ folded (hiragana is made katakana first).
pub(crate) fn reading_key(reading: &str) -> String {
    let mut out = String::with_capacity(reading.len());
    let mut last: Option<char> = None;
    for ch in reading.chars() {
        let ch = match ch {
            'ぁ'..='ゖ' => char::from_u32(ch as u32 + 0x60).unwrap_or(ch),
            _ => ch,
        };
        let ch = match ch {
            'ヅ' => 'ズ',
            'ヂ' => 'ジ',
            'ヲ' => 'オ',
            c => c,
        };
        let prev = last.and_then(vowel);
        let long = ch == 'ー'
            || (ch == 'ウ' && matches!(prev, Some('o' | 'u')))
            || (ch == 'オ' && prev == Some('o'));
        if !long {
            out.push(ch);
            last = Some(ch);
        }
    }
    out
}

/// Hepburn and Kunrei syllables, longest first where it matters.
const SYLLABLES: &[(&str, &str)] = &[
    ("kya", "キャ"),
    ("kyu", "キュ"),
    ("kyo", "キョ"),
    ("sha", "シャ"),
    ("shu", "シュ"),
    ("sho", "ショ"),
    ("shi", "シ"),
    ("sya", "シャ"),
    ("syu", "シュ"),
    ("syo", "ショ"),
    ("cha", "チャ"),
    ("chu", "チュ"),
    ("cho", "チョ"),
    ("chi", "チ"),
    ("tya", "チャ"),
    ("tyu", "チュ"),
    ("tyo", "チョ"),
    ("tsu", "ツ"),
    ("nya", "ニャ"),
    ("nyu", "ニュ"),
    ("nyo", "ニョ"),
    ("hya", "ヒャ"),
    ("hyu", "ヒュ"),
    ("hyo", "ヒョ"),
    ("mya", "ミャ"),
    ("myu", "ミュ"),
    ("myo", "ミョ"),
    ("rya", "リャ"),
    ("ryu", "リュ"),
    ("ryo", "リョ"),
    ("gya", "ギャ"),
    ("gyu", "ギュ"),
    ("gyo", "ギョ"),
    ("jya", "ジャ"),
    ("jyu", "ジュ"),
    ("jyo", "ジョ"),
    ("zya", "ジャ"),
    ("zyu", "ジュ"),
    ("zyo", "ジョ"),
    ("bya", "ビャ"),
    ("byu", "ビュ"),
    ("byo", "ビョ"),
    ("pya", "ピャ"),
    ("pyu", "ピュ"),
    ("pyo", "ピョ"),
    ("ka", "カ"),
    ("ki", "キ"),
    ("ku", "ク"),
    ("ke", "ケ"),
    ("ko", "コ"),
    ("sa", "サ"),
    ("si", "シ"),
    ("su", "ス"),
    ("se", "セ"),
    ("so", "ソ"),
    ("ta", "タ"),
    ("ti", "チ"),
    ("tu", "ツ"),
    ("te", "テ"),
    ("to", "ト"),
    ("na", "ナ"),
    ("ni", "ニ"),
    ("nu", "ヌ"),
    ("ne", "ネ"),
    ("no", "ノ"),
    ("ha", "ハ"),
    ("hi", "ヒ"),
    ("fu", "フ"),
    ("hu", "フ"),
    ("he", "ヘ"),
    ("ho", "ホ"),
    ("ma", "マ"),
    ("mi", "ミ"),
    ("mu", "ム"),
    ("me", "メ"),
    ("mo", "モ"),
    ("ya", "ヤ"),
    ("yu", "ユ"),
    ("yo", "ヨ"),
    ("ra", "ラ"),
    ("ri", "リ"),
    ("ru", "ル"),
    ("re", "レ"),
    ("ro", "ロ"),
    ("wa", "ワ"),
    ("wo", "オ"),
    ("ga", "ガ"),
    ("gi", "ギ"),
    ("gu", "グ"),
    ("ge", "ゲ"),
    ("go", "ゴ"),
    ("za", "ザ"),
    ("zi", "ジ"),
    ("ji", "ジ"),
    ("zu", "ズ"),
    ("ze", "ゼ"),
    ("zo", "ゾ"),
    ("ja", "ジャ"),
    ("ju", "ジュ"),
    ("jo", "ジョ"),
    ("da", "ダ"),
    ("di", "ジ"),
    ("du", "ズ"),
    ("de", "デ"),
    ("do", "ド"),
    ("ba", "バ"),
    ("bi", "ビ"),
    ("bu", "ブ"),
    ("be", "ベ"),
    ("bo", "ボ"),
    ("pa", "パ"),
    ("pi", "ピ"),
    ("pu", "プ"),
    ("pe", "ペ"),
    ("po", "ポ"),
    ("a", "ア"),
    ("i", "イ"),
    ("u", "ウ"),
    ("e", "エ"),
    ("o", "オ"),
];

/// Most spellings one romaji word is read as (`n` before a vowel is ambiguous: Kenichi is
/// ケンイチ, Kana is カナ).
const MAX_READINGS: usize = 8;

/// The katakana readings of one romaji word (empty when it is not romaji at all).
pub(crate) fn romaji_to_kana(word: &str) -> Vec<String> {
    let w: Vec<u8> = word.bytes().filter(|b| *b != b'\'' && *b != b'-').collect();
    if w.is_empty() || w.len() > 20 || !w.iter().all(u8::is_ascii_alphabetic) {
        return Vec::new();
    }
    let w = w.to_ascii_lowercase();
    let mut out = Vec::new();
    kana_from(&w, String::new(), &mut out);
    // No Japanese word starts with ン or ッ (NBI is not ンビ).
    out.retain(|k| !k.starts_with(['ン', 'ッ']));
    out
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'i' | b'u' | b'e' | b'o')
}

fn kana_from(rest: &[u8], acc: String, out: &mut Vec<String>) {
    if out.len() >= MAX_READINGS {
        return;
    }
    let Some(&b) = rest.first() else {
        out.push(acc);
        return;
    };
    let next = rest.get(1).copied();
    // Syllabic n: at the end, before a consonant, doubled, or m before b/p/m (Homma).
    let syllabic = match b {
        b'n' => next.is_none_or(|n| !is_vowel(n) && n != b'y') || next == Some(b'n'),
        b'm' => matches!(next, Some(b'b' | b'p' | b'm')),
        _ => false,
    };
    if syllabic {
        kana_from(&rest[1..], acc + "ン", out);
        return;
    }
    // Doubled consonant (Hattori, Hotta), and tch (Matchan): a small ッ.
    if !is_vowel(b) && (next == Some(b) || (b == b't' && next == Some(b'c'))) {
        kana_from(&rest[1..], acc + "ッ", out);
        return;
    }
    // h lengthening a vowel (Satoh, Ohno).
    if b == b'h'
        && acc.chars().last().and_then(vowel).is_some()
        && next.is_none_or(|n| !is_vowel(n) && n != b'y')
    {
        kana_from(&rest[1..], acc, out);
        return;
    }
    let syllable = [3, 2, 1].into_iter().find_map(|len| {
        SYLLABLES.iter().find(|(r, _)| r.len() == len && rest.starts_with(r.as_bytes()))
    });
    if let Some(&(r, kana)) = syllable {
        kana_from(&rest[r.len()..], acc.clone() + kana, out);
    }
    // n before a vowel: also the syllabic n (Kenichi, Shinya).
    if b == b'n' {
        kana_from(&rest[1..], acc + "ン", out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_fold_long_vowels() {
        assert_eq!(reading_key("イチロウ"), reading_key("イチロー"));
        assert_eq!(reading_key("ユウコ"), "ユコ");
        assert_eq!(reading_key("オオノ"), "オノ");
        assert_eq!(reading_key("けいこ"), "ケイコ");
    }

    #[test]
    fn romaji_reads_as_kana() {
        let has =
            |w: &str, k: &str| romaji_to_kana(w).iter().any(|r| reading_key(r) == reading_key(k));
        assert!(has("Nakamura", "ナカムラ"));
        assert!(has("Kenichi", "ケンイチ"));
        assert!(has("Ken'ichi", "ケンイチ"));
        assert!(has("Kana", "カナ"));
        assert!(has("SATOH", "サトウ"));
        assert!(has("Ohno", "オオノ"));
        assert!(has("Hattori", "ハットリ"));
        assert!(has("Homma", "ホンマ"));
        assert!(has("Shinya", "シンヤ"));
        assert!(has("Yuuko", "ユウコ") && has("Yuko", "ユウコ"));
        for not_romaji in ["NBI", "ESD2", "Type", "Group", "Pit", "Forrest"] {
            assert!(romaji_to_kana(not_romaji).is_empty(), "{not_romaji}");
        }
    }

    #[test]
    fn lexicon_reads_the_csv_format() {
        let lex = NameLexicon::from_csv(
            "中村,1290,1290,1,名詞,固有名詞,人名,姓,*,*,中村,ナカムラ,ナカムラ\n\
             一郎,1291,1291,1,名詞,固有名詞,人名,名,*,*,一郎,イチロウ,イチロー\n\
             井,1290,1290,1,名詞,固有名詞,人名,姓,*,*,井,イ,イ\n",
        );
        assert!(lex.is_surname("ナカムラ") && lex.is_given("イチロー"));
        assert!(lex.romaji_surname("NAKAMURA") && lex.romaji_given("Ichiro"));
        assert!(!lex.is_surname("イ") && !lex.is_given("ナカムラ"));
    }

    #[test]
    fn the_debian_lexicon_loads() {
        let lex = lexicon().expect("mecab-ipadic installed");
        assert!(lex.is_surname("コバヤシ") && lex.is_given("ナオキ"));
        assert!(lex.surnames.len() > 5000 && lex.given.len() > 5000);
    }
}
