//! Text decoding that dicom-rs gets wrong for Japanese objects.
//!
//! dicom-rs decodes with the *first* value of Specific Character Set only. Japanese modalities
//! write `\ISO 2022 IR 87` or `ISO 2022 IR 13\ISO 2022 IR 87` (ASCII or JIS X 0201 first, code
//! extensions for kanji), so dicom-rs decodes the kanji escape sequences as Latin-1 or
//! Windows-31J. Both of those decodings are lossless for such byte streams, so the original
//! bytes are recovered and decoded here as ISO 2022 (JIS X 0208, JIS X 0212, half-width
//! katakana). Output is always written as `ISO_IR 192` (UTF-8): one encoding that holds every
//! placeholder and every decoded name.

use encoding_rs::{EUC_JP, SHIFT_JIS};

/// What the first value of Specific Character Set made dicom-rs decode text as, when the
/// declared set needs re-decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redecode {
    /// dicom-rs already decoded correctly (single-valued or no code extensions).
    None,
    /// First value default repertoire: text holds the bytes as Latin-1 chars.
    FromLatin1,
    /// First value ISO 2022 IR 13: text holds the bytes as Windows-31J.
    FromShiftJis,
}

/// Decide from the Specific Character Set values. `Err` names an unsupported term (only when
/// it looks like a defined term; otherwise a generic description).
pub(crate) fn plan(values: &[String]) -> Result<Redecode, String> {
    let norm: Vec<String> = values.iter().map(|v| v.trim().to_ascii_uppercase()).collect();
    if norm.len() <= 1 {
        let first = norm.first().map(String::as_str).unwrap_or("");
        return match first {
            "" | "ISO_IR 6" | "ISO 2022 IR 6" | "ISO_IR 100" | "ISO_IR 192" | "ISO_IR 13"
            | "ISO 2022 IR 87" | "ISO 2022 IR 13" | "ISO_IR 101" | "ISO_IR 109" | "ISO_IR 110"
            | "ISO_IR 126" | "ISO_IR 127" | "ISO_IR 138" | "ISO_IR 144" | "ISO_IR 148"
            | "ISO_IR 166" | "GB18030" | "GBK" => Ok(Redecode::None),
            other => Err(describe(other)),
        };
    }
    for ext in &norm[1..] {
        if !matches!(
            ext.as_str(),
            "ISO 2022 IR 87" | "ISO 2022 IR 159" | "ISO 2022 IR 13" | "ISO 2022 IR 6"
        ) {
            return Err(describe(ext));
        }
    }
    match norm[0].as_str() {
        "" | "ISO 2022 IR 6" | "ISO_IR 6" => Ok(Redecode::FromLatin1),
        "ISO 2022 IR 13" => Ok(Redecode::FromShiftJis),
        other => Err(describe(other)),
    }
}

fn describe(term: &str) -> String {
    if term.len() <= 16 && term.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_')
    {
        format!("specific character set '{term}' is not supported")
    } else {
        "specific character set value is not a defined term".into()
    }
}

/// Re-decode one text value (all values of an element joined by `\`, as in the file).
/// `None` if the text could not have come from the plan's decoding (left as it was).
pub(crate) fn redecode(text: &str, how: Redecode) -> Option<String> {
    let raw: Vec<u8> = match how {
        Redecode::None => return Some(text.to_string()),
        Redecode::FromLatin1 => {
            text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<_>>()?
        }
        Redecode::FromShiftJis => {
            let (b, _, bad) = SHIFT_JIS.encode(text);
            if bad {
                return None;
            }
            b.into_owned()
        }
    };
    Some(iso2022(&raw))
}

/// ISO 2022 (DICOM's Japanese code extensions) to text, through EUC-JP, which holds the
/// same three sets.
pub(crate) fn iso2022(raw: &[u8]) -> String {
    #[derive(PartialEq, Clone, Copy)]
    enum G0 {
        Ascii,
        Jis0208,
        Jis0212,
        Kana,
    }
    let mut out = Vec::with_capacity(raw.len() * 2);
    let mut g0 = G0::Ascii;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == 0x1B {
            let rest = &raw[i + 1..];
            let (mode, skip) = if rest.starts_with(b"$B") || rest.starts_with(b"$@") {
                (Some(G0::Jis0208), 3)
            } else if rest.starts_with(b"$(D") {
                (Some(G0::Jis0212), 4)
            } else if rest.starts_with(b"(B") || rest.starts_with(b"(J") {
                (Some(G0::Ascii), 3)
            } else if rest.starts_with(b"(I") {
                (Some(G0::Kana), 3)
            } else if rest.starts_with(b")I") {
                (None, 3) // G1 katakana: GR bytes below decode either way
            } else {
                (None, 1) // unknown escape: drop ESC alone
            };
            if let Some(m) = mode {
                g0 = m;
            }
            i += skip;
            continue;
        }
        let pair = i + 1 < raw.len() && (0x21..=0x7E).contains(&raw[i + 1]);
        match (g0, b) {
            // Control characters return G0 to ASCII (PS3.5 6.1.2.5.3).
            (_, b'\r' | b'\n' | 0x0C | b'\t') => {
                g0 = G0::Ascii;
                out.push(b);
            }
            (_, 0xA1..=0xDF) => out.extend([0x8E, b]),
            (G0::Jis0208, 0x21..=0x7E) if pair => {
                out.extend([b | 0x80, raw[i + 1] | 0x80]);
                i += 1;
            }
            (G0::Jis0212, 0x21..=0x7E) if pair => {
                out.extend([0x8F, b | 0x80, raw[i + 1] | 0x80]);
                i += 1;
            }
            (G0::Kana, 0x21..=0x5F) => out.extend([0x8E, b | 0x80]),
            _ => out.push(b),
        }
        i += 1;
    }
    EUC_JP.decode_without_bom_handling(&out).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_dicom_japanese_examples() {
        // PS3.5 H.3.1: Yamada^Tarou=山田^太郎=やまだ^たろう
        let raw =
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        assert_eq!(iso2022(raw), "Yamada^Tarou=山田^太郎=やまだ^たろう");
        // H.3.2 with JIS X 0201 katakana in GR.
        let raw = b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J";
        assert_eq!(iso2022(raw), "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎");
        let latin1: String = raw.iter().map(|&b| b as char).collect();
        assert_eq!(redecode(&latin1, Redecode::FromLatin1).unwrap(), "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎");
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&[]), Ok(Redecode::None));
        assert_eq!(plan(&["ISO_IR 192".into()]), Ok(Redecode::None));
        assert_eq!(plan(&["".into(), "ISO 2022 IR 87".into()]), Ok(Redecode::FromLatin1));
        assert_eq!(
            plan(&["ISO 2022 IR 13".into(), "ISO 2022 IR 87".into()]),
            Ok(Redecode::FromShiftJis)
        );
        assert!(plan(&["ISO_IR 999".into()]).is_err());
        assert!(plan(&["".into(), "ISO 2022 IR 149".into()]).is_err());
    }
}
