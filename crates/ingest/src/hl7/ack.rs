//! The ACK/NAK we send back: MSA and ERR segments, in the request's character set and
//! delimiters, echoing only its header fields.

use super::charset::Charset;
use super::delimiters::Delimiters;
use super::message::{Location, Message};
use std::fmt;

/// MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckCode {
    /// AA: stored; do not send again.
    Accept,
    /// AE: not stored; the sender may retry (later, or after correcting the message).
    Error,
    /// AR: never acceptable as sent.
    Reject,
}

impl AckCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// HL7 table 0357 (message error condition codes) that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hl7ErrorCode {
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
pub(crate) struct Nak {
    pub code: AckCode,
    pub location: Option<Location>,
    pub error: Hl7ErrorCode,
    /// Goes to MSA-3 and logs: positions and fixed words only.
    pub text: String,
}

/// What a reply needs from the request's MSH, kept raw (escaped as sent) to be echoed.
#[derive(Clone)]
pub(crate) struct ReplyHeader {
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
    pub(crate) fn from_message(m: &Message) -> ReplyHeader {
        let msh = m.msh();
        let trigger = msh.get(9, 0, 2, 1);
        let processing = msh.get(11, 0, 1, 1);
        ReplyHeader {
            delims: *m.delimiters(),
            charset: m.charset(),
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
    pub(crate) fn salvage(bytes: &[u8]) -> ReplyHeader {
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

    /// The ACK message (not framed), encoded in the request's charset. `now` is an HL7 TS,
    /// `ack_id` our new MSH-10.
    pub(crate) fn ack(&self, nak: Option<&Nak>, ack_id: &str, now: &str) -> Vec<u8> {
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
    use crate::hl7::message::decode;
    use encoding_rs::SHIFT_JIS;

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
}
