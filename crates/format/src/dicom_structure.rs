//! A structural check of DICOM data sets on their raw bytes, run before any general-purpose
//! DICOM parser sees them.
//!
//! dicom-object builds nested sequences by recursion, so a small object with thousands of
//! nested sequences overflows the stack of whatever thread parses it, and a stack overflow
//! aborts the whole process (no unwinding to catch). This scanner walks element headers,
//! items and delimiters with an explicit stack, never recursing, and refuses before the parse:
//!
//! - nesting deeper than [`Limits::max_depth`] sequences, more than [`Limits::max_elements`]
//!   headers (elements, items, fragments: each is an allocation in the parsed object);
//! - a value length beyond the bytes present, or beyond its enclosing item or sequence;
//! - unknown VRs, undefined lengths where none can be, items or delimiters out of place,
//!   truncated headers, sequences or items;
//! - a second top-level Pixel Data element.
//!
//! Implicit and Explicit VR Little Endian and Explicit VR Big Endian data sets, defined and
//! undefined lengths, item and sequence delimiters, encapsulated pixel data (fragments). The
//! structure is read the way dicom-rs 0.10 reads it, so that the bounds hold for what the
//! parser will build: an undefined-length element is a sequence in the data set's own
//! encoding (UN included), Pixel Data of undefined length is a fragment sequence, and in
//! implicit VR an element is a sequence when the caller's dictionary says so.
//!
//! Errors name the byte offset, the tag and a fixed reason ([`Defect::code`] for log lines);
//! never a value.

use std::fmt;

/// Sequences nested deeper than this are refused: real objects stay far below it.
pub const MAX_DEPTH: usize = 32;
/// Element, item and fragment headers in one object: a CT with per-frame functional groups
/// has some tens of thousands; each becomes an allocation when parsed, so the count bounds
/// the parser's memory, not only its time.
pub const MAX_ELEMENTS: usize = 500_000;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: ElementTag = ElementTag { group: 0xFFFE, element: 0xE000 };
const ITEM_END: ElementTag = ElementTag { group: 0xFFFE, element: 0xE00D };
const SEQ_END: ElementTag = ElementTag { group: 0xFFFE, element: 0xE0DD };
const PIXEL_DATA: ElementTag = ElementTag { group: 0x7FE0, element: 0x0010 };
const TRANSFER_SYNTAX_UID: ElementTag = ElementTag { group: 0x0002, element: 0x0010 };

/// VRs whose explicit header has 2 reserved bytes and a 32-bit length.
const LONG_VRS: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];
/// VRs whose explicit header has a 16-bit length.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// A data element tag: group and element.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElementTag {
    /// The group number.
    pub group: u16,
    /// The element number.
    pub element: u16,
}

impl fmt::Display for ElementTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.group, self.element)
    }
}

impl fmt::Debug for ElementTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How a data set is encoded (its transfer syntax's VR and byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR Little Endian (`1.2.840.10008.1.2`): VRs come from the dictionary.
    ImplicitVrLittleEndian,
    /// Explicit VR Little Endian and every encapsulated (compressed pixel data) syntax.
    ExplicitVrLittleEndian,
    /// Explicit VR Big Endian (`1.2.840.10008.1.2.2`, retired but still written).
    ExplicitVrBigEndian,
}

/// Transfer syntaxes whose whole data set is deflated: its bytes are not element headers.
const DEFLATED: [&str; 2] = [
    "1.2.840.10008.1.2.1.99", // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.95", // JPIP Referenced Deflate
];

impl Encoding {
    /// The data set encoding of a transfer syntax UID (trailing NUL/space padding ignored);
    /// `None` for deflated data sets, which cannot be scanned as they are. An unknown UID is
    /// taken as Explicit VR Little Endian, as PS3.5 10.1 requires of every syntax but the
    /// default and the big-endian one; whether the parser supports it is the caller's check.
    pub fn of_transfer_syntax(uid: &str) -> Option<Encoding> {
        match uid.trim_end_matches(['\0', ' ']) {
            "1.2.840.10008.1.2" => Some(Encoding::ImplicitVrLittleEndian),
            "1.2.840.10008.1.2.2" => Some(Encoding::ExplicitVrBigEndian),
            u if DEFLATED.contains(&u) => None,
            _ => Some(Encoding::ExplicitVrLittleEndian),
        }
    }

    fn explicit(self) -> bool {
        self != Encoding::ImplicitVrLittleEndian
    }

    fn big(self) -> bool {
        self == Encoding::ExplicitVrBigEndian
    }
}

/// The bounds a data set must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sequences nested in one another (the root data set is depth 0, items of its
    /// sequences depth 1, ...).
    pub max_depth: usize,
    /// Element, item and fragment headers in all.
    pub max_elements: usize,
}

impl Limits {
    /// For stored objects: [`MAX_DEPTH`], [`MAX_ELEMENTS`].
    pub const OBJECT: Limits = Limits { max_depth: MAX_DEPTH, max_elements: MAX_ELEMENTS };
    /// For query identifiers (C-FIND responses): a few attributes, the odd sequence.
    pub const IDENTIFIER: Limits = Limits { max_depth: 8, max_elements: 10_000 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::OBJECT
    }
}

/// What is wrong with the structure. Fixed reasons and sizes; never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// Neither a 128-byte preamble with `DICM` nor `DICM` at the start.
    #[error("no 'DICM' marker after a 128-byte preamble")]
    NotPart10,
    /// No group 0002 element after `DICM`.
    #[error("file meta group (0002) missing or truncated")]
    NoFileMeta,
    /// A file meta element with undefined length or a sequence.
    #[error("file meta element with undefined length")]
    MetaUndefinedLength,
    /// Fewer bytes left than an element header needs.
    #[error("truncated element header")]
    TruncatedHeader,
    /// An explicit VR that is not one of PS3.5's.
    #[error("value representation is not a DICOM VR")]
    UnknownVr,
    /// A value longer than what is left of the input or of its enclosing item/sequence.
    #[error("value length {len} exceeds the {left} bytes left")]
    LengthBeyondEnd {
        /// The declared length.
        len: u32,
        /// The bytes left where it starts.
        left: usize,
    },
    /// Undefined length on a VR that cannot have one.
    #[error("undefined length on a VR that cannot have one")]
    UndefinedLength,
    /// An item or delimiter where a data element was due.
    #[error("item or delimiter outside a sequence")]
    ItemOutsideSequence,
    /// Something other than an item or delimiter inside a sequence.
    #[error("expected an item in a sequence")]
    ExpectedItem,
    /// The input ends inside a sequence.
    #[error("truncated sequence (no item or delimiter)")]
    TruncatedSequence,
    /// The input (or the enclosing sequence) ends inside an undefined-length item.
    #[error("item delimiter missing (truncated sequence)")]
    MissingItemDelimiter,
    /// The input ends inside encapsulated pixel data.
    #[error("truncated encapsulated pixel data")]
    TruncatedFragments,
    /// A fragment that is not a defined-length item.
    #[error("bad fragment in encapsulated pixel data")]
    BadFragment,
    /// Two top-level Pixel Data elements.
    #[error("a second Pixel Data element")]
    SecondPixelData,
    /// Nesting beyond [`Limits::max_depth`].
    #[error("sequences nested deeper than {0}")]
    TooDeep(usize),
    /// More headers than [`Limits::max_elements`].
    #[error("more than {0} elements, items and fragments")]
    TooManyElements(usize),
    /// A binary value whose length is not a whole number of its VR's values (a UL of 25
    /// bytes): dicom-rs reads whole values only and goes on reading out of step, where a
    /// later "length" can ask for gigabytes (found by the `dicom_structure` fuzz target).
    #[error("value length {len} is not a multiple of {unit} bytes")]
    PartialValue {
        /// The declared length.
        len: u32,
        /// The size of one value of its VR.
        unit: u32,
    },
}

impl Defect {
    /// A stable kebab-case code for log lines, refusals and status comments.
    pub fn code(self) -> &'static str {
        match self {
            Defect::Empty => "empty",
            Defect::NotPart10 => "not-part10",
            Defect::NoFileMeta => "no-file-meta",
            Defect::MetaUndefinedLength => "meta-undefined-length",
            Defect::TruncatedHeader => "truncated-header",
            Defect::UnknownVr => "unknown-vr",
            Defect::LengthBeyondEnd { .. } => "length-beyond-end",
            Defect::UndefinedLength => "undefined-length",
            Defect::ItemOutsideSequence => "item-outside-sequence",
            Defect::ExpectedItem => "expected-item",
            Defect::TruncatedSequence => "truncated-sequence",
            Defect::MissingItemDelimiter => "missing-item-delimiter",
            Defect::TruncatedFragments => "truncated-fragments",
            Defect::BadFragment => "bad-fragment",
            Defect::SecondPixelData => "second-pixel-data",
            Defect::TooDeep(_) => "nesting-too-deep",
            Defect::TooManyElements(_) => "too-many-elements",
            Defect::PartialValue { .. } => "partial-value",
        }
    }
}

/// A [`Defect`] and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed at byte {offset}, tag {}: {defect}", tag_or_dash(*.tag))]
pub struct StructureError {
    /// Byte offset in the input where the offending header starts.
    pub offset: usize,
    /// The element's tag, when one was read.
    pub tag: Option<ElementTag>,
    /// What is wrong.
    pub defect: Defect,
}

fn tag_or_dash(tag: Option<ElementTag>) -> String {
    tag.map_or_else(|| "-".to_string(), |t| t.to_string())
}

/// Top-level Pixel Data (7FE0,0010) in OB/OW (or implicit VR), where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelDataSpan {
    /// Where its header starts.
    pub start: usize,
    /// Where its value starts.
    pub value: usize,
    /// One past its last byte (after the sequence delimiter when encapsulated).
    pub end: usize,
    /// Undefined length: an offset table item and fragments, then a sequence delimiter.
    pub encapsulated: bool,
}

/// What a successful scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Element, item and fragment headers read.
    pub headers: usize,
    /// The deepest sequence nesting seen.
    pub depth: usize,
    /// The top-level Pixel Data element, if any.
    pub pixel_data: Option<PixelDataSpan>,
}

/// The file meta group of a Part-10 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Transfer Syntax UID (0002,0010) with its padding removed, as written (the caller
    /// checks its shape before showing it anywhere).
    pub transfer_syntax: Option<String>,
    /// Where the data set starts.
    pub data_start: usize,
}

/// Reads the preamble (128 bytes, then `DICM`, or `DICM` at the start) and the file meta
/// group (always Explicit VR Little Endian).
pub fn file_meta(bytes: &[u8]) -> Result<FileMeta, StructureError> {
    let at = |offset, tag, defect| StructureError { offset, tag, defect };
    if bytes.is_empty() {
        return Err(at(0, None, Defect::Empty));
    }
    let mut pos = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Err(at(0, None, Defect::NotPart10));
    };
    let r = Reader { b: bytes, enc: Encoding::ExplicitVrLittleEndian };
    let mut transfer_syntax = None;
    let mut n = 0;
    while pos + 4 <= bytes.len() && r.u16(pos) == 0x0002 {
        let h = r.header(pos, bytes.len())?;
        if h.len == UNDEFINED || h.vr == Some(*b"SQ") {
            return Err(at(pos, Some(h.tag), Defect::MetaUndefinedLength));
        }
        let v = pos + h.size;
        let left = bytes.len() - v;
        if h.len as usize > left {
            return Err(at(pos, Some(h.tag), Defect::LengthBeyondEnd { len: h.len, left }));
        }
        if h.tag == TRANSFER_SYNTAX_UID {
            let raw = &bytes[v..v + h.len as usize];
            transfer_syntax =
                Some(String::from_utf8_lossy(raw).trim_end_matches(['\0', ' ']).to_string());
        }
        pos = v + h.len as usize;
        n += 1;
    }
    if n == 0 {
        return Err(at(pos, None, Defect::NoFileMeta));
    }
    Ok(FileMeta { transfer_syntax, data_start: pos })
}

/// Walks the data set `bytes[start..]` (to the end of `bytes`; offsets in errors and
/// results are into `bytes`). `is_sequence` answers, in implicit VR only, whether the
/// dictionary makes a tag a sequence (SQ); it is not called for explicit VR. Binary values
/// are checked against their explicit VR only: [`scan_data_set_typed`] also checks them in
/// implicit VR.
pub fn scan_data_set(
    bytes: &[u8],
    start: usize,
    encoding: Encoding,
    limits: Limits,
    is_sequence: &dyn Fn(ElementTag) -> bool,
) -> Result<Scanned, StructureError> {
    let vr_of = |tag| if is_sequence(tag) { Some(*b"SQ") } else { None };
    scan_data_set_typed(bytes, start, encoding, limits, &vr_of)
}

/// [`scan_data_set`] with the dictionary's VR: `implicit_vr` answers, in implicit VR only,
/// the VR the parser will read a tag with (`None` when unknown). Sequences open on `SQ`, and
/// a binary value (US, UL, FL, FD, AT, OW, …) must be a whole number of values, as in
/// explicit VR.
pub fn scan_data_set_typed(
    bytes: &[u8],
    start: usize,
    encoding: Encoding,
    limits: Limits,
    implicit_vr: &dyn Fn(ElementTag) -> Option<[u8; 2]>,
) -> Result<Scanned, StructureError> {
    Scanner {
        r: Reader { b: bytes, enc: encoding },
        limits,
        implicit_vr,
        headers: 0,
        depth: 0,
        deepest: 0,
        pixel_data: None,
    }
    .run(start.min(bytes.len()))
}

/// The size of one value of a binary VR whose values the parser reads whole.
fn value_unit(vr: [u8; 2]) -> Option<u32> {
    match &vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"UL" | b"SL" | b"FL" | b"AT" | b"OF" | b"OL" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

/// One header as read.
struct Header {
    tag: ElementTag,
    /// The explicit VR, if any (never for items and delimiters, nor in implicit VR).
    vr: Option<[u8; 2]>,
    len: u32,
    size: usize,
}

struct Reader<'a> {
    b: &'a [u8],
    enc: Encoding,
}

impl Reader<'_> {
    // Callers check that the bytes are there.
    fn u16(&self, p: usize) -> u16 {
        let a = [self.b[p], self.b[p + 1]];
        if self.enc.big() {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32(&self, p: usize) -> u32 {
        let a = [self.b[p], self.b[p + 1], self.b[p + 2], self.b[p + 3]];
        if self.enc.big() {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    fn tag(&self, p: usize) -> ElementTag {
        ElementTag { group: self.u16(p), element: self.u16(p + 2) }
    }

    /// An element, item or delimiter header at `pos`, with `end` the bound it must fit in.
    fn header(&self, pos: usize, end: usize) -> Result<Header, StructureError> {
        let err = |tag, defect| StructureError { offset: pos, tag, defect };
        if end - pos < 8 {
            return Err(err(None, Defect::TruncatedHeader));
        }
        let tag = self.tag(pos);
        if tag.group == 0xFFFE || !self.enc.explicit() {
            return Ok(Header { tag, vr: None, len: self.u32(pos + 4), size: 8 });
        }
        let vr = [self.b[pos + 4], self.b[pos + 5]];
        if LONG_VRS.contains(&&vr) {
            if end - pos < 12 {
                return Err(err(Some(tag), Defect::TruncatedHeader));
            }
            Ok(Header { tag, vr: Some(vr), len: self.u32(pos + 8), size: 12 })
        } else if SHORT_VRS.contains(&&vr) {
            Ok(Header { tag, vr: Some(vr), len: u32::from(self.u16(pos + 6)), size: 8 })
        } else {
            Err(err(Some(tag), Defect::UnknownVr))
        }
    }
}

/// Where the walk is: a data set (the root or an item) or a sequence, with the bound the
/// bytes must fit in.
enum Frame {
    /// A data set ending at `end`; an undefined-length item ends at its delimiter instead,
    /// which must come before `end`.
    DataSet { end: usize, undefined: bool },
    /// A sequence: items up to `end` (defined length) or to its delimiter before `end`.
    Sequence { end: usize, undefined: bool },
}

struct Scanner<'a, 'f> {
    r: Reader<'a>,
    limits: Limits,
    implicit_vr: &'f dyn Fn(ElementTag) -> Option<[u8; 2]>,
    headers: usize,
    depth: usize,
    deepest: usize,
    pixel_data: Option<PixelDataSpan>,
}

impl Scanner<'_, '_> {
    fn count(&mut self, pos: usize, tag: ElementTag) -> Result<(), StructureError> {
        self.headers += 1;
        if self.headers > self.limits.max_elements {
            let defect = Defect::TooManyElements(self.limits.max_elements);
            return Err(StructureError { offset: pos, tag: Some(tag), defect });
        }
        Ok(())
    }

    fn run(mut self, start: usize) -> Result<Scanned, StructureError> {
        let total = self.r.b.len();
        let mut stack = vec![Frame::DataSet { end: total, undefined: false }];
        let mut pos = start;
        while let Some(frame) = stack.last() {
            match *frame {
                Frame::DataSet { end, undefined } => {
                    if pos == end {
                        if undefined {
                            let defect = Defect::MissingItemDelimiter;
                            return Err(StructureError { offset: pos, tag: None, defect });
                        }
                        stack.pop();
                        continue;
                    }
                    let root = stack.len() == 1;
                    pos = self.element(pos, end, undefined, root, &mut stack)?;
                }
                Frame::Sequence { end, undefined } => {
                    if !undefined && pos == end {
                        stack.pop();
                        self.depth -= 1;
                        continue;
                    }
                    pos = self.item(pos, end, undefined, &mut stack)?;
                }
            }
        }
        Ok(Scanned { headers: self.headers, depth: self.deepest, pixel_data: self.pixel_data })
    }

    /// One data element at `pos` inside a data set bounded by `end`. Returns where the walk
    /// goes on: after the element, or at its value when it opened a sequence (pushed).
    fn element(
        &mut self,
        pos: usize,
        end: usize,
        in_undefined_item: bool,
        root: bool,
        stack: &mut Vec<Frame>,
    ) -> Result<usize, StructureError> {
        let h = self.r.header(pos, end)?;
        let err = |defect| StructureError { offset: pos, tag: Some(h.tag), defect };
        if h.tag == ITEM_END && in_undefined_item {
            stack.pop();
            return Ok(pos + 8);
        }
        if h.tag.group == 0xFFFE {
            return Err(err(Defect::ItemOutsideSequence));
        }
        self.count(pos, h.tag)?;
        let v = pos + h.size;
        let binary_vr = h.vr.is_none_or(|vr| &vr == b"OB" || &vr == b"OW");
        let top_pixels = root && h.tag == PIXEL_DATA && binary_vr;
        if top_pixels && self.pixel_data.is_some() {
            return Err(err(Defect::SecondPixelData));
        }
        // The VR the parser reads the value with: the explicit one, or the dictionary's.
        let vr = match h.vr {
            Some(vr) => Some(vr),
            // Native Pixel Data in implicit VR is read as OW: whole 16-bit words only (an
            // odd length put the parser one byte out of step; found by the fuzz target).
            None if h.tag == PIXEL_DATA => Some(*b"OW"),
            None => (self.implicit_vr)(h.tag),
        };
        let sq = match h.vr {
            Some(vr) => &vr == b"SQ",
            None => h.len != UNDEFINED && vr == Some(*b"SQ"),
        };
        if let Some(unit) = vr.and_then(value_unit) {
            if h.len != UNDEFINED && h.len % unit != 0 {
                return Err(err(Defect::PartialValue { len: h.len, unit }));
            }
        }
        if h.len == UNDEFINED {
            // As dicom-rs reads it: Pixel Data of undefined length (any VR but SQ) is a
            // fragment sequence; any other undefined length in implicit VR, and SQ or UN in
            // explicit VR, a sequence in the data set's own encoding.
            if h.tag == PIXEL_DATA && h.vr != Some(*b"SQ") {
                let after = self.fragments(v, end)?;
                if top_pixels {
                    let span =
                        PixelDataSpan { start: pos, value: v, end: after, encapsulated: true };
                    self.pixel_data = Some(span);
                }
                return Ok(after);
            }
            let opens = match h.vr {
                None => true,
                Some(vr) => &vr == b"SQ" || &vr == b"UN",
            };
            if !opens {
                return Err(err(Defect::UndefinedLength));
            }
            self.open(pos, h.tag, stack, Frame::Sequence { end, undefined: true })?;
            return Ok(v);
        }
        let left = end - v;
        if h.len as usize > left {
            return Err(err(Defect::LengthBeyondEnd { len: h.len, left }));
        }
        let next = v + h.len as usize;
        if top_pixels {
            let span = PixelDataSpan { start: pos, value: v, end: next, encapsulated: false };
            self.pixel_data = Some(span);
        }
        if sq {
            self.open(pos, h.tag, stack, Frame::Sequence { end: next, undefined: false })?;
            return Ok(v);
        }
        Ok(next)
    }

    /// Pushes a sequence, one level deeper.
    fn open(
        &mut self,
        pos: usize,
        tag: ElementTag,
        stack: &mut Vec<Frame>,
        frame: Frame,
    ) -> Result<(), StructureError> {
        if self.depth >= self.limits.max_depth {
            let defect = Defect::TooDeep(self.limits.max_depth);
            return Err(StructureError { offset: pos, tag: Some(tag), defect });
        }
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        stack.push(frame);
        Ok(())
    }

    /// One item (or the sequence delimiter) at `pos` in a sequence bounded by `end`.
    fn item(
        &mut self,
        pos: usize,
        end: usize,
        undefined_seq: bool,
        stack: &mut Vec<Frame>,
    ) -> Result<usize, StructureError> {
        if end - pos < 8 {
            let defect = Defect::TruncatedSequence;
            return Err(StructureError { offset: pos, tag: None, defect });
        }
        let tag = self.r.tag(pos);
        let len = self.r.u32(pos + 4);
        let err = |defect| StructureError { offset: pos, tag: Some(tag), defect };
        if tag == SEQ_END && undefined_seq {
            stack.pop();
            self.depth -= 1;
            return Ok(pos + 8);
        }
        if tag != ITEM {
            return Err(err(Defect::ExpectedItem));
        }
        self.count(pos, tag)?;
        let v = pos + 8;
        if len == UNDEFINED {
            stack.push(Frame::DataSet { end, undefined: true });
            return Ok(v);
        }
        let left = end - v;
        if len as usize > left {
            return Err(err(Defect::LengthBeyondEnd { len, left }));
        }
        stack.push(Frame::DataSet { end: v + len as usize, undefined: false });
        Ok(v)
    }

    /// Encapsulated pixel data from `pos`: defined-length items up to the sequence
    /// delimiter, before `end`. Returns the position after the delimiter.
    fn fragments(&mut self, mut pos: usize, end: usize) -> Result<usize, StructureError> {
        let at = |offset, defect| StructureError { offset, tag: Some(PIXEL_DATA), defect };
        loop {
            if end - pos < 8 {
                return Err(at(pos, Defect::TruncatedFragments));
            }
            let tag = self.r.tag(pos);
            let len = self.r.u32(pos + 4);
            if tag == SEQ_END {
                return Ok(pos + 8);
            }
            if tag != ITEM || len == UNDEFINED {
                return Err(at(pos, Defect::BadFragment));
            }
            self.count(pos, PIXEL_DATA)?;
            let left = end - pos - 8;
            if len as usize > left {
                return Err(at(pos, Defect::LengthBeyondEnd { len, left }));
            }
            pos += 8 + len as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: ElementTag) -> bool {
        false
    }

    /// An Explicit VR Little Endian element with a short (16-bit) length.
    fn short(out: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(vr);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }

    /// An Explicit VR Little Endian header with a 32-bit length (OB, SQ, UN, ...).
    fn long(out: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], len: u32) {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(vr);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// Item, item delimiter, sequence delimiter (8-byte headers in every encoding).
    fn raw(out: &mut Vec<u8>, g: u16, e: u16, len: u32) {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// `levels` sequences of undefined length, each holding one undefined-length item,
    /// nested in one another, then a text element in the innermost item.
    fn nested_explicit(levels: usize) -> Vec<u8> {
        let mut d = Vec::new();
        short(&mut d, 0x0008, 0x0016, b"UI", b"1.2.3\0");
        for _ in 0..levels {
            long(&mut d, 0x0040, 0xA730, b"SQ", UNDEFINED);
            raw(&mut d, 0xFFFE, 0xE000, UNDEFINED);
        }
        short(&mut d, 0x0010, 0x0010, b"PN", b"DEEP^ONE");
        for _ in 0..levels {
            raw(&mut d, 0xFFFE, 0xE00D, 0);
            raw(&mut d, 0xFFFE, 0xE0DD, 0);
        }
        d
    }

    /// The same nesting with defined lengths everywhere, in Implicit VR Little Endian.
    fn nested_implicit_defined(levels: usize) -> Vec<u8> {
        let mut inner = Vec::new();
        raw(&mut inner, 0x0010, 0x0010, 8);
        inner.extend_from_slice(b"DEEP^ONE");
        for _ in 0..levels {
            let mut item = Vec::new();
            raw(&mut item, 0xFFFE, 0xE000, inner.len() as u32);
            item.extend_from_slice(&inner);
            let mut seq = Vec::new();
            raw(&mut seq, 0x0040, 0xA730, item.len() as u32);
            seq.extend_from_slice(&item);
            inner = seq;
        }
        inner
    }

    fn sq_0040_a730(t: ElementTag) -> bool {
        t == ElementTag { group: 0x0040, element: 0xA730 }
    }

    fn scan(b: &[u8], enc: Encoding, limits: Limits) -> Result<Scanned, StructureError> {
        scan_data_set(b, 0, enc, limits, &sq_0040_a730)
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let lim = Limits::OBJECT;
        for levels in [MAX_DEPTH + 1, 2_000] {
            let e =
                scan(&nested_explicit(levels), Encoding::ExplicitVrLittleEndian, lim).unwrap_err();
            assert_eq!(e.defect, Defect::TooDeep(MAX_DEPTH));
            assert_eq!(e.defect.code(), "nesting-too-deep");
            let e = scan(&nested_implicit_defined(levels), Encoding::ImplicitVrLittleEndian, lim)
                .unwrap_err();
            assert_eq!(e.defect, Defect::TooDeep(MAX_DEPTH));
        }
        // At the limit it passes.
        let ok = scan(&nested_explicit(MAX_DEPTH), Encoding::ExplicitVrLittleEndian, lim).unwrap();
        assert_eq!(ok.depth, MAX_DEPTH);
        let ok = scan(&nested_implicit_defined(MAX_DEPTH), Encoding::ImplicitVrLittleEndian, lim)
            .unwrap();
        assert_eq!(ok.depth, MAX_DEPTH);
        // No limit: a million levels walk in constant stack (the test thread has 2 MiB).
        let unbounded = Limits { max_depth: usize::MAX, max_elements: usize::MAX };
        let huge = nested_explicit(1_000_000);
        let ok = scan(&huge, Encoding::ExplicitVrLittleEndian, unbounded).unwrap();
        assert_eq!(ok.depth, 1_000_000);
    }

    #[test]
    fn element_count_is_bounded() {
        let mut d = Vec::new();
        for i in 0..100u16 {
            short(&mut d, 0x0009, 0x1000 + i, b"US", &[1, 0]);
        }
        let lim = |n| Limits { max_depth: 4, max_elements: n };
        assert_eq!(scan(&d, Encoding::ExplicitVrLittleEndian, lim(100)).unwrap().headers, 100);
        let e = scan(&d, Encoding::ExplicitVrLittleEndian, lim(99)).unwrap_err();
        assert_eq!(e.defect, Defect::TooManyElements(99));
        assert_eq!(e.offset, 99 * 10);
    }

    #[test]
    fn lengths_must_stay_within_their_bounds() {
        let mut d = Vec::new();
        short(&mut d, 0x0010, 0x0010, b"PN", b"YAMADA^TARO ");
        let cut = &d[..d.len() - 1];
        let e = scan(cut, Encoding::ExplicitVrLittleEndian, Limits::OBJECT).unwrap_err();
        assert_eq!((e.offset, e.defect), (0, Defect::LengthBeyondEnd { len: 12, left: 11 }));
        assert_eq!(e.tag.unwrap().to_string(), "(0010,0010)");
        let msg = e.to_string();
        assert!(msg.contains("(0010,0010)") && !msg.contains("YAMADA"), "{msg}");
        let e = scan(&d[..5], Encoding::ExplicitVrLittleEndian, Limits::OBJECT).unwrap_err();
        assert_eq!(e.defect, Defect::TruncatedHeader);

        // An item running past its defined-length sequence.
        let mut s = Vec::new();
        long(&mut s, 0x0040, 0xA730, b"SQ", 16);
        raw(&mut s, 0xFFFE, 0xE000, 10);
        short(&mut s, 0x0008, 0x0100, b"SH", b"AB");
        short(&mut s, 0x0008, 0x0102, b"SH", b"CD");
        let e = scan(&s, Encoding::ExplicitVrLittleEndian, Limits::OBJECT).unwrap_err();
        assert_eq!(e.defect, Defect::LengthBeyondEnd { len: 10, left: 8 });
    }

    #[test]
    fn misplaced_items_unknown_vrs_and_truncation() {
        let ex = Encoding::ExplicitVrLittleEndian;
        let mut d = Vec::new();
        raw(&mut d, 0xFFFE, 0xE000, 0);
        let e = scan(&d, ex, Limits::OBJECT).unwrap_err();
        assert_eq!(e.defect, Defect::ItemOutsideSequence);

        let mut d = Vec::new();
        short(&mut d, 0x0010, 0x0020, b"Q?", b"AB");
        assert_eq!(scan(&d, ex, Limits::OBJECT).unwrap_err().defect, Defect::UnknownVr);

        let mut d = Vec::new();
        long(&mut d, 0x0040, 0xA730, b"SQ", UNDEFINED);
        short(&mut d, 0x0008, 0x0100, b"SH", b"AB");
        assert_eq!(scan(&d, ex, Limits::OBJECT).unwrap_err().defect, Defect::ExpectedItem);

        let mut d = nested_explicit(3);
        d.truncate(d.len() - 8);
        assert_eq!(scan(&d, ex, Limits::OBJECT).unwrap_err().defect, Defect::TruncatedSequence);
        let mut d = nested_explicit(3);
        d.truncate(d.len() - 32);
        let e = scan(&d, ex, Limits::OBJECT).unwrap_err();
        assert_eq!(e.defect, Defect::MissingItemDelimiter);

        let mut d = Vec::new();
        long(&mut d, 0x0008, 0x0100, b"OB", UNDEFINED);
        assert_eq!(scan(&d, ex, Limits::OBJECT).unwrap_err().defect, Defect::UndefinedLength);
    }

    #[test]
    fn undefined_length_un_is_a_sequence_in_the_data_sets_encoding() {
        // As dicom-rs reads it: explicit VR inside, so the nesting is bounded as it parses.
        let mut d = Vec::new();
        long(&mut d, 0x0009, 0x1010, b"UN", UNDEFINED);
        raw(&mut d, 0xFFFE, 0xE000, UNDEFINED);
        long(&mut d, 0x0009, 0x1011, b"SQ", UNDEFINED);
        raw(&mut d, 0xFFFE, 0xE0DD, 0);
        raw(&mut d, 0xFFFE, 0xE00D, 0);
        raw(&mut d, 0xFFFE, 0xE0DD, 0);
        let ok = scan(&d, Encoding::ExplicitVrLittleEndian, Limits::OBJECT).unwrap();
        assert_eq!((ok.depth, ok.headers), (2, 3));
        let shallow = Limits { max_depth: 1, max_elements: 10 };
        let e = scan(&d, Encoding::ExplicitVrLittleEndian, shallow).unwrap_err();
        assert_eq!(e.defect, Defect::TooDeep(1));
    }

    #[test]
    fn big_endian_nesting_is_read_big_endian() {
        let mut d = Vec::new();
        let be = |out: &mut Vec<u8>, g: u16, e: u16, vr: Option<&[u8; 2]>, len: u32| {
            out.extend_from_slice(&g.to_be_bytes());
            out.extend_from_slice(&e.to_be_bytes());
            if let Some(vr) = vr {
                out.extend_from_slice(vr);
                out.extend_from_slice(&[0, 0]);
            }
            out.extend_from_slice(&len.to_be_bytes());
        };
        for _ in 0..40 {
            be(&mut d, 0x0040, 0xA730, Some(b"SQ"), UNDEFINED);
            be(&mut d, 0xFFFE, 0xE000, None, UNDEFINED);
        }
        for _ in 0..40 {
            be(&mut d, 0xFFFE, 0xE00D, None, 0);
            be(&mut d, 0xFFFE, 0xE0DD, None, 0);
        }
        let e = scan(&d, Encoding::ExplicitVrBigEndian, Limits::OBJECT).unwrap_err();
        assert_eq!(e.defect, Defect::TooDeep(MAX_DEPTH));
        let deep = Limits { max_depth: 40, max_elements: 1000 };
        assert_eq!(scan(&d, Encoding::ExplicitVrBigEndian, deep).unwrap().depth, 40);
        // Read as little endian the same bytes make no sense.
        assert!(scan(&d, Encoding::ExplicitVrLittleEndian, deep).is_err());
    }

    #[test]
    fn part10_meta_and_top_level_pixel_data() {
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.4.50\0";
        let mut meta = Vec::new();
        short(&mut meta, 0x0002, 0x0010, b"UI", &ts[..ts.len() - 1]);
        f.extend_from_slice(&meta);
        let data_start = f.len();
        short(&mut f, 0x0008, 0x0016, b"UI", b"1.2.3\0");
        let px = f.len();
        long(&mut f, 0x7FE0, 0x0010, b"OB", UNDEFINED);
        raw(&mut f, 0xFFFE, 0xE000, 0);
        raw(&mut f, 0xFFFE, 0xE000, 4);
        f.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9]);
        raw(&mut f, 0xFFFE, 0xE0DD, 0);
        let m = file_meta(&f).unwrap();
        assert_eq!(m.transfer_syntax.as_deref(), Some("1.2.840.10008.1.2.4.50"));
        assert_eq!(m.data_start, data_start);
        let enc = Encoding::of_transfer_syntax(m.transfer_syntax.as_deref().unwrap()).unwrap();
        let s = scan_data_set(&f, m.data_start, enc, Limits::OBJECT, &never).unwrap();
        let span = s.pixel_data.unwrap();
        assert_eq!((span.start, span.value, span.end), (px, px + 12, f.len()));
        assert!(span.encapsulated);

        let mut twice = f.clone();
        twice.extend_from_slice(&f[px..]);
        let e = scan_data_set(&twice, data_start, enc, Limits::OBJECT, &never).unwrap_err();
        assert_eq!((e.offset, e.defect), (f.len(), Defect::SecondPixelData));

        assert_eq!(file_meta(b"").unwrap_err().defect, Defect::Empty);
        assert_eq!(file_meta(b"not dicom").unwrap_err().defect, Defect::NotPart10);
        assert_eq!(file_meta(b"DICM\x08\x00").unwrap_err().defect, Defect::NoFileMeta);
        assert_eq!(Encoding::of_transfer_syntax("1.2.840.10008.1.2.1.99\0"), None);
        assert_eq!(
            Encoding::of_transfer_syntax("1.2.840.10008.1.2\0"),
            Some(Encoding::ImplicitVrLittleEndian)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Arbitrary bytes and edits of a valid nesting: a result or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            edits in proptest::collection::vec((0usize..2000, proptest::prelude::any::<u8>()), 0..6),
            cut in 0usize..2000,
        ) {
            for enc in [
                Encoding::ImplicitVrLittleEndian,
                Encoding::ExplicitVrLittleEndian,
                Encoding::ExplicitVrBigEndian,
            ] {
                let _ = scan(&bytes, enc, Limits::OBJECT);
                let mut n = nested_explicit(5);
                for (i, v) in &edits {
                    let i = i % n.len();
                    n[i] = *v;
                }
                n.truncate(cut.min(n.len()));
                let _ = scan(&n, enc, Limits::OBJECT);
                let _ = file_meta(&bytes);
            }
        }
    }
}
