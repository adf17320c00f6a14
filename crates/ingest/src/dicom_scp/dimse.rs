//! DIMSE command sets, the received data set check, and the Part-10 file around it.
//!
//! Used both ways: the SCP parses requests and writes responses, the pull SCU
//! ([`crate::dicom_pull`]) writes C-FIND/C-MOVE requests and parses their responses.
//!
//! Command sets are few fixed elements of group 0000 in Implicit VR Little Endian (PS3.7
//! 6.3.1), so they are read and written here by hand, with every length checked against the
//! buffer: a peer's command never reaches a general-purpose parser. Data sets reach
//! dicom-object only after [`check_structure`] (`fgw_format::dicom_structure`): its read
//! recurses per sequence level, and a stack overflow aborts the whole daemon.

use super::{AeTitle, Uid};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use fgw_format::dicom_structure::{self, Defect, ElementTag, Encoding, Limits};
use std::fmt;

/// Largest command set we read; real ones are a few hundred bytes.
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Identifies the code that wrote the file meta group (PS3.7 D.3.3.2); a UUID-derived UID.
pub(crate) const IMPLEMENTATION_CLASS_UID: &str = "2.25.27000502409466862414276933771382659480";
pub(crate) const IMPLEMENTATION_VERSION_NAME: &str = "FGW_SCP_1";

pub(crate) const C_STORE_RQ: u16 = 0x0001;
pub(crate) const C_STORE_RSP: u16 = 0x8001;
pub(crate) const C_ECHO_RQ: u16 = 0x0030;
pub(crate) const C_ECHO_RSP: u16 = 0x8030;
pub(crate) const C_FIND_RQ: u16 = 0x0020;
pub(crate) const C_FIND_RSP: u16 = 0x8020;
pub(crate) const C_MOVE_RQ: u16 = 0x0021;
pub(crate) const C_MOVE_RSP: u16 = 0x8021;
/// Command Data Set Type value meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;
/// Any other value means one follows; PS3.7 suggests 0x0000 for requests we write.
const DATA_SET_PRESENT: u16 = 0x0000;
/// Priority MEDIUM (PS3.7 E.1).
const PRIORITY_MEDIUM: u16 = 0x0000;

/// Why a command or data set was not usable. Fixed reasons: never a value from the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DimseError {
    #[error("command set larger than {limit} bytes")]
    CommandTooLarge { limit: usize },
    #[error("command set: {0}")]
    Command(&'static str),
    #[error("data set cannot be parsed with its transfer syntax")]
    Unparseable,
    #[error("data set: {0}")]
    Dataset(&'static str),
    /// Refused by the structure check before any parse (the defect's code names it).
    #[error("data set structure: {}", .0.code())]
    Structure(Defect),
    #[error("data set does not match its command: {0}")]
    Mismatch(&'static str),
    #[error("file meta group could not be written")]
    FileMeta,
}

impl DimseError {
    /// The C-STORE status this error is answered with.
    pub(crate) fn status(&self) -> Status {
        match self {
            DimseError::Mismatch(_) => Status::DatasetMismatch,
            DimseError::FileMeta => Status::ProcessingFailure,
            DimseError::CommandTooLarge { .. }
            | DimseError::Command(_)
            | DimseError::Unparseable
            | DimseError::Dataset(_)
            | DimseError::Structure(_) => Status::CannotUnderstand,
        }
    }

    /// The same fixed reason, as a `'static` string for [`super::Refusal`].
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            DimseError::CommandTooLarge { .. } => "command set too large",
            DimseError::Command(r) | DimseError::Dataset(r) | DimseError::Mismatch(r) => r,
            DimseError::Unparseable => "data set cannot be parsed",
            DimseError::Structure(d) => d.code(),
            DimseError::FileMeta => "file meta group could not be written",
        }
    }
}

/// C-STORE / C-ECHO response statuses we send (PS3.4 Annex B.2.3, PS3.7 Annex C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0x0000.
    Success,
    /// 0xA700: the sender should retry later (our store is unavailable, or the object is
    /// larger than we hold in memory).
    OutOfResources,
    /// 0xA900: the data set's SOP class or instance differs from the command's.
    DatasetMismatch,
    /// 0xC000: the data set cannot be parsed.
    CannotUnderstand,
    /// 0x0122: the command names a SOP class other than its presentation context's.
    SopClassNotSupported,
    /// 0x0110: the sink refused the object for good.
    ProcessingFailure,
}

impl Status {
    /// The status code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Status::Success => 0x0000,
            Status::OutOfResources => 0xA700,
            Status::DatasetMismatch => 0xA900,
            Status::CannotUnderstand => 0xC000,
            Status::SopClassNotSupported => 0x0122,
            Status::ProcessingFailure => 0x0110,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06X}", self.code())
    }
}

/// The parts of a request command set we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub field: u16,
    pub message_id: u16,
    /// `None` when absent or not shaped like a UID.
    pub sop_class: Option<Uid>,
    pub sop_instance: Option<Uid>,
    pub has_data_set: bool,
}

/// Calls `each(tag, value)` for every element of a complete command set, with every
/// length checked against the buffer.
fn elements(
    bytes: &[u8],
    mut each: impl FnMut(Tag, &[u8]) -> Result<(), DimseError>,
) -> Result<(), DimseError> {
    if bytes.len() > MAX_COMMAND_BYTES {
        return Err(DimseError::CommandTooLarge { limit: MAX_COMMAND_BYTES });
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(DimseError::Command("truncated element header"));
        }
        let group = u16::from_le_bytes([rest[0], rest[1]]);
        let element = u16::from_le_bytes([rest[2], rest[3]]);
        let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if group != 0x0000 {
            return Err(DimseError::Command("element outside group 0000"));
        }
        // Also rejects the undefined length 0xFFFFFFFF, which has no place in a command.
        let Some(value) = rest.get(8..8usize.saturating_add(len)) else {
            return Err(DimseError::Command("element length beyond the command set"));
        };
        each(Tag(group, element), value)?;
        rest = &rest[8 + len..];
    }
    Ok(())
}

fn us(value: &[u8]) -> Result<u16, DimseError> {
    match value {
        [a, b] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err(DimseError::Command("US element is not 2 bytes")),
    }
}

fn ui(value: &[u8]) -> Option<Uid> {
    std::str::from_utf8(value).ok().and_then(|s| Uid::new(s).ok())
}

/// Parses a complete command set. Unknown group-0000 elements are skipped.
pub(crate) fn parse_command(bytes: &[u8]) -> Result<Command, DimseError> {
    let (mut field, mut message_id, mut data_set_type) = (None, None, None);
    let (mut sop_class, mut sop_instance) = (None, None);
    elements(bytes, |tag, value| {
        match tag {
            tags::COMMAND_FIELD => field = Some(us(value)?),
            tags::MESSAGE_ID => message_id = Some(us(value)?),
            tags::COMMAND_DATA_SET_TYPE => data_set_type = Some(us(value)?),
            tags::AFFECTED_SOP_CLASS_UID => sop_class = ui(value),
            tags::AFFECTED_SOP_INSTANCE_UID => sop_instance = ui(value),
            _ => {}
        }
        Ok(())
    })?;
    Ok(Command {
        field: field.ok_or(DimseError::Command("no Command Field"))?,
        message_id: message_id.ok_or(DimseError::Command("no Message ID"))?,
        sop_class,
        sop_instance,
        has_data_set: data_set_type.ok_or(DimseError::Command("no Command Data Set Type"))?
            != NO_DATA_SET,
    })
}

/// The parts of a response command set (C-FIND-RSP, C-MOVE-RSP) an SCU uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub field: u16,
    pub responding_to: u16,
    /// The raw status code: peers send codes beyond the ones we answer with ([`Status`]).
    pub status: u16,
    pub has_data_set: bool,
    /// Sub-operation counts of C-MOVE / C-GET responses (absent in C-FIND ones).
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
}

impl Response {
    /// 0xFF00 / 0xFF01: more responses follow (PS3.7 C.4).
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.status, 0xFF00 | 0xFF01)
    }
}

/// Parses a complete response command set. The Error Comment (0000,0902) is not read: it is
/// the peer's free text and could quote anything.
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Response, DimseError> {
    let (mut field, mut responding_to, mut data_set_type, mut status) = (None, None, None, None);
    let (mut remaining, mut completed, mut failed, mut warning) = (None, None, None, None);
    elements(bytes, |tag, value| {
        match tag {
            tags::COMMAND_FIELD => field = Some(us(value)?),
            tags::MESSAGE_ID_BEING_RESPONDED_TO => responding_to = Some(us(value)?),
            tags::COMMAND_DATA_SET_TYPE => data_set_type = Some(us(value)?),
            tags::STATUS => status = Some(us(value)?),
            tags::NUMBER_OF_REMAINING_SUBOPERATIONS => remaining = Some(us(value)?),
            tags::NUMBER_OF_COMPLETED_SUBOPERATIONS => completed = Some(us(value)?),
            tags::NUMBER_OF_FAILED_SUBOPERATIONS => failed = Some(us(value)?),
            tags::NUMBER_OF_WARNING_SUBOPERATIONS => warning = Some(us(value)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(Response {
        field: field.ok_or(DimseError::Command("no Command Field"))?,
        responding_to: responding_to
            .ok_or(DimseError::Command("no Message ID Being Responded To"))?,
        status: status.ok_or(DimseError::Command("no Status"))?,
        has_data_set: data_set_type.ok_or(DimseError::Command("no Command Data Set Type"))?
            != NO_DATA_SET,
        remaining,
        completed,
        failed,
        warning,
    })
}

/// A C-FIND-RQ or C-MOVE-RQ command set (an identifier data set follows), Implicit VR Little
/// Endian. `move_destination` is required for C-MOVE and must be `None` otherwise.
pub(crate) fn request(
    field: u16,
    message_id: u16,
    sop_class: &Uid,
    move_destination: Option<&AeTitle>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    // Elements in ascending tag order, as PS3.5 7.1 requires.
    put(&mut body, tags::AFFECTED_SOP_CLASS_UID, &padded(sop_class.as_str().as_bytes(), 0));
    put(&mut body, tags::COMMAND_FIELD, &field.to_le_bytes());
    put(&mut body, tags::MESSAGE_ID, &message_id.to_le_bytes());
    if let Some(ae) = move_destination {
        // AE: padded with spaces to even length (16 at most, so no trailing pad is lost).
        put(&mut body, tags::MOVE_DESTINATION, &padded(ae.as_str().as_bytes(), b' '));
    }
    put(&mut body, tags::PRIORITY, &PRIORITY_MEDIUM.to_le_bytes());
    put(&mut body, tags::COMMAND_DATA_SET_TYPE, &DATA_SET_PRESENT.to_le_bytes());
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, tags::COMMAND_GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A response command set (C-STORE-RSP or C-ECHO-RSP), Implicit VR Little Endian.
pub(crate) fn response(
    field: u16,
    responding_to: u16,
    sop_class: Option<&Uid>,
    sop_instance: Option<&Uid>,
    status: Status,
    comment: Option<&'static str>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    // Elements in ascending tag order, as PS3.5 7.1 requires.
    if let Some(uid) = sop_class {
        put(&mut body, tags::AFFECTED_SOP_CLASS_UID, &padded(uid.as_str().as_bytes(), 0));
    }
    put(&mut body, tags::COMMAND_FIELD, &field.to_le_bytes());
    put(&mut body, tags::MESSAGE_ID_BEING_RESPONDED_TO, &responding_to.to_le_bytes());
    put(&mut body, tags::COMMAND_DATA_SET_TYPE, &NO_DATA_SET.to_le_bytes());
    put(&mut body, tags::STATUS, &status.code().to_le_bytes());
    if let Some(text) = comment {
        // LO: at most 64 characters, padded with a space.
        let text = &text.as_bytes()[..text.len().min(64)];
        put(&mut body, tags::ERROR_COMMENT, &padded(text, b' '));
    }
    if let Some(uid) = sop_instance {
        put(&mut body, tags::AFFECTED_SOP_INSTANCE_UID, &padded(uid.as_str().as_bytes(), 0));
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, tags::COMMAND_GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn put(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    out.extend_from_slice(&tag.group().to_le_bytes());
    out.extend_from_slice(&tag.element().to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn padded(value: &[u8], pad: u8) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

/// Whether we can parse data sets in this transfer syntax (encapsulated pixel data is read
/// as fragments, without a codec).
pub(crate) fn can_read(ts: &str) -> bool {
    TransferSyntaxRegistry.get(ts).is_some_and(|t| !t.is_unsupported())
}

/// In implicit VR, the VR dicom-rs reads a tag with (sequence or not, size of binary
/// values): its decoder takes the standard dictionary's VR (relaxed), so the structure
/// check must too.
fn dictionary_vr(tag: ElementTag) -> Option<[u8; 2]> {
    StandardDataDictionary.by_tag(Tag(tag.group, tag.element)).map(|e| e.vr().relaxed().to_bytes())
}

/// The structure check of a data set in transfer syntax `ts`, run before dicom-object ever
/// sees the bytes (nesting depth, element count, lengths, delimiters; no recursion).
pub(crate) fn check_structure(ts: &str, data: &[u8], limits: Limits) -> Result<(), DimseError> {
    // Deflated syntaxes are never negotiated (`can_read`); their bytes are not headers.
    let encoding = Encoding::of_transfer_syntax(ts)
        .ok_or(DimseError::Dataset("deflated data set not read"))?;
    dicom_structure::scan_data_set_typed(data, 0, encoding, limits, &dictionary_vr)
        .map(|_| ())
        .map_err(|e| DimseError::Structure(e.defect))
}

/// Checks the structure, parses the data set in full and checks that it is the object its
/// command announced. Blocking and CPU-bound for large objects: call it off the async
/// runtime.
pub(crate) fn check_data_set(
    ts: &Uid,
    data: &[u8],
    sop_class: &Uid,
    sop_instance: &Uid,
) -> Result<(), DimseError> {
    let Some(syntax) = TransferSyntaxRegistry.get(ts.as_str()) else {
        return Err(DimseError::Dataset("transfer syntax unknown"));
    };
    check_structure(ts.as_str(), data, Limits::OBJECT)?;
    // The parser's own error text can quote element contents, so it is dropped here.
    let obj = InMemDicomObject::read_dataset_with_ts(data, syntax)
        .map_err(|_| DimseError::Unparseable)?;
    let uid = |tag, missing| -> Result<Uid, DimseError> {
        let e = obj.element_opt(tag).ok().flatten().ok_or(DimseError::Dataset(missing))?;
        let s = e.to_str().map_err(|_| DimseError::Dataset(missing))?;
        Uid::new(s.as_ref()).map_err(|_| DimseError::Dataset(missing))
    };
    if &uid(tags::SOP_CLASS_UID, "no valid SOP Class UID")? != sop_class {
        return Err(DimseError::Mismatch("SOP Class UID"));
    }
    if &uid(tags::SOP_INSTANCE_UID, "no valid SOP Instance UID")? != sop_instance {
        return Err(DimseError::Mismatch("SOP Instance UID"));
    }
    Ok(())
}

/// The checks a received C-STORE data set goes through before the sink sees it (structure,
/// parse, SOP class and instance against the command's), on bytes alone: the entry point of
/// the `dicom_structure` fuzz target and of the mutation tests. `Err` is the fixed reason the
/// C-STORE would be refused with (a [`Defect::code`] for structure defects).
pub fn check_received(
    transfer_syntax: &Uid,
    data: &[u8],
    sop_class: &Uid,
    sop_instance: &Uid,
) -> Result<(), &'static str> {
    check_data_set(transfer_syntax, data, sop_class, sop_instance).map_err(|e| e.reason())
}

/// Preamble, `DICM`, the file meta group, then the data set bytes as received.
pub(crate) fn part10(
    ts: &Uid,
    sop_class: &Uid,
    sop_instance: &Uid,
    sending: &AeTitle,
    receiving: &AeTitle,
    mut data: Vec<u8>,
) -> Result<Vec<u8>, DimseError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class.as_str())
        .media_storage_sop_instance_uid(sop_instance.as_str())
        .transfer_syntax(ts.as_str())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(receiving.as_str())
        .sending_application_entity_title(sending.as_str())
        .receiving_application_entity_title(receiving.as_str())
        .build()
        .map_err(|_| DimseError::FileMeta)?;
    let mut head = Vec::with_capacity(132 + 256);
    head.extend_from_slice(&[0u8; 128]);
    head.extend_from_slice(b"DICM");
    meta.write(&mut head).map_err(|_| DimseError::FileMeta)?;
    // Shifted in place rather than copied: the data set can be hundreds of megabytes.
    data.splice(0..0, head);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::OpenFileOptions;

    fn uid(s: &str) -> Uid {
        Uid::new(s).unwrap()
    }

    fn store_rq(with_data_set: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put(
            &mut body,
            tags::AFFECTED_SOP_CLASS_UID,
            &padded(uids::SECONDARY_CAPTURE_IMAGE_STORAGE.as_bytes(), 0),
        );
        put(&mut body, tags::COMMAND_FIELD, &C_STORE_RQ.to_le_bytes());
        put(&mut body, tags::MESSAGE_ID, &7u16.to_le_bytes());
        put(&mut body, tags::PRIORITY, &0u16.to_le_bytes());
        let dst: u16 = if with_data_set { 0x0000 } else { NO_DATA_SET };
        put(&mut body, tags::COMMAND_DATA_SET_TYPE, &dst.to_le_bytes());
        put(&mut body, tags::AFFECTED_SOP_INSTANCE_UID, &padded(b"1.2.3.4.5", 0));
        let mut out = Vec::new();
        put(&mut out, tags::COMMAND_GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn parses_a_store_request() {
        let c = parse_command(&store_rq(true)).unwrap();
        assert_eq!(c.field, C_STORE_RQ);
        assert_eq!(c.message_id, 7);
        assert_eq!(c.sop_class, Some(uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)));
        assert_eq!(c.sop_instance, Some(uid("1.2.3.4.5")));
        assert!(c.has_data_set);
        assert!(!parse_command(&store_rq(false)).unwrap().has_data_set);
    }

    #[test]
    fn rejects_malformed_commands() {
        let good = store_rq(true);
        for cut in [1, 7, 20, good.len() - 1] {
            assert!(parse_command(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_len = good.clone();
        bad_len[12 + 4..12 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_command(&bad_len).is_err());
        let mut other_group = good.clone();
        other_group[0] = 8;
        assert!(parse_command(&other_group).is_err());
        assert!(parse_command(&vec![0u8; MAX_COMMAND_BYTES + 1]).is_err());
        assert!(matches!(parse_command(&[]), Err(DimseError::Command("no Command Field"))));
    }

    #[test]
    fn response_round_trips() {
        let rsp = response(
            C_STORE_RSP,
            7,
            Some(&uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)),
            Some(&uid("1.2.3.4.5")),
            Status::OutOfResources,
            Some("store unavailable"),
        );
        let mut found = Vec::new();
        let mut rest = rsp.as_slice();
        while !rest.is_empty() {
            assert_eq!(&rest[..2], &[0, 0]);
            let element = u16::from_le_bytes([rest[2], rest[3]]);
            let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
            found.push((element, rest[8..8 + len].to_vec()));
            rest = &rest[8 + len..];
        }
        let tags: Vec<u16> = found.iter().map(|(e, _)| *e).collect();
        assert_eq!(tags, [0x0000, 0x0002, 0x0100, 0x0120, 0x0800, 0x0900, 0x0902, 0x1000]);
        // Group length counts everything after itself; values have even lengths.
        assert_eq!(found[0].1, ((rsp.len() - 12) as u32).to_le_bytes());
        assert!(found.iter().all(|(_, v)| v.len() % 2 == 0));
        assert_eq!(found[2].1, C_STORE_RSP.to_le_bytes());
        assert_eq!(found[3].1, 7u16.to_le_bytes());
        assert_eq!(found[5].1, 0xA700u16.to_le_bytes());
        assert_eq!(found[7].1, b"1.2.3.4.5\0");
    }

    #[test]
    fn request_and_response_round_trip() {
        let class = uid(uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE);
        let dest = AeTitle::new("FGW").unwrap();
        let rq = request(C_MOVE_RQ, 9, &class, Some(&dest));
        let c = parse_command(&rq).unwrap();
        assert_eq!((c.field, c.message_id, c.has_data_set), (C_MOVE_RQ, 9, true));
        assert_eq!(c.sop_class, Some(class.clone()));
        assert!(contains(&rq, b"FGW "), "move destination padded to even length");
        assert_eq!(u32::from_le_bytes(rq[8..12].try_into().unwrap()) as usize, rq.len() - 12);

        // A C-MOVE-RSP as an archive writes it: pending with sub-operation counts.
        let mut body = Vec::new();
        put(&mut body, tags::AFFECTED_SOP_CLASS_UID, &padded(class.as_str().as_bytes(), 0));
        put(&mut body, tags::COMMAND_FIELD, &C_MOVE_RSP.to_le_bytes());
        put(&mut body, tags::MESSAGE_ID_BEING_RESPONDED_TO, &9u16.to_le_bytes());
        put(&mut body, tags::COMMAND_DATA_SET_TYPE, &NO_DATA_SET.to_le_bytes());
        put(&mut body, tags::STATUS, &0xFF00u16.to_le_bytes());
        put(&mut body, tags::ERROR_COMMENT, b"free text");
        put(&mut body, tags::NUMBER_OF_REMAINING_SUBOPERATIONS, &3u16.to_le_bytes());
        put(&mut body, tags::NUMBER_OF_COMPLETED_SUBOPERATIONS, &1u16.to_le_bytes());
        put(&mut body, tags::NUMBER_OF_FAILED_SUBOPERATIONS, &0u16.to_le_bytes());
        put(&mut body, tags::NUMBER_OF_WARNING_SUBOPERATIONS, &0u16.to_le_bytes());
        let r = parse_response(&body).unwrap();
        assert!(r.is_pending() && !r.has_data_set);
        assert_eq!((r.field, r.responding_to, r.status), (C_MOVE_RSP, 9, 0xFF00));
        assert_eq!(
            (r.remaining, r.completed, r.failed, r.warning),
            (Some(3), Some(1), Some(0), Some(0))
        );
        // A request is not a response, and a response is not a request.
        assert!(parse_response(&rq).is_err());
        assert!(parse_command(&body).is_err());
        for cut in [1, 7, body.len() - 1] {
            assert!(parse_response(&body[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn data_set(ts: &str) -> Vec<u8> {
        let obj = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
            ),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.3.4.5")),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("Yamada^Taro")),
        ]);
        let mut out = Vec::new();
        obj.write_dataset_with_ts(&mut out, TransferSyntaxRegistry.get(ts).unwrap()).unwrap();
        out
    }

    #[test]
    fn checks_data_sets() {
        let (sc, inst) = (uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE), uid("1.2.3.4.5"));
        for ts in [uids::EXPLICIT_VR_LITTLE_ENDIAN, uids::IMPLICIT_VR_LITTLE_ENDIAN] {
            let ts = uid(ts);
            let good = data_set(ts.as_str());
            check_data_set(&ts, &good, &sc, &inst).unwrap();
            let e = check_data_set(&ts, &good[..good.len() - 3], &sc, &inst).unwrap_err();
            assert_eq!(e.status(), Status::CannotUnderstand);
            assert!(!e.to_string().contains("Yamada"));
            let e = check_data_set(&ts, &good, &sc, &uid("1.2.3.4.6")).unwrap_err();
            assert_eq!(e, DimseError::Mismatch("SOP Instance UID"));
            assert_eq!(e.status(), Status::DatasetMismatch);
        }
        // A length running past the end of the data set (the PN element, explicit VR).
        let ts = uid(uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let mut bad = data_set(ts.as_str());
        let pn = bad.windows(2).position(|w| w == b"PN").unwrap();
        bad[pn + 2..pn + 4].copy_from_slice(&0x4000u16.to_le_bytes());
        let e = check_data_set(&ts, &bad, &sc, &inst).unwrap_err();
        assert!(matches!(e, DimseError::Structure(Defect::LengthBeyondEnd { .. })), "{e:?}");
        assert_eq!((e.status(), e.reason()), (Status::CannotUnderstand, "length-beyond-end"));
    }

    /// Nested sequences beyond the limit never reach dicom-object (whose read recurses per
    /// level); at the limit they parse.
    #[test]
    fn nesting_is_checked_before_the_parse() {
        let (sc, inst) = (uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE), uid("1.2.3.4.5"));
        for ts in [uids::EXPLICIT_VR_LITTLE_ENDIAN, uids::IMPLICIT_VR_LITTLE_ENDIAN] {
            let ts = uid(ts);
            let nested = |levels: usize| {
                let mut d = data_set(ts.as_str());
                let explicit = ts.as_str() == uids::EXPLICIT_VR_LITTLE_ENDIAN;
                for _ in 0..levels {
                    d.extend_from_slice(&[0x40, 0x00, 0x30, 0xA7]);
                    if explicit {
                        d.extend_from_slice(b"SQ\0\0");
                    }
                    d.extend_from_slice(&u32::MAX.to_le_bytes());
                    d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
                }
                for _ in 0..levels {
                    d.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
                    d.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
                }
                d
            };
            let limit = fgw_format::dicom_structure::MAX_DEPTH;
            check_data_set(&ts, &nested(limit), &sc, &inst).unwrap();
            for levels in [limit + 1, 2_000] {
                let e = check_data_set(&ts, &nested(levels), &sc, &inst).unwrap_err();
                assert_eq!(e, DimseError::Structure(Defect::TooDeep(limit)), "{ts:?} {levels}");
                assert_eq!(e.reason(), "nesting-too-deep");
                assert_eq!(e.status(), Status::CannotUnderstand);
            }
        }
    }

    #[test]
    fn part10_reads_back() {
        let ts = uid(uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let (sc, inst) = (uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE), uid("1.2.3.4.5"));
        let ae = |s: &str| AeTitle::new(s).unwrap();
        let file =
            part10(&ts, &sc, &inst, &ae("ENDO1"), &ae("FGW"), data_set(ts.as_str())).unwrap();
        assert_eq!(&file[128..132], b"DICM");
        let obj = OpenFileOptions::new().from_reader(&file[128..]).unwrap();
        assert_eq!(obj.meta().transfer_syntax(), ts.as_str());
        assert_eq!(obj.meta().media_storage_sop_instance_uid(), inst.as_str());
        assert_eq!(obj.meta().sending_application_entity_title(), Some("ENDO1"));
        assert_eq!(obj.element(tags::PATIENT_NAME).unwrap().to_str().unwrap(), "Yamada^Taro");
    }
}
