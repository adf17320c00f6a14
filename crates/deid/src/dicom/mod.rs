//! DICOM de-identification: the PS3.15 Basic Application Level Confidentiality Profile with
//! the options of [`DicomPolicy`], its rules generated from Table E.1-1 ([`table`]).
//!
//! [`deidentify_dicom`] reads a Part-10 file ([`parse`]: structural checks, then dicom-rs),
//! fixes Japanese text decoding ([`charset`]), builds the object's own identifier sets (patient
//! names in each PN group, ids, birth date, address, phone, accession number, physicians),
//! applies the table to every data set ([`apply`]), adds Patient Identity Removed and the
//! De-identification Method (code sequence with 113100 and one code per option), verifies that
//! none of the object's identifiers is left in any text, and writes a Part-10 file in UTF-8
//! (`ISO_IR 192`) with the original transfer syntax and a new file meta group.
//!
//! Pixel data: Burned In Annotation is not trusted; every object with pixel data goes through
//! the burned-in text stage ([`pixels`]), and [`DicomResult::quarantine_reason`] keeps on the
//! box whatever that stage did not release.

mod apply;
mod charset;
mod options;
pub(crate) mod package;
mod parse;
mod pixels;
mod table;
mod uid;

pub use options::{
    DicomOption, DicomPolicy, SafePrivate, BASIC_PROFILE_CODE, BASIC_PROFILE_MEANING,
};
pub use parse::{check_structure, TailPixels, MAX_DEPTH};
pub use table::{Action, Clean, Rule, Table};

use super::identifiers::IdentifierSet;
use super::{DeidContext, QuarantineReason};
use apply::{strings, Ctx};
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::tags::SPECIFIC_CHARACTER_SET;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use fgw_records::Column;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Why a DICOM file could not be de-identified. Every variant names the file (as the caller
/// called it) and, where one is involved, the tag; never an attribute value.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum DicomError {
    #[error("{file}: empty file")]
    Empty { file: String },
    #[error("{file}: not a DICOM Part-10 file: {what}")]
    NotPart10 { file: String, what: &'static str },
    #[error("{file}: malformed at byte {offset}, tag {tag}: {what}")]
    Malformed { file: String, offset: usize, tag: String, what: String },
    #[error("{file}: transfer syntax {uid} is not supported")]
    UnsupportedTransferSyntax { file: String, uid: String },
    #[error("{file}: {what}")]
    UnsupportedCharset { file: String, what: String },
    #[error("{file}: the DICOM parser {what} after the structural checks passed")]
    ParserRejected { file: String, what: &'static str },
    #[error("{file}: required attribute {tag} {name} is missing or not text")]
    MissingAttribute { file: String, tag: String, name: &'static str },
    #[error("{file}: identifier ({kind}) still present in {tag} after de-identification")]
    IdentifierFound { file: String, tag: String, kind: &'static str },
    #[error("{file}: writing the de-identified object failed")]
    Write { file: String },
    #[error("dicom policy: {0}")]
    Policy(String),
    #[error("PS3.15 table: {0}")]
    Table(String),
}

impl DicomError {
    /// The quarantine reason for this error (its text holds no values).
    pub fn quarantine_reason(&self) -> QuarantineReason {
        match self {
            DicomError::IdentifierFound { tag, kind, .. } => {
                QuarantineReason::IdentifierFound(format!("dicom {tag} {kind}"))
            }
            e => QuarantineReason::InputInvalid(e.to_string()),
        }
    }
}

/// What the source object declared in Burned In Annotation (0028,0301). Recorded, not
/// trusted: pixel data is cleaned or withheld whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnedIn {
    /// `YES`.
    Yes,
    /// `NO`.
    No,
    /// Absent or not YES/NO.
    Undeclared,
}

/// One de-identified object and what the gate found out about it.
pub struct DicomResult {
    /// The de-identified Part-10 file.
    pub bytes: Vec<u8>,
    /// Pixel Data, Float or Double Float Pixel Data present.
    pub has_pixel_data: bool,
    /// What the package says of the object: remapped UIDs, keyed pseudonyms of Patient ID
    /// and Accession Number, SOP class, transfer syntax, modality.
    pub record: fgw_format::package::DicomRecord,
    /// What the source declared in Burned In Annotation.
    pub burned_in: BurnedIn,
    /// Pixel data went through the burned-in text stage and was released (Burned In
    /// Annotation is then NO).
    pub pixels_cleaned: bool,
    /// Why pixel data was not released (an object with pixel data and no clean).
    pub pixels_refused: Option<QuarantineReason>,
}

impl std::fmt::Debug for DicomResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DicomResult({} bytes, pixels {}, {}, burned-in {:?})",
            self.bytes.len(),
            self.has_pixel_data,
            self.record.sop_class,
            self.burned_in
        )
    }
}

impl DicomResult {
    /// Objects with pixel data stay on the box unless the burned-in text stage cleaned them.
    pub fn quarantine_reason(&self) -> Option<QuarantineReason> {
        (self.has_pixel_data && !self.pixels_cleaned)
            .then(|| self.pixels_refused.clone().unwrap_or(QuarantineReason::PixelsNotCleaned))
    }
}

const PIXEL_TAGS: [Tag; 3] =
    [tags::PIXEL_DATA, tags::FLOAT_PIXEL_DATA, tags::DOUBLE_FLOAT_PIXEL_DATA];

/// De-identify one DICOM Part-10 file. `file` names it in errors (the caller's name for it;
/// never written into the output).
pub fn deidentify_dicom(
    file: &str,
    bytes: &[u8],
    ctx: &DeidContext,
    dicom: &DicomPolicy,
) -> Result<DicomResult, DicomError> {
    deidentify_dicom_into(file, bytes, ctx, dicom, Vec::new())
}

/// [`deidentify_dicom`], writing the result into `buf` (cleared first), so that a caller
/// going through many files reuses one output buffer: take it back from
/// [`DicomResult::bytes`] once the result is stored.
pub fn deidentify_dicom_into(
    file: &str,
    bytes: &[u8],
    ctx: &DeidContext,
    dicom: &DicomPolicy,
    mut buf: Vec<u8>,
) -> Result<DicomResult, DicomError> {
    dicom.validate().map_err(DicomError::Policy)?;
    let table = table::Table::get().map_err(DicomError::Table)?;
    let (obj, tail) = parse::read(file, bytes)?;
    let mut ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let root = obj.into_inner();

    let cs: Vec<String> =
        root.get(SPECIFIC_CHARACTER_SET).and_then(|e| strings(e.value())).unwrap_or_default();
    let how = charset::plan(&cs)
        .map_err(|what| DicomError::UnsupportedCharset { file: file.into(), what })?;
    let root = apply::redecode(root, how);

    let text1 =
        |t: Tag| root.get(t).and_then(|e| strings(e.value())).and_then(|v| v.into_iter().next());
    let missing = |tag: Tag, name: &'static str| DicomError::MissingAttribute {
        file: file.into(),
        tag: parse::tag_str(tag),
        name,
    };
    let study = text1(tags::STUDY_INSTANCE_UID)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| missing(tags::STUDY_INSTANCE_UID, "Study Instance UID"))?;
    let sop_class = text1(tags::SOP_CLASS_UID)
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| missing(tags::SOP_CLASS_UID, "SOP Class UID"))?;
    let instance = text1(tags::SOP_INSTANCE_UID)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| missing(tags::SOP_INSTANCE_UID, "SOP Instance UID"))?;
    let series = text1(tags::SERIES_INSTANCE_UID).filter(|s| !s.trim().is_empty());
    let modality = text1(tags::MODALITY)
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|m| is_code(m));
    let (fac, ps) = (ctx.facility, ctx.pseudonymizer);
    let nonblank = |t: Tag| text1(t).filter(|s| !s.trim_end_matches(['\0', ' ']).trim().is_empty());
    let patient_pid = nonblank(tags::PATIENT_ID).map(|v| ps.patient(fac, v.trim_end_matches('\0')));
    let exam_pid = nonblank(tags::ACCESSION_NUMBER).map(|v| ps.exam(fac, v.trim_end_matches('\0')));
    let burned_in =
        match text1(tags::BURNED_IN_ANNOTATION).map(|s| s.trim().to_ascii_uppercase()).as_deref() {
            Some("YES") => BurnedIn::Yes,
            Some("NO") => BurnedIn::No,
            _ => BurnedIn::Undeclared,
        };
    let has_pixel_data = tail.is_some() || PIXEL_TAGS.iter().any(|t| root.get(*t).is_some());

    let ids = identify(&root);
    let shift = text1(tags::PATIENT_ID)
        .filter(|s| !s.trim().is_empty())
        .map(|pid| ctx.pseudonymizer.date_shift_days(ctx.facility, &pid));
    let c = Ctx { table, policy: dicom, pseudo: ctx.pseudonymizer, ids: &ids, shift };
    let mut out = apply::dataset(&c, root, 0);

    if let Some((tag, kind)) = apply::find_identifier(&out, &ids, "") {
        return Err(DicomError::IdentifierFound { file: file.into(), tag, kind });
    }
    mark(&mut out, dicom);
    out.convert_to_utf8();
    // Pixels last: the stage searches OCR text for the object's own identifiers, read above
    // from the original header.
    let (pixels_cleaned, pixels_refused) = if !has_pixel_data {
        (false, None)
    } else if ctx.pixels.settings().mode == super::pixels::PixelMode::Withhold {
        (false, Some(QuarantineReason::PixelsNotCleaned))
    } else {
        let source = match tail {
            Some(t) => pixels::Source::Input(bytes, t),
            None => pixels::Source::Object,
        };
        match pixels::clean(&mut out, &mut ts, &IdentifierSet::union(&ids), ctx.pixels, source) {
            Ok(()) => (true, None),
            Err(r) => (false, Some(r)),
        }
    };

    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts.clone())
        .implementation_version_name(format!("FGW_{}", crate::TOOL_VERSION));
    let fobj = out.with_meta(meta).map_err(|_| DicomError::Write { file: file.into() })?;
    buf.clear();
    // About the input's size (header edits are small): sized once instead of regrown.
    buf.reserve(bytes.len() + 4096);
    write_part10(fobj, &mut buf).ok_or_else(|| DicomError::Write { file: file.into() })?;
    // Pixel data the stage did not replace goes out as it came in (same transfer syntax).
    if let (Some(t), false) = (tail, pixels_cleaned) {
        buf.extend_from_slice(&bytes[t.start..]);
    }
    // What we wrote must pass our own read checks; anything else is a bug to stop here.
    parse::check_structure(file, &buf).map_err(|_| DicomError::Write { file: file.into() })?;
    Ok(DicomResult {
        bytes: buf,
        has_pixel_data,
        record: fgw_format::package::DicomRecord {
            study_uid: uid::remap(ctx.pseudonymizer, &study),
            series_uid: series.map(|s| uid::remap(ctx.pseudonymizer, &s)),
            sop_instance_uid: uid::remap(ctx.pseudonymizer, &instance),
            sop_class,
            transfer_syntax: ts.trim_end_matches(['\0', ' ']).to_string(),
            modality,
            patient_pid,
            exam_pid,
            pixels: if pixels_cleaned { "cleaned" } else { "none" }.into(),
        },
        burned_in,
        pixels_cleaned,
        pixels_refused,
    })
}

/// The Part-10 file, byte for byte as `FileDicomObject::write_all` writes it, but consuming the
/// object: its values (the pixel data above all) move to the encoder instead of being cloned
/// first, which was a second copy of every frame. Appends to `out`.
fn write_part10(fobj: FileDicomObject<InMemDicomObject>, out: &mut Vec<u8>) -> Option<()> {
    use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
    use dicom_parser::dataset::{DataSetWriter, IntoTokens};
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(fobj.meta().transfer_syntax())?;
    if !matches!(ts.codec(), Codec::None | Codec::EncapsulatedPixelData(..)) {
        // A data set adapter (deflate): dicom-object's own writer applies it.
        return fobj.write_all(out).ok();
    }
    out.extend_from_slice(&[0; 128]);
    out.extend_from_slice(b"DICM");
    fobj.meta().write(&mut *out).ok()?;
    let mut w = DataSetWriter::with_ts(&mut *out, ts).ok()?;
    w.write_sequence(fobj.into_inner().into_tokens()).ok()?;
    w.flush().ok()
}

/// Patient Identity Removed, De-identification Method (+ code sequence), Longitudinal
/// Temporal Information Modified (PS3.15 E.1.1).
fn mark(obj: &mut InMemDicomObject, dicom: &DicomPolicy) {
    let selected = dicom.selected();
    obj.put(DataElement::new(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
    // LO is at most 64 characters: one value for the profile, one per option.
    let mut method = vec![format!("fgw-deid {} PS3.15 Basic", crate::TOOL_VERSION)];
    method.extend(selected.iter().map(|o| format!("+ {}", o.name())));
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::Strs(method.into()),
    ));
    let code = |value: &str, meaning: &str| {
        InMemDicomObject::from_element_iter([
            DataElement::new(tags::CODE_VALUE, VR::SH, value),
            DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM"),
            DataElement::new(tags::CODE_MEANING, VR::LO, meaning),
        ])
    };
    let mut items = vec![code(options::BASIC_PROFILE_CODE, options::BASIC_PROFILE_MEANING)];
    items.extend(selected.iter().map(|o| code(o.code(), o.meaning())));
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        VR::SQ,
        Value::Sequence(DataSetSequence::new(items, Length::UNDEFINED)),
    ));
    let temporal = if dicom.has(DicomOption::RetainLongitudinalFullDates) {
        "UNMODIFIED"
    } else if dicom.has(DicomOption::RetainLongitudinalModifiedDates) {
        "MODIFIED"
    } else {
        "REMOVED"
    };
    obj.put(DataElement::new(tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, VR::CS, temporal));
}

/// The object's own identifiers, one [`IdentifierSet`] per spelling (a PN value has up to
/// three groups — alphabetic, ideographic, phonetic — each its own name), so that every
/// spelling is matched whole as well as by parts.
///
/// Building the sets is a good part of the header path's time (a kana name has hundreds of
/// romaji spellings), and the objects of one exam arrive together with the same patient and
/// staff, so the last few results are kept in memory ([`RECENT_SETS`] entries, keyed by the
/// values themselves, least recently used dropped first; in this process's memory only, never
/// logged or written).
pub fn identify(root: &InMemDicomObject) -> Arc<Vec<IdentifierSet>> {
    static RECENT: Mutex<Vec<(IdentifyingValues, Arc<Vec<IdentifierSet>>)>> =
        Mutex::new(Vec::new());
    let values = IdentifyingValues::of(root);
    let lock = || RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Least recently used first: a hit moves its entry to the end.
    let hit = |recent: &mut Vec<(IdentifyingValues, Arc<Vec<IdentifierSet>>)>| {
        let i = recent.iter().position(|(v, _)| *v == values)?;
        let entry = recent.remove(i);
        let sets = entry.1.clone();
        recent.push(entry);
        Some(sets)
    };
    if let Some(sets) = hit(&mut lock()) {
        return sets;
    }
    // Built outside the lock; another worker may have built the same meanwhile.
    let sets = Arc::new(values.sets());
    let mut recent = lock();
    if let Some(theirs) = hit(&mut recent) {
        return theirs;
    }
    if recent.len() >= RECENT_SETS {
        recent.remove(0);
    }
    recent.push((values, sets.clone()));
    sets
}

/// How many objects' identifier sets [`identify`] keeps (a few studies arriving at once).
pub const RECENT_SETS: usize = 8;

/// The values [`identify`] builds its sets from: the patient's fields, then one entry per
/// name spelling or further id. No `Debug`: these are the patient's identifiers.
#[derive(PartialEq, Eq)]
struct IdentifyingValues {
    base: BTreeMap<Column, String>,
    each: Vec<(Column, String)>,
}

impl IdentifyingValues {
    fn of(root: &InMemDicomObject) -> IdentifyingValues {
        let all = |t: Tag| root.get(t).and_then(|e| strings(e.value())).unwrap_or_default();
        let first = |t: Tag| all(t).into_iter().find(|s| !s.trim().is_empty());
        let mut base = BTreeMap::new();
        for (c, t) in [
            (Column::PatientId, tags::PATIENT_ID),
            (Column::BirthDate, tags::PATIENT_BIRTH_DATE),
            (Column::Address, tags::PATIENT_ADDRESS),
            (Column::Phone, tags::PATIENT_TELEPHONE_NUMBERS),
            (Column::ExamId, tags::ACCESSION_NUMBER),
        ] {
            if let Some(v) = first(t) {
                base.insert(c, v);
            }
        }
        let mut each = Vec::new();
        let mut one = |c: Column, v: String| {
            if !v.trim().is_empty() {
                each.push((c, v));
            }
        };
        // Patient names, other names, birth names.
        for t in [
            tags::PATIENT_NAME,
            tags::OTHER_PATIENT_NAMES,
            tags::PATIENT_BIRTH_NAME,
            tags::PATIENT_MOTHER_BIRTH_NAME,
        ] {
            for v in all(t) {
                for (i, group) in v.split('=').enumerate() {
                    let c = if i == 2 { Column::PatientKana } else { Column::PatientName };
                    one(c, pn_words(group));
                }
            }
        }
        // Physicians and operators: surname searched, like the exam record's.
        for (t, c) in [
            (tags::REFERRING_PHYSICIAN_NAME, Column::ReferringPhysician),
            (tags::PERFORMING_PHYSICIAN_NAME, Column::Operator),
            (tags::OPERATORS_NAME, Column::Operator),
            (tags::NAME_OF_PHYSICIANS_READING_STUDY, Column::Operator),
        ] {
            for v in all(t) {
                for group in v.split('=') {
                    one(c, pn_words(group));
                }
            }
        }
        // Other ids: (0010,1000) and Other Patient IDs Sequence items; further phone numbers.
        // Retired, but older modalities still write it.
        #[allow(deprecated)]
        let other_ids = all(tags::OTHER_PATIENT_I_DS).into_iter();
        for v in other_ids.chain(all(tags::PATIENT_TELEPHONE_NUMBERS).into_iter().skip(1)) {
            one(Column::PatientId, v);
        }
        if let Some(Value::Sequence(s)) =
            root.get(tags::OTHER_PATIENT_I_DS_SEQUENCE).map(|e| e.value())
        {
            for item in s.items() {
                for v in
                    item.get(tags::PATIENT_ID).and_then(|e| strings(e.value())).unwrap_or_default()
                {
                    one(Column::PatientId, v);
                }
            }
        }
        IdentifyingValues { base, each }
    }

    fn sets(&self) -> Vec<IdentifierSet> {
        let mut sets = vec![IdentifierSet::from_fields(&self.base)];
        for (c, v) in &self.each {
            sets.push(IdentifierSet::from_fields(&BTreeMap::from([(*c, v.clone())])));
        }
        sets.retain(|s| !s.is_empty());
        sets
    }
}

/// A CS-style code: 1–16 of `A-Z 0-9 _`.
pub(crate) fn is_code(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// One PN component group as words: `YAMADA^TARO` → `YAMADA TARO` (components in order,
/// empty ones dropped).
fn pn_words(group: &str) -> String {
    group.split('^').map(str::trim).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}
