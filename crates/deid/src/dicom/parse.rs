//! The read path: a structural walk of the raw bytes first, then dicom-object.
//!
//! The walk checks every element header, length and sequence/item nesting against the bytes
//! actually present, so a malformed file is rejected with the offset, tag and what is wrong
//! (never a value), and the parser only ever sees input whose structure holds. Parser errors
//! are not passed on as text: dicom-rs puts offending values (e.g. an invalid date) into its
//! messages. A parser panic is caught and reported the same way.

use super::DicomError;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags::{PIXEL_DATA, TRANSFER_SYNTAX_UID};
// Explicit VR Big Endian is retired, but files written with it are still read.
#[allow(deprecated)]
use dicom_dictionary_std::uids::{
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::cell::Cell;

/// Deeper nesting than this is refused: real objects stay far below it, and unbounded
/// recursion (here or in the parser) would let a small file exhaust the stack.
pub const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = 0xFFFF_FFFF;
// Item and delimiters (PS3.5 7.5): not data elements, so not in the data dictionary.
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQ_END: Tag = Tag(0xFFFE, 0xE0DD);

/// VRs whose explicit header has 2 reserved bytes and a 32-bit length.
const LONG_VRS: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// Pixel Data (7FE0,0010) as the last top-level element of a little-endian file. The header
/// path never parses it: the object is read up to `start`, and the element's bytes are taken
/// from the input as they are (by the pixel stage, and into the output when the stage leaves
/// the pixels unchanged), instead of being copied into the object and out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailPixels {
    /// Where the element's header starts; the element runs to the end of the input.
    pub start: usize,
    /// Where its value starts.
    pub value: usize,
    /// Undefined length: an offset table item and fragments, then a sequence delimiter.
    pub encapsulated: bool,
}

impl TailPixels {
    /// The fragments of encapsulated pixel data (the offset table item skipped). The
    /// structural walk has checked the items, so this only splits them.
    pub fn fragments<'a>(&self, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut pos = self.value;
        let mut first = true;
        while pos + 8 <= bytes.len() {
            let tag = Tag(
                u16::from_le_bytes([bytes[pos], bytes[pos + 1]]),
                u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]),
            );
            if tag != ITEM {
                break;
            }
            let len = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            let Some(v) = bytes.get(pos + 8..pos + 8 + len) else { break };
            if !std::mem::take(&mut first) {
                out.push(v);
            }
            pos += 8 + len;
        }
        out
    }
}

/// Read a Part-10 file (128-byte preamble + `DICM`, or `DICM` at the start). With
/// [`TailPixels`], the object holds everything but that element.
pub(crate) fn read(
    file: &str,
    bytes: &[u8],
) -> Result<(DefaultDicomObject, Option<TailPixels>), DicomError> {
    let tail = check_structure(file, bytes)?;
    let bytes = &bytes[..tail.map_or(bytes.len(), |t| t.start)];
    let body =
        if bytes.len() >= 132 && &bytes[128..132] == b"DICM" { &bytes[128..] } else { bytes };
    let parsed = std::panic::catch_unwind(|| {
        OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Never)
            .from_reader(body)
    });
    match parsed {
        Ok(Ok(obj)) => Ok((obj, tail)),
        Ok(Err(_)) => {
            Err(DicomError::ParserRejected { file: file.into(), what: "returned an error" })
        }
        Err(_) => Err(DicomError::ParserRejected { file: file.into(), what: "panicked" }),
    }
}

/// The structural walk alone (also what the fuzz target exercises first); finds
/// [`TailPixels`].
pub fn check_structure(file: &str, bytes: &[u8]) -> Result<Option<TailPixels>, DicomError> {
    if bytes.is_empty() {
        return Err(DicomError::Empty { file: file.into() });
    }
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Err(DicomError::NotPart10 {
            file: file.into(),
            what: "no 'DICM' marker after a 128-byte preamble",
        });
    };
    let meta = Walker { file, b: bytes, explicit: true, big: false, pixels: Cell::new(None) };
    let (ts, data_start) = meta.meta_group(start)?;
    let Some(ts) = ts else {
        return Err(meta.err(
            start,
            None,
            "file meta group has no Transfer Syntax UID (0002,0010)",
        ));
    };
    #[allow(deprecated)] // EXPLICIT_VR_BIG_ENDIAN: see the import
    let (explicit, big) = match ts.as_str() {
        IMPLICIT_VR_LITTLE_ENDIAN => (false, false),
        EXPLICIT_VR_BIG_ENDIAN => (true, true),
        _ => (true, false),
    };
    let supported = TransferSyntaxRegistry.get(&ts).is_some_and(|t| t.can_decode_dataset());
    if !supported {
        return Err(DicomError::UnsupportedTransferSyntax {
            file: file.into(),
            uid: safe_uid(&ts),
        });
    }
    let w = Walker { file, b: bytes, explicit, big, pixels: Cell::new(None) };
    let end = w.dataset(data_start, bytes.len(), 0, false)?;
    if end != bytes.len() {
        return Err(w.err(end, None, "trailing bytes after the data set"));
    }
    // Only where the output is written as the input was: little endian, no deflated data set.
    let plain = !big && ts != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
    Ok(w.pixels.get().filter(|(_, end)| *end == bytes.len() && plain).map(|(t, _)| t))
}

/// A UID for an error message: shown only if it has the shape of one.
pub(crate) fn safe_uid(s: &str) -> String {
    let s = s.trim_end_matches(['\0', ' ']);
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        s.to_string()
    } else {
        "(not a UID)".to_string()
    }
}

pub(crate) fn tag_str(t: Tag) -> String {
    format!("({:04X},{:04X})", t.group(), t.element())
}

/// Tag, explicit VR (if any), value length, header size.
type Header = (Tag, Option<[u8; 2]>, u32, usize);

struct Walker<'a> {
    file: &'a str,
    b: &'a [u8],
    explicit: bool,
    big: bool,
    /// Top-level OB/OW Pixel Data and where it ends.
    pixels: Cell<Option<(TailPixels, usize)>>,
}

impl Walker<'_> {
    fn err(&self, offset: usize, tag: Option<Tag>, what: impl Into<String>) -> DicomError {
        DicomError::Malformed {
            file: self.file.into(),
            offset,
            tag: tag.map(tag_str).unwrap_or_else(|| "-".into()),
            what: what.into(),
        }
    }

    fn u16(&self, p: usize) -> u16 {
        let a = [self.b[p], self.b[p + 1]];
        if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32(&self, p: usize) -> u32 {
        let a = [self.b[p], self.b[p + 1], self.b[p + 2], self.b[p + 3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    /// Walk group 0002 (always explicit VR little endian); return the transfer syntax and
    /// where the data set starts.
    fn meta_group(&self, mut pos: usize) -> Result<(Option<String>, usize), DicomError> {
        let mut ts = None;
        let mut n = 0;
        while pos + 4 <= self.b.len() && self.u16(pos) == 0x0002 {
            let (tag, vr, len, hdr) = self.header(pos, self.b.len())?;
            if len == UNDEFINED || vr == Some(*b"SQ") {
                return Err(self.err(pos, Some(tag), "file meta element with undefined length"));
            }
            let v = pos + hdr;
            if len as usize > self.b.len() - v {
                return Err(self.err(pos, Some(tag), self.beyond(len, self.b.len() - v)));
            }
            if tag == TRANSFER_SYNTAX_UID {
                let raw = &self.b[v..v + len as usize];
                ts = Some(String::from_utf8_lossy(raw).trim_end_matches(['\0', ' ']).to_string());
            }
            pos = v + len as usize;
            n += 1;
        }
        if n == 0 {
            return Err(self.err(pos, None, "file meta group (0002) missing or truncated"));
        }
        Ok((ts, pos))
    }

    fn beyond(&self, len: u32, left: usize) -> String {
        format!("value length {len} exceeds the {left} bytes left")
    }

    /// Tag, explicit VR (if any), length, header size.
    fn header(&self, pos: usize, end: usize) -> Result<Header, DicomError> {
        if end - pos < 8 {
            return Err(self.err(pos, None, "truncated element header"));
        }
        let tag = Tag(self.u16(pos), self.u16(pos + 2));
        if tag.group() == 0xFFFE || !self.explicit {
            return Ok((tag, None, self.u32(pos + 4), 8));
        }
        let vr = [self.b[pos + 4], self.b[pos + 5]];
        if LONG_VRS.contains(&&vr) {
            if end - pos < 12 {
                return Err(self.err(pos, Some(tag), "truncated element header"));
            }
            Ok((tag, Some(vr), self.u32(pos + 8), 12))
        } else if SHORT_VRS.contains(&&vr) {
            Ok((tag, Some(vr), u32::from(self.u16(pos + 6)), 8))
        } else {
            Err(self.err(pos, Some(tag), "value representation is not a DICOM VR"))
        }
    }

    /// Walk a data set from `pos` to `end`; inside an undefined-length item, until its item
    /// delimiter (returns the position after it).
    fn dataset(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        in_item: bool,
    ) -> Result<usize, DicomError> {
        if depth > MAX_DEPTH {
            return Err(self.err(pos, None, format!("sequences nested deeper than {MAX_DEPTH}")));
        }
        loop {
            if pos == end {
                if in_item {
                    return Err(self.err(pos, None, "item delimiter missing (truncated sequence)"));
                }
                return Ok(pos);
            }
            let (tag, vr, len, hdr) = self.header(pos, end)?;
            if tag == ITEM_END && in_item {
                return Ok(pos + 8);
            }
            if tag.group() == 0xFFFE {
                return Err(self.err(pos, Some(tag), "item or delimiter outside a sequence"));
            }
            let v = pos + hdr;
            let start = pos;
            let top_pixels = depth == 0
                && !in_item
                && tag == PIXEL_DATA
                && vr.is_none_or(|vr| &vr == b"OB" || &vr == b"OW");
            if top_pixels && self.pixels.get().is_some() {
                return Err(self.err(pos, Some(tag), "a second Pixel Data element"));
            }
            let sq = match vr {
                Some(vr) => &vr == b"SQ",
                None => dict_vr(tag) == Some(VR::SQ),
            };
            if len == UNDEFINED {
                pos = if tag == PIXEL_DATA && vr.is_none_or(|vr| &vr == b"OB" || &vr == b"OW") {
                    self.fragments(v, end)?
                } else if vr == Some(*b"UN") {
                    // Undefined-length UN is a sequence encoded implicit VR little endian.
                    let w = Walker {
                        file: self.file,
                        b: self.b,
                        explicit: false,
                        big: false,
                        pixels: Cell::new(None),
                    };
                    w.items(v, end, None, depth + 1)?
                } else if sq || vr.is_none() {
                    self.items(v, end, None, depth + 1)?
                } else {
                    return Err(self.err(
                        pos,
                        Some(tag),
                        "undefined length on a VR that cannot have one",
                    ));
                };
                if top_pixels {
                    let t = TailPixels { start, value: v, encapsulated: true };
                    self.pixels.set(Some((t, pos)));
                }
                continue;
            }
            if len as usize > end - v {
                return Err(self.err(pos, Some(tag), self.beyond(len, end - v)));
            }
            let next = v + len as usize;
            if sq {
                self.items(v, next, Some(next), depth + 1)?;
            }
            if top_pixels {
                self.pixels.set(Some((TailPixels { start, value: v, encapsulated: false }, next)));
            }
            pos = next;
        }
    }

    /// Items of a sequence: up to `defined_end`, or to the sequence delimiter.
    fn items(
        &self,
        mut pos: usize,
        end: usize,
        defined_end: Option<usize>,
        depth: usize,
    ) -> Result<usize, DicomError> {
        loop {
            if defined_end == Some(pos) {
                return Ok(pos);
            }
            if end - pos < 8 {
                return Err(self.err(pos, None, "truncated sequence (no item or delimiter)"));
            }
            let tag = Tag(self.u16(pos), self.u16(pos + 2));
            let len = self.u32(pos + 4);
            if tag == SEQ_END && defined_end.is_none() {
                return Ok(pos + 8);
            }
            if tag != ITEM {
                return Err(self.err(pos, Some(tag), "expected an item in a sequence"));
            }
            let v = pos + 8;
            pos = if len == UNDEFINED {
                self.dataset(v, end, depth, true)?
            } else if len as usize > end - v {
                return Err(self.err(pos, Some(tag), self.beyond(len, end - v)));
            } else {
                self.dataset(v, v + len as usize, depth, false)?
            };
        }
    }

    /// Encapsulated pixel data: defined-length fragments up to the sequence delimiter.
    fn fragments(&self, mut pos: usize, end: usize) -> Result<usize, DicomError> {
        loop {
            if end - pos < 8 {
                return Err(self.err(pos, Some(PIXEL_DATA), "truncated encapsulated pixel data"));
            }
            let tag = Tag(self.u16(pos), self.u16(pos + 2));
            let len = self.u32(pos + 4);
            if tag == SEQ_END {
                return Ok(pos + 8);
            }
            if tag != ITEM || len == UNDEFINED {
                return Err(self.err(
                    pos,
                    Some(PIXEL_DATA),
                    "bad fragment in encapsulated pixel data",
                ));
            }
            if len as usize > end - pos - 8 {
                return Err(self.err(pos, Some(PIXEL_DATA), self.beyond(len, end - pos - 8)));
            }
            pos += 8 + len as usize;
        }
    }
}

/// The dictionary VR of a tag, if it has exactly one.
pub(crate) fn dict_vr(tag: Tag) -> Option<VR> {
    StandardDataDictionary.by_tag(tag).and_then(|e| e.vr().exact())
}
