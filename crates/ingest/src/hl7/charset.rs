//! The character set of a message (MSH-18, with MSH-20 for the JIS variants): strict
//! decoding of the whole message, and encoding of our replies.

use encoding_rs::{ISO_2022_JP, SHIFT_JIS};
use std::fmt;

/// Character sets we accept (MSH-18, with MSH-20 for the JIS variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// MSH-18 empty, `ASCII` or `ISO IR6`.
    Ascii,
    /// `UNICODE UTF-8`, `UTF-8`.
    Utf8,
    /// `ISO IR87` (JIS X 0208) with ISO 2022 escapes, as in JAHIS messages (`~ISO IR87`,
    /// MSH-20 `ISO 2022-1994`).
    Iso2022Jp,
    /// `SHIFT_JIS`/`CP932`, or the vendor variant `ISO IR13~ISO IR87` without MSH-20
    /// `ISO 2022-1994`, which in practice is Shift_JIS bytes.
    Cp932,
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Charset::Ascii => "ASCII",
            Charset::Utf8 => "UTF-8",
            Charset::Iso2022Jp => "ISO-2022-JP",
            Charset::Cp932 => "CP932",
        })
    }
}

/// `UNICODE UTF-8`, `ISO_IR 87`, `Shift-JIS` all compare as the same code.
fn compact(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_uppercase).collect()
}

impl Charset {
    /// From the raw MSH-18 (repeating) and MSH-20. `None`: not a set we support.
    pub(crate) fn from_msh(msh18: &str, repetition: char, msh20: &str) -> Option<Charset> {
        let iso2022 = compact(msh20).starts_with("ISO2022");
        let (mut utf8, mut sjis, mut ir87, mut ir13) = (false, false, false, false);
        for token in msh18.split(repetition).map(compact).filter(|t| !t.is_empty()) {
            match token.as_str() {
                "ASCII" | "ISOIR6" => {}
                "UNICODEUTF8" | "UTF8" => utf8 = true,
                "SHIFTJIS" | "SJIS" | "CP932" | "MS932" | "WINDOWS31J" => sjis = true,
                "ISOIR87" | "ISO2022IR87" | "ISO2022JP" => ir87 = true,
                "ISOIR13" | "ISO2022IR13" => ir13 = true,
                _ => return None,
            }
        }
        match (utf8, sjis, ir87, ir13) {
            (false, false, false, false) => Some(Charset::Ascii),
            (true, false, false, false) => Some(Charset::Utf8),
            (false, true, _, _) => Some(Charset::Cp932),
            (false, false, _, _) if iso2022 => Some(Charset::Iso2022Jp),
            (false, false, true, false) => Some(Charset::Iso2022Jp),
            // JIS X 0201 (8-bit) alone or with IR87 and no ISO 2022: Shift_JIS in practice.
            (false, false, _, true) => Some(Charset::Cp932),
            _ => None,
        }
    }

    /// Strict decode: `None` on any byte sequence not valid in this set.
    pub(crate) fn decode(self, bytes: &[u8]) -> Option<String> {
        match self {
            // ESC would mean ISO 2022 text sent without declaring it.
            Charset::Ascii if bytes.is_ascii() && !bytes.contains(&0x1b) => {
                String::from_utf8(bytes.to_vec()).ok()
            }
            Charset::Ascii => None,
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Charset::Iso2022Jp => ISO_2022_JP
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned()),
            Charset::Cp932 => SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned()),
        }
    }

    /// Encode a reply. Its text is our ASCII plus fields echoed from a request in this set.
    pub(crate) fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Charset::Ascii => {
                text.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' }).collect()
            }
            Charset::Utf8 => text.as_bytes().to_vec(),
            Charset::Iso2022Jp => ISO_2022_JP.encode(text).0.into_owned(),
            Charset::Cp932 => SHIFT_JIS.encode(text).0.into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets_from_msh18() {
        let f = |a: &str, b: &str| Charset::from_msh(a, '~', b);
        assert_eq!(f("", ""), Some(Charset::Ascii));
        assert_eq!(f("ASCII", ""), Some(Charset::Ascii));
        assert_eq!(f("UNICODE UTF-8", ""), Some(Charset::Utf8));
        assert_eq!(f("utf-8", ""), Some(Charset::Utf8));
        assert_eq!(f("~ISO IR87", "ISO 2022-1994"), Some(Charset::Iso2022Jp));
        assert_eq!(f("ISO IR87", ""), Some(Charset::Iso2022Jp));
        assert_eq!(f("ISO IR13~ISO IR87", ""), Some(Charset::Cp932));
        assert_eq!(f("ISO IR13~ISO IR87", "ISO 2022-1994"), Some(Charset::Iso2022Jp));
        assert_eq!(f("SHIFT_JIS", ""), Some(Charset::Cp932));
        assert_eq!(f("8859/1", ""), None);
        assert_eq!(f("UNICODE UTF-8~ISO IR87", ""), None);
    }
}
