//! The read path: a structural walk of the raw bytes first, then dicom-object.
//!
//! The walk (`fgw_format::dicom_structure`, the one scanner the receiver and the pull use
//! too) checks every element header, length and sequence/item nesting against the bytes
//! actually present, without recursion, so a malformed or deeply nested file is rejected with
//! the offset, tag and what is wrong (never a value), and the parser, whose read recurses per
//! sequence level, only ever sees input whose structure holds. Parser errors are not passed
//! on as text: dicom-rs puts offending values (e.g. an invalid date) into its messages. A
//! parser panic is caught and reported the same way.

use super::DicomError;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use fgw_format::dicom_structure::{self, Defect, ElementTag, Encoding, Limits, StructureError};

/// Deeper nesting than this is refused: real objects stay far below it, and unbounded
/// recursion in the parser would let a small file exhaust the stack.
pub const MAX_DEPTH: usize = dicom_structure::MAX_DEPTH;

const ITEM: Tag = Tag(0xFFFE, 0xE000);

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
    let malformed = |e: StructureError| match e.defect {
        Defect::Empty => DicomError::Empty { file: file.into() },
        Defect::NotPart10 => DicomError::NotPart10 {
            file: file.into(),
            what: "no 'DICM' marker after a 128-byte preamble",
        },
        defect => DicomError::Malformed {
            file: file.into(),
            offset: e.offset,
            tag: e.tag.map_or_else(|| "-".into(), |t| t.to_string()),
            what: defect.to_string(),
        },
    };
    let meta = dicom_structure::file_meta(bytes).map_err(malformed)?;
    let Some(ts) = meta.transfer_syntax else {
        return Err(DicomError::Malformed {
            file: file.into(),
            offset: meta.data_start,
            tag: "-".into(),
            what: "file meta group has no Transfer Syntax UID (0002,0010)".into(),
        });
    };
    let supported = TransferSyntaxRegistry.get(&ts).is_some_and(|t| t.can_decode_dataset());
    // A deflated data set is compressed bytes, not headers: not walked, so not read.
    let encoding = Encoding::of_transfer_syntax(&ts).filter(|_| supported).ok_or_else(|| {
        DicomError::UnsupportedTransferSyntax { file: file.into(), uid: safe_uid(&ts) }
    })?;
    let scanned = dicom_structure::scan_data_set_typed(
        bytes,
        meta.data_start,
        encoding,
        Limits::OBJECT,
        &dictionary_vr,
    )
    .map_err(malformed)?;
    // Only where the output is written as the input was: little endian (a deflated data set
    // never gets here).
    let plain = encoding != Encoding::ExplicitVrBigEndian;
    Ok(scanned.pixel_data.filter(|p| p.end == bytes.len() && plain).map(|p| TailPixels {
        start: p.start,
        value: p.value,
        encapsulated: p.encapsulated,
    }))
}

/// In implicit VR, the VR dicom-rs reads a tag with (sequence or not, size of binary
/// values): its decoder takes the standard dictionary's VR (relaxed), so the walk must too.
fn dictionary_vr(tag: ElementTag) -> Option<[u8; 2]> {
    StandardDataDictionary.by_tag(Tag(tag.group, tag.element)).map(|e| e.vr().relaxed().to_bytes())
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
