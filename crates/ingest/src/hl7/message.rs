//! HL7 v2 message text: character set (MSH-18/MSH-20), delimiters (MSH-1/MSH-2), segments,
//! fields, repetitions, components, subcomponents and escape sequences; and the ACK/NAK we
//! send back, in the request's character set and delimiters.
//!
//! Bytes are decoded as a whole before anything is split: in Shift_JIS a trail byte can be
//! `|`, `\` or `^`, and in ISO-2022-JP any kanji byte can be a delimiter.

use super::MAX_MESSAGE_BYTES;
use encoding_rs::{ISO_2022_JP, SHIFT_JIS};
use std::fmt;

/// Character sets we accept (MSH-18, with MSH-20 for the JIS variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
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
    pub fn from_msh(msh18: &str, repetition: char, msh20: &str) -> Option<Charset> {
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
    pub fn decode(self, bytes: &[u8]) -> Option<String> {
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
    pub fn encode(self, text: &str) -> Vec<u8> {
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

/// A segment/field position for errors and ERR-2: `PID-5`, or `OBR` for a whole segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: &'static str,
    /// 0 = the segment as a whole.
    pub field: u16,
}

impl Location {
    pub const fn new(segment: &'static str, field: u16) -> Location {
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
pub enum ParseError {
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
    pub fn nak(&self) -> Nak {
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

/// Delimiters from MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' }
    }
}

impl Delimiters {
    /// From the MSH segment line (`MSH|^~\&|...`).
    pub fn from_msh(line: &str) -> Result<Delimiters, ParseError> {
        let rest = line.strip_prefix("MSH").ok_or(ParseError::NoMsh)?;
        let mut chars = rest.chars();
        let field = chars
            .next()
            .filter(|c| usable(*c))
            .ok_or(ParseError::Delimiters(Location::new("MSH", 1)))?;
        let msh2: Vec<char> = chars.take_while(|c| *c != field).collect();
        let bad = ParseError::Delimiters(Location::new("MSH", 2));
        // Four characters; a fifth (truncation, v2.7) is allowed and not used.
        if !(4..=5).contains(&msh2.len()) || !msh2.iter().all(|c| usable(*c)) {
            return Err(bad);
        }
        let d = Delimiters {
            field,
            component: msh2[0],
            repetition: msh2[1],
            escape: msh2[2],
            subcomponent: msh2[3],
        };
        let all = [d.field, d.component, d.repetition, d.escape, d.subcomponent];
        if all.iter().enumerate().any(|(i, c)| all[i + 1..].contains(c)) {
            return Err(bad);
        }
        Ok(d)
    }

    fn encoding_characters(&self) -> String {
        [self.component, self.repetition, self.escape, self.subcomponent].iter().collect()
    }

    /// Escape text for a field (our own NAK texts).
    pub fn escape(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            let code = if c == self.field {
                'F'
            } else if c == self.component {
                'S'
            } else if c == self.repetition {
                'R'
            } else if c == self.escape {
                'E'
            } else if c == self.subcomponent {
                'T'
            } else {
                out.push(c);
                continue;
            };
            out.push(self.escape);
            out.push(code);
            out.push(self.escape);
        }
        out
    }

    /// Replace escape sequences. Unknown or malformed ones stay as written rather than
    /// losing text; formatting commands other than line breaks are dropped.
    pub fn unescape(&self, raw: &str, charset: Charset) -> String {
        if !raw.contains(self.escape) {
            return raw.to_string();
        }
        let esc_len = self.escape.len_utf8();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(self.escape) {
            out.push_str(&rest[..i]);
            let after = &rest[i + esc_len..];
            let Some(j) = after.find(self.escape) else {
                // Unterminated: keep literally.
                out.push_str(&rest[i..]);
                return out;
            };
            let seq = &after[..j];
            match self.translate(seq, charset) {
                Some(s) => out.push_str(&s),
                None => {
                    out.push(self.escape);
                    out.push_str(seq);
                    out.push(self.escape);
                }
            }
            rest = &after[j + esc_len..];
        }
        out.push_str(rest);
        out
    }

    fn translate(&self, seq: &str, charset: Charset) -> Option<String> {
        let one = |c: char| Some(c.to_string());
        match seq {
            "F" => one(self.field),
            "S" => one(self.component),
            "T" => one(self.subcomponent),
            "R" => one(self.repetition),
            "E" => one(self.escape),
            // Highlight on/off: no meaning in plain text.
            "H" | "N" => Some(String::new()),
            ".br" => Some("\n".into()),
            s if s.starts_with(".sp") => Some("\n".into()),
            s if [".fi", ".nf", ".ce", ".in", ".ti", ".sk"].iter().any(|p| s.starts_with(p)) => {
                Some(String::new())
            }
            s if s.starts_with('X') => {
                let hex = &s[1..];
                if hex.is_empty() || hex.len() % 2 != 0 {
                    return None;
                }
                let bytes = hex::decode(hex).ok()?;
                charset.decode(&bytes)
            }
            // Character-set switches: the text is already decoded as a whole.
            s if s.starts_with('C') || s.starts_with('M') => Some(String::new()),
            _ => None,
        }
    }
}

fn usable(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

/// One segment: raw (still escaped) fields. `field(0)` is the segment id; for MSH,
/// `field(1)` is the field separator and `field(2)` the encoding characters, so that field
/// numbers are the standard's.
#[derive(Clone)]
pub struct Segment {
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
    pub fn id(&self) -> &str {
        &self.fields[0]
    }

    /// Raw field text (empty when absent).
    pub fn raw(&self, field: usize) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }

    fn splittable(&self, field: usize) -> bool {
        !(self.id() == "MSH" && field <= 2)
    }

    /// Raw repetitions of a field (one empty repetition when absent).
    pub fn repetitions(&self, field: usize) -> Vec<&str> {
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
    pub fn get(&self, field: usize, rep: usize, comp: usize, sub: usize) -> String {
        let c = self.raw_component(field, rep, comp);
        let s = c.split(self.delims.subcomponent).nth(sub.saturating_sub(1)).unwrap_or("");
        self.delims.unescape(s, self.charset)
    }

    /// Unescaped component with its subcomponents joined by `joiner`.
    pub fn component(&self, field: usize, rep: usize, comp: usize, joiner: &str) -> String {
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
    pub fn repetition_text(&self, field: usize, rep: usize) -> String {
        let reps = self.repetitions(field);
        reps.get(rep).map(|r| self.delims.unescape(r, self.charset)).unwrap_or_default()
    }
}

/// A parsed message. Holds personal data: `Debug` shows segment ids only.
#[derive(Clone)]
pub struct Message {
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
pub fn decode(bytes: &[u8]) -> Result<Message, ParseError> {
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
    pub fn parse(text: &str, charset: Charset) -> Result<Message, ParseError> {
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

    pub fn charset(&self) -> Charset {
        self.charset
    }

    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    pub fn msh(&self) -> &Segment {
        &self.segments[0]
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id() == id)
    }
}

/// MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AA: stored; do not send again.
    Accept,
    /// AE: not stored; the sender may retry (later, or after correcting the message).
    Error,
    /// AR: never acceptable as sent.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 table 0357 (message error condition codes) that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hl7ErrorCode {
    SegmentSequence,
    RequiredFieldMissing,
    DataType,
    TableValue,
    UnsupportedMessageType,
    UnsupportedEventCode,
    UnsupportedProcessingId,
    InternalError,
}

impl Hl7ErrorCode {
    fn code_and_text(self) -> (u16, &'static str) {
        match self {
            Hl7ErrorCode::SegmentSequence => (100, "Segment sequence error"),
            Hl7ErrorCode::RequiredFieldMissing => (101, "Required field missing"),
            Hl7ErrorCode::DataType => (102, "Data type error"),
            Hl7ErrorCode::TableValue => (103, "Table value not found"),
            Hl7ErrorCode::UnsupportedMessageType => (200, "Unsupported message type"),
            Hl7ErrorCode::UnsupportedEventCode => (201, "Unsupported event code"),
            Hl7ErrorCode::UnsupportedProcessingId => (202, "Unsupported processing id"),
            Hl7ErrorCode::InternalError => (207, "Application internal error"),
        }
    }
}

/// A negative acknowledgement: code, position, table-0357 code and a value-free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nak {
    pub code: AckCode,
    pub location: Option<Location>,
    pub error: Hl7ErrorCode,
    /// Goes to MSA-3 and logs: positions and fixed words only.
    pub text: String,
}

/// What a reply needs from the request's MSH, kept raw (escaped as sent) to be echoed.
#[derive(Clone)]
pub struct ReplyHeader {
    delims: Delimiters,
    charset: Charset,
    sending_app: String,
    sending_facility: String,
    receiving_facility: String,
    trigger: String,
    control_id: String,
    processing_id: String,
    msh18: String,
    msh20: String,
}

impl fmt::Debug for ReplyHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyHeader {{ charset: {} }}", self.charset)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ReplyHeader {
    pub fn from_message(m: &Message) -> ReplyHeader {
        let msh = m.msh();
        let trigger = msh.get(9, 0, 2, 1);
        let processing = msh.get(11, 0, 1, 1);
        ReplyHeader {
            delims: m.delims,
            charset: m.charset,
            sending_app: msh.raw(3).into(),
            sending_facility: msh.raw(4).into(),
            receiving_facility: msh.raw(6).into(),
            trigger: if is_token(&trigger) { trigger } else { "R01".into() },
            control_id: msh.repetitions(10)[0].into(),
            processing_id: if matches!(processing.as_str(), "P" | "D" | "T") {
                processing
            } else {
                "P".into()
            },
            msh18: msh.raw(18).into(),
            msh20: msh.raw(20).into(),
        }
    }

    /// Best effort for a message that could not be decoded or parsed: delimiters if
    /// readable, printable-ASCII fields only, reply in ASCII.
    pub fn salvage(bytes: &[u8]) -> ReplyHeader {
        let start = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n' | 0xEF | 0xBB | 0xBF));
        let body = &bytes[start.unwrap_or(bytes.len())..];
        let end = body.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(body.len());
        let line = String::from_utf8_lossy(&body[..end]);
        let delims = Delimiters::from_msh(&line).unwrap_or_default();
        let parts: Vec<&str> = line.split(delims.field).collect();
        let ascii = |n: usize| -> String {
            let v = parts.get(n - 1).copied().unwrap_or("");
            if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                v.to_string()
            } else {
                String::new()
            }
        };
        let comp = |n: usize, c: usize| -> String {
            ascii(n).split(delims.component).nth(c - 1).unwrap_or("").to_string()
        };
        let trigger = comp(9, 2);
        let processing = comp(11, 1);
        let control = ascii(10);
        ReplyHeader {
            delims,
            charset: Charset::Ascii,
            sending_app: ascii(3),
            sending_facility: ascii(4),
            receiving_facility: ascii(6),
            trigger: if is_token(&trigger) { trigger } else { "R01".into() },
            control_id: control.split(delims.repetition).next().unwrap_or("").into(),
            processing_id: if matches!(processing.as_str(), "P" | "D" | "T") {
                processing
            } else {
                "P".into()
            },
            msh18: String::new(),
            msh20: String::new(),
        }
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The ACK message (not framed), encoded in the request's charset. `now` is an HL7 TS,
    /// `ack_id` our new MSH-10.
    pub fn ack(&self, nak: Option<&Nak>, ack_id: &str, now: &str) -> Vec<u8> {
        let d = &self.delims;
        let (f, c) = (d.field.to_string(), d.component);
        let message_type = format!("ACK{c}{}{c}ACK", self.trigger);
        let encoding_characters = d.encoding_characters();
        let mut msh: Vec<&str> = vec![
            "MSH",
            &encoding_characters,
            "FGW",
            &self.receiving_facility,
            &self.sending_app,
            &self.sending_facility,
            now,
            "",
            &message_type,
            ack_id,
            &self.processing_id,
            "2.5",
            "",
            "",
            "",
            "",
            "",
            &self.msh18,
            "",
            &self.msh20,
        ];
        while msh.last() == Some(&"") {
            msh.pop();
        }
        let mut out = msh.join(&f);
        out.push('\r');
        let code = nak.map_or(AckCode::Accept, |n| n.code);
        out.push_str(&format!("MSA{f}{}{f}{}", code.as_str(), self.control_id));
        if let Some(n) = nak {
            out.push_str(&format!("{f}{}", d.escape(&n.text)));
        }
        out.push('\r');
        if let Some(n) = nak {
            let location = n
                .location
                .map(|l| {
                    if l.field == 0 {
                        format!("{}{c}1", l.segment)
                    } else {
                        format!("{}{c}1{c}{}", l.segment, l.field)
                    }
                })
                .unwrap_or_default();
            let (num, text) = n.error.code_and_text();
            out.push_str(&format!("ERR{f}{f}{location}{f}{num}{c}{text}{c}HL70357{f}E\r"));
        }
        self.charset.encode(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        decode(s.as_bytes()).unwrap()
    }

    #[test]
    fn escapes() {
        let d = Delimiters::default();
        let u = |s: &str| d.unescape(s, Charset::Utf8);
        assert_eq!(u(r"a\F\b\S\c\T\d\R\e\E\f"), "a|b^c&d~e\\f");
        assert_eq!(u(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(u(r"cr\X0D\lf\X0A\"), "cr\rlf\n");
        assert_eq!(u(r"\XE8A1A8\"), "表");
        assert_eq!(u(r"\H\bold\N\ \.sp2\x"), "bold \nx");
        // Malformed or unknown: kept as written.
        assert_eq!(u(r"\X0\ \Zfoo\ tail\"), r"\X0\ \Zfoo\ tail\");
        assert_eq!(u("plain"), "plain");
        assert_eq!(d.escape("a|b^c~d\\e&f"), r"a\F\b\S\c\R\d\E\e\T\f");
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
    fn ack_echoes_header_in_the_request_charset() {
        let text = "MSH|^~\\&|RIS|内視鏡センター|FGW|HOSP|20261125||ORU^R01|MSG0001|P|2.5||||||SHIFT_JIS\rPID|1";
        let (bytes, _, _) = SHIFT_JIS.encode(text);
        let h = ReplyHeader::from_message(&decode(&bytes).unwrap());
        let ack = h.ack(None, "A1", "20261125120000");
        let (back, _, _) = SHIFT_JIS.decode(&ack);
        assert_eq!(
            back,
            "MSH|^~\\&|FGW|HOSP|RIS|内視鏡センター|20261125120000||ACK^R01^ACK|A1|P|2.5||||||SHIFT_JIS\r\
             MSA|AA|MSG0001\r"
        );
        let nak = Nak {
            code: AckCode::Error,
            location: Some(Location::new("PID", 5)),
            error: Hl7ErrorCode::RequiredFieldMissing,
            text: "PID-5: a^b".into(),
        };
        let ack = String::from_utf8(Charset::Utf8.encode(&String::from_utf8_lossy(&h.ack(
            Some(&nak),
            "A2",
            "20261125120000",
        ))))
        .unwrap();
        assert!(ack.contains("\rMSA|AE|MSG0001|PID-5: a\\S\\b\r"), "{ack}");
        assert!(ack.ends_with("ERR||PID^1^5|101^Required field missing^HL70357|E\r"), "{ack}");
    }

    #[test]
    fn salvaged_header_keeps_only_ascii_fields() {
        let h = ReplyHeader::salvage(
            b"MSH|^~\\&|RIS|\x95\x5c|FGW|HOSP|2026||ADT^A01|X9|P|2.5||||||LATIN",
        );
        let ack = String::from_utf8(h.ack(None, "A1", "2026")).unwrap();
        assert!(ack.starts_with("MSH|^~\\&|FGW|HOSP|RIS||2026||ACK^A01^ACK|A1|P|2.5\r"), "{ack}");
        assert!(ack.contains("MSA|AA|X9"));
        let h = ReplyHeader::salvage(b"garbage");
        assert!(String::from_utf8(h.ack(None, "A1", "2026")).unwrap().contains("MSA|AA|\r"));
    }

    #[test]
    fn debug_shows_no_values() {
        let m = parse("MSH|^~\\&|A|B|C|D|2026||ORU^R01|C1|P|2.5\rPID|1||SECRETID||SECRETNAME");
        let s = format!("{m:?} {:?}", m.segment("PID").unwrap());
        assert!(!s.contains("SECRET"), "{s}");
    }
}
