//! Text encoding of export files: detected, never assumed (the spec allows CP932 and UTF-8).

use encoding_rs::{DecoderResult, SHIFT_JIS};
use serde::{Deserialize, Serialize};
use std::fmt;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The encoding of an export text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextEncoding {
    /// UTF-8 starting with a byte order mark (dropped when decoding).
    Utf8Bom,
    /// UTF-8 without a byte order mark.
    Utf8,
    /// Windows-31J. encoding_rs's `SHIFT_JIS` is the WHATWG decoder, which is CP932
    /// (NEC and IBM extensions included, e.g. 髙 and 﨑).
    Cp932,
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextEncoding::Utf8Bom => "UTF-8 (BOM)",
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Cp932 => "CP932",
        })
    }
}

/// UTF-8 with BOM, else valid UTF-8, else CP932. Japanese CP932 text is practically never
/// valid UTF-8, while pure ASCII reads the same either way.
pub fn detect(bytes: &[u8]) -> TextEncoding {
    if bytes.starts_with(BOM) {
        TextEncoding::Utf8Bom
    } else if std::str::from_utf8(bytes).is_ok() {
        TextEncoding::Utf8
    } else {
        TextEncoding::Cp932
    }
}

/// Decode `bytes` as `enc` without replacement characters. A leading UTF-8 BOM is stripped
/// whatever `enc` says (reports may carry one even next to a CP932 table).
/// `Err(line)` gives the 1-based line of the first byte that does not decode.
pub fn decode(bytes: &[u8], enc: TextEncoding) -> Result<String, u64> {
    if let Some(rest) = bytes.strip_prefix(BOM) {
        return utf8(rest).map_err(|pos| line_of(bytes, pos + BOM.len()));
    }
    match enc {
        TextEncoding::Utf8Bom | TextEncoding::Utf8 => utf8(bytes).map_err(|p| line_of(bytes, p)),
        TextEncoding::Cp932 => cp932(bytes).map_err(|p| line_of(bytes, p)),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, usize> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| e.valid_up_to())
}

/// CP932 decode; `Err` is the byte offset of the first malformed sequence.
fn cp932(bytes: &[u8]) -> Result<String, usize> {
    let mut decoder = SHIFT_JIS.new_decoder_without_bom_handling();
    let cap = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut out = String::with_capacity(cap);
    let mut pos = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[pos..], &mut out, true);
        pos += read;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => out.reserve(bytes.len() - pos + 16),
            DecoderResult::Malformed(bad, pending) => {
                // `read` includes the bad bytes and `pending` bytes consumed after them.
                let start = pos - pending as usize - bad as usize;
                return Err(start);
            }
        }
    }
}

fn line_of(bytes: &[u8], pos: usize) -> u64 {
    let pos = pos.min(bytes.len());
    1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sjis(s: &str) -> Vec<u8> {
        let (b, _, unmappable) = SHIFT_JIS.encode(s);
        assert!(!unmappable);
        b.into_owned()
    }

    #[test]
    fn detects() {
        assert_eq!(detect(b"\xEF\xBB\xBFa,b"), TextEncoding::Utf8Bom);
        assert_eq!(detect("検査ID".as_bytes()), TextEncoding::Utf8);
        assert_eq!(detect(b"plain"), TextEncoding::Utf8);
        assert_eq!(detect(&sjis("検査ID,髙橋,﨑,ﾔﾏﾀﾞ")), TextEncoding::Cp932);
    }

    #[test]
    fn decodes_cp932_extensions() {
        let s = "髙橋 﨑 齋藤 渡邊 ﾔﾏﾀﾞ ０１２３ Ⅱc ‐";
        assert_eq!(decode(&sjis(s), TextEncoding::Cp932).unwrap(), s);
    }

    #[test]
    fn strips_bom_and_reports_bad_line() {
        assert_eq!(decode(b"\xEF\xBB\xBFabc", TextEncoding::Cp932).unwrap(), "abc");
        let mut b = sjis("一行目\r\n二行目\r\n");
        b.extend_from_slice(b"x\x81\x20y"); // 0x81 lead byte + invalid trail
        assert_eq!(decode(&b, TextEncoding::Cp932), Err(3));
        assert_eq!(decode(b"a\n\xFF", TextEncoding::Utf8), Err(2));
        assert_eq!(decode(b"a\xFF", TextEncoding::Cp932), Err(1));
    }
}
