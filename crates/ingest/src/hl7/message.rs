//! HL7 v2 message text: bytes decoded in the declared character set ([`super::charset`]),
//! then segments, fields, repetitions, components and subcomponents, unescaped on access
//! ([`super::delimiters`]).
//!
//! Bytes are decoded as a whole before anything is split: in Shift_JIS a trail byte can be
//! `|`, `\` or `^`, and in ISO-2022-JP any kanji byte can be a delimiter.

use super::ack::{AckCode, Hl7ErrorCode, Nak};
use super::charset::Charset;
use super::delimiters::Delimiters;
use super::MAX_MESSAGE_BYTES;
use std::fmt;

/// A segment/field position for errors and ERR-2: `PID-5`, or `OBR` for a whole segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub segment: &'static str,
    /// 0 = the segment as a whole.
    pub field: u16,
}

impl Location {
    pub(crate) const fn new(segment: &'static str, field: u16) -> Location {
        Location { segment, field }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == 0 {
            f.write_str(self.segment)
        } else {
            write!(f, "{}-{}", self.segment, self.field)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("message too large ({size} bytes; limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("MSH: the message does not start with an MSH segment")]
    NoMsh,
    #[error("{0}: invalid delimiter definition")]
    Delimiters(Location),
    #[error("MSH-18: unsupported character set")]
    UnsupportedCharset,
    #[error("MSH-18: message bytes are not valid {0}")]
    Undecodable(Charset),
    /// `index` is the 1-based segment number (MSH = 1).
    #[error("segment {index}: {what}")]
    Segment { index: usize, what: &'static str },
}

impl ParseError {
    /// Every parse failure is a reject: resending the same bytes cannot succeed.
    pub(crate) fn nak(&self) -> Nak {
        let (location, error) = match self {
            ParseError::TooLarge { .. } => (None, Hl7ErrorCode::InternalError),
            ParseError::NoMsh => (Some(Location::new("MSH", 0)), Hl7ErrorCode::SegmentSequence),
            ParseError::Delimiters(l) => (Some(*l), Hl7ErrorCode::DataType),
            ParseError::UnsupportedCharset | ParseError::Undecodable(_) => {
                (Some(Location::new("MSH", 18)), Hl7ErrorCode::TableValue)
            }
            ParseError::Segment { .. } => (None, Hl7ErrorCode::SegmentSequence),
        };
        Nak { code: AckCode::Reject, location, error, text: self.to_string() }
    }
}

/// One segment: raw (still escaped) fields. `field(0)` is the segment id; for MSH,
/// `field(1)` is the field separator and `field(2)` the encoding characters, so that field
/// numbers are the standard's.
#[derive(Clone)]
pub(crate) struct Segment {
    fields: Vec<String>,
    delims: Delimiters,
    charset: Charset,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are personal data: id and field count only.
        write!(f, "Segment {{ id: {}, fields: {} }}", self.id(), self.fields.len() - 1)
    }
}

impl Segment {
    pub(crate) fn id(&self) -> &str {
        &self.fields[0]
    }

    /// Raw field text (empty when absent).
    pub(crate) fn raw(&self, field: usize) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }

    fn splittable(&self, field: usize) -> bool {
        !(self.id() == "MSH" && field <= 2)
    }

    /// Raw repetitions of a field (one empty repetition when absent).
    pub(crate) fn repetitions(&self, field: usize) -> Vec<&str> {
        let raw = self.raw(field);
        if self.splittable(field) {
            raw.split(self.delims.repetition).collect()
        } else {
            vec![raw]
        }
    }

    fn raw_component(&self, field: usize, rep: usize, comp: usize) -> &str {
        if !self.splittable(field) {
            return if comp == 1 { self.raw(field) } else { "" };
        }
        let reps = self.repetitions(field);
        let Some(r) = reps.get(rep) else { return "" };
        r.split(self.delims.component).nth(comp.saturating_sub(1)).unwrap_or("")
    }

    /// Unescaped value at field `field` (1-based), repetition `rep` (0-based), component
    /// `comp` and subcomponent `sub` (1-based). Empty when absent.
    pub(crate) fn get(&self, field: usize, rep: usize, comp: usize, sub: usize) -> String {
        let c = self.raw_component(field, rep, comp);
        let s = c.split(self.delims.subcomponent).nth(sub.saturating_sub(1)).unwrap_or("");
        self.delims.unescape(s, self.charset)
    }

    /// Unescaped component with its subcomponents joined by `joiner`.
    pub(crate) fn component(&self, field: usize, rep: usize, comp: usize, joiner: &str) -> String {
        let c = self.raw_component(field, rep, comp);
        let parts: Vec<String> = c
            .split(self.delims.subcomponent)
            .map(|s| self.delims.unescape(s, self.charset))
            .filter(|s| !s.trim().is_empty())
            .collect();
        parts.join(joiner)
    }

    /// A whole repetition unescaped, without splitting components: for text values, where a
    /// stray unescaped `^` should not cut the text.
    pub(crate) fn repetition_text(&self, field: usize, rep: usize) -> String {
        let reps = self.repetitions(field);
        reps.get(rep).map(|r| self.delims.unescape(r, self.charset)).unwrap_or_default()
    }
}

/// A parsed message. Holds personal data: `Debug` shows segment ids only.
#[derive(Clone)]
pub(crate) struct Message {
    charset: Charset,
    delims: Delimiters,
    segments: Vec<Segment>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.segments.iter().map(Segment::id).collect();
        write!(f, "Message {{ charset: {}, segments: {:?} }}", self.charset, ids)
    }
}

/// Bytes of one MLLP frame → message: size limit, charset from MSH-18, strict decode, parse.
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge { size: bytes.len(), limit: MAX_MESSAGE_BYTES });
    }
    let (bom, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(b) => (true, b),
        None => (false, bytes),
    };
    let start = body.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(body.len());
    let body = &body[start..];
    if !body.starts_with(b"MSH") {
        return Err(ParseError::NoMsh);
    }
    let msh_end = body.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(body.len());
    let charset = detect_charset(&body[..msh_end])?;
    if bom && charset != Charset::Utf8 {
        return Err(ParseError::Undecodable(charset));
    }
    let text = charset.decode(body).ok_or(ParseError::Undecodable(charset))?;
    Message::parse(&text, charset)
}

/// MSH-18/MSH-20 as read from the MSH bytes decoded in `charset`.
fn declared(msh: &str) -> Result<Option<Charset>, ParseError> {
    let d = Delimiters::from_msh(msh)?;
    let parts: Vec<&str> = msh.split(d.field).collect();
    // parts[0] = "MSH", parts[1] = MSH-2, so MSH-n = parts[n - 1].
    let get = |n: usize| parts.get(n - 1).copied().unwrap_or("");
    Ok(Charset::from_msh(get(18), d.repetition, get(20)))
}

/// The charset whose decoding of the MSH segment declares that same charset. MSH-18 cannot
/// simply be read from the bytes: a Shift_JIS facility name before it may contain `|`.
fn detect_charset(msh: &[u8]) -> Result<Charset, ParseError> {
    for c in [Charset::Ascii, Charset::Utf8, Charset::Cp932, Charset::Iso2022Jp] {
        if let Some(text) = c.decode(msh) {
            if declared(&text)? == Some(c) {
                return Ok(c);
            }
        }
    }
    match declared(&String::from_utf8_lossy(msh))? {
        Some(c) => Err(ParseError::Undecodable(c)),
        None => Err(ParseError::UnsupportedCharset),
    }
}

impl Message {
    /// Parse decoded text. Segments end in `\r`; `\n` and `\r\n` are accepted too.
    pub(crate) fn parse(text: &str, charset: Charset) -> Result<Message, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.split(['\r', '\n']).filter(|l| !l.trim().is_empty());
        let first = lines.next().ok_or(ParseError::NoMsh)?;
        let delims = Delimiters::from_msh(first)?;
        let mut segments = Vec::new();
        for (i, line) in std::iter::once(first).chain(lines).enumerate() {
            let index = i + 1;
            let mut fields: Vec<String> = line.split(delims.field).map(str::to_owned).collect();
            let id = fields[0].as_str();
            let valid_id = id.len() == 3
                && id.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !valid_id {
                return Err(ParseError::Segment { index, what: "invalid segment id" });
            }
            if id == "MSH" {
                if index != 1 {
                    return Err(ParseError::Segment {
                        index,
                        what: "second MSH (batches are not supported)",
                    });
                }
                fields.insert(1, delims.field.to_string());
            }
            segments.push(Segment { fields, delims, charset });
        }
        Ok(Message { charset, delims, segments })
    }

    pub(crate) fn charset(&self) -> Charset {
        self.charset
    }

    pub(crate) fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    pub(crate) fn msh(&self) -> &Segment {
        &self.segments[0]
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub(crate) fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{ISO_2022_JP, SHIFT_JIS};

    fn parse(s: &str) -> Message {
        decode(s.as_bytes()).unwrap()
    }

    #[test]
    fn fields_repetitions_components_subcomponents() {
        let m = parse(
            "MSH|^~\\&|APP|FAC|FGW|HOSP|20261125||ORU^R01^ORU_R01|C1|P|2.5\r\
             PID|1||ID1^^^H^PI~ID2^^^H^MR||family&own^given^^^^^L^I~kana^k^^^^^L^P\n\
             OBX|1|TX|||a\\F\\b~c\r\n",
        );
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.repetitions(3).len(), 2);
        assert_eq!(pid.get(3, 1, 1, 1), "ID2");
        assert_eq!(pid.get(3, 0, 5, 1), "PI");
        assert_eq!(pid.get(5, 0, 1, 1), "family");
        assert_eq!(pid.get(5, 0, 1, 2), "own");
        assert_eq!(pid.component(5, 0, 1, "+"), "family+own");
        assert_eq!(pid.get(5, 1, 8, 1), "P");
        assert_eq!(pid.get(5, 2, 1, 1), "");
        assert_eq!(pid.get(40, 0, 1, 1), "");
        let obx = m.segment("OBX").unwrap();
        assert_eq!(obx.repetition_text(5, 0), "a|b");
        assert_eq!(obx.repetition_text(5, 1), "c");
        let msh = m.msh();
        assert_eq!(msh.raw(1), "|");
        assert_eq!(msh.raw(2), "^~\\&");
        assert_eq!(msh.get(9, 0, 2, 1), "R01");
        assert_eq!(msh.get(10, 0, 1, 1), "C1");
        assert_eq!(m.segments().len(), 3);
    }

    #[test]
    fn non_default_encoding_characters() {
        let m = parse("MSH#!*$@#APP#FAC#FGW#HOSP#20261125##ORU!R01#C1#P#2.5\rPID#1##X$F$Y!Z*W@V");
        let d = m.delimiters();
        assert_eq!(
            (d.field, d.component, d.repetition, d.escape, d.subcomponent),
            ('#', '!', '*', '$', '@')
        );
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.get(3, 0, 1, 1), "X#Y");
        assert_eq!(pid.get(3, 0, 2, 1), "Z");
        assert_eq!(pid.get(3, 1, 1, 1), "W");
        assert_eq!(pid.get(3, 1, 1, 2), "V");
        assert_eq!(m.msh().get(9, 0, 2, 1), "R01");
    }

    #[test]
    fn bad_delimiters_and_segments() {
        let e = |s: &str| decode(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(e("MSH|^~\\|A"), "MSH-2: invalid delimiter definition");
        assert_eq!(e("MSH|^^\\&|A"), "MSH-2: invalid delimiter definition");
        assert_eq!(e("MSHA^~\\&A"), "MSH-1: invalid delimiter definition");
        assert_eq!(e("PID|1"), "MSH: the message does not start with an MSH segment");
        assert_eq!(e("MSH|^~\\&|A\rpid|1"), "segment 2: invalid segment id");
        assert!(e("MSH|^~\\&|A\rMSH|^~\\&|B").starts_with("segment 2: second MSH"));
    }

    fn with_charset(msh18: &str, msh20: &str, body: &str) -> String {
        format!(
            "MSH|^~\\&|APP|FAC|FGW|HOSP|20261125||ORU^R01|C1|P|2.5||||||{msh18}||{msh20}\r{body}"
        )
    }

    #[test]
    fn decodes_each_charset_before_splitting() {
        // ポ is 0x83 0x7C and 表 0x95 0x5C in Shift_JIS: a `|` and a `\` byte.
        let text = with_charset("SHIFT_JIS", "", "OBX|1|TX|||ポリープ表面\\.br\\ソ");
        let (bytes, _, _) = SHIFT_JIS.encode(&text);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.charset(), Charset::Cp932);
        assert_eq!(m.segment("OBX").unwrap().repetition_text(5, 0), "ポリープ表面\nソ");

        // ウ is 0x25 0x26 and 本 0x4B 0x5C in JIS X 0208: `&` and `\` bytes.
        let text = with_charset("~ISO IR87", "ISO 2022-1994", "PID|1||1||カクウ^本");
        let (bytes, _, _) = ISO_2022_JP.encode(&text);
        assert!(bytes.contains(&0x1b));
        let m = decode(&bytes).unwrap();
        assert_eq!(m.charset(), Charset::Iso2022Jp);
        assert_eq!(m.segment("PID").unwrap().get(5, 0, 1, 1), "カクウ");
        assert_eq!(m.segment("PID").unwrap().get(5, 0, 2, 1), "本");

        let text = with_charset("UNICODE UTF-8", "", "PID|1||1||検証^花子");
        assert_eq!(
            decode(text.as_bytes()).unwrap().segment("PID").unwrap().get(5, 0, 2, 1),
            "花子"
        );
    }

    #[test]
    fn charset_in_a_sjis_msh_with_delimiter_bytes_is_found() {
        // The sending facility's ポ has a `|` trail byte before MSH-18.
        let text = "MSH|^~\\&|APP|ポ病院|FGW|HOSP|20261125||ORU^R01|C1|P|2.5||||||SHIFT_JIS\rPID|1";
        let (bytes, _, _) = SHIFT_JIS.encode(text);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.charset(), Charset::Cp932);
        assert_eq!(m.msh().raw(4), "ポ病院");
    }

    #[test]
    fn charset_errors() {
        let e = |b: &[u8]| decode(b).unwrap_err();
        let unknown = with_charset("8859/1", "", "PID|1");
        assert!(matches!(e(unknown.as_bytes()), ParseError::UnsupportedCharset));
        // Declared ASCII (empty), but UTF-8 bytes.
        let undeclared = with_charset("", "", "PID|1||1||検証");
        assert!(matches!(e(undeclared.as_bytes()), ParseError::Undecodable(Charset::Ascii)));
        // Declared UTF-8, but Shift_JIS bytes.
        let declared_utf8 = with_charset("UTF-8", "", "PID|1||1||検証");
        let (sjis, _, _) = SHIFT_JIS.encode(&declared_utf8);
        assert!(matches!(e(&sjis), ParseError::Undecodable(Charset::Utf8)));
        let nak = e(unknown.as_bytes()).nak();
        assert_eq!(nak.code, AckCode::Reject);
        assert_eq!(nak.location, Some(Location::new("MSH", 18)));
    }

    #[test]
    fn size_limit() {
        let mut big = with_charset("", "", "OBX|1|TX|||").into_bytes();
        big.resize(MAX_MESSAGE_BYTES + 1, b'a');
        let e = decode(&big).unwrap_err();
        assert!(matches!(e, ParseError::TooLarge { .. }));
        assert_eq!(e.nak().code, AckCode::Reject);
    }

    #[test]
    fn debug_shows_no_values() {
        let m = parse("MSH|^~\\&|A|B|C|D|2026||ORU^R01|C1|P|2.5\rPID|1||SECRETID||SECRETNAME");
        let s = format!("{m:?} {:?}", m.segment("PID").unwrap());
        assert!(!s.contains("SECRET"), "{s}");
    }
}
