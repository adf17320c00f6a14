//! The associations with the archive: one for the C-FIND of a window, one per C-MOVE.
//!
//! A fresh association per study costs a TCP handshake and keeps the pause between studies
//! out of any association (archives drop idle ones after ~30 s). One DIMSE operation at a
//! time, Implicit or Explicit VR Little Endian for the identifiers, which every archive
//! supports.

use super::{STUDY_ROOT_FIND, STUDY_ROOT_MOVE};
use crate::dicom_scp::dimse::{self, DimseError, Response};
use crate::dicom_scp::ul_reason;
use crate::dicom_scp::{AeTitle, Uid, EXPLICIT_VR_LE, IMPLICIT_VR_LE};
use chrono::NaiveDate;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::client::{AsyncClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use dicom_ul::Pdu;
use fgw_format::dicom_structure::Limits;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;
use tokio::net::TcpStream;

/// Largest PDU we accept from the archive.
const MAX_PDU: u32 = 65_536;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two PDUs. A C-MOVE sends a pending response after each sub-operation, so this
/// bounds one object's transfer, not a whole study's.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest C-FIND identifier we read; ours ask for four short attributes.
const MAX_IDENTIFIER_BYTES: usize = 1024 * 1024;
/// A window with more matches than this is refused rather than held in memory (and the
/// operator told to shorten `window_days`).
pub(crate) const MAX_STUDIES_PER_WINDOW: usize = 10_000;

/// Why a pull step failed. Context is AE titles, host, port, window dates, counts and DIMSE
/// status codes; never a value the archive returned.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum PullError {
    #[error("archive {called_ae} at {host}:{port}: association as {calling_ae} failed: {reason}")]
    Associate {
        calling_ae: AeTitle,
        called_ae: AeTitle,
        host: String,
        port: u16,
        reason: &'static str,
    },
    #[error("archive {called_ae}: {service} not accepted (presentation context refused)")]
    NotAccepted { called_ae: AeTitle, service: &'static str },
    #[error("archive {called_ae}: {service}: {reason}")]
    Protocol { called_ae: AeTitle, service: &'static str, reason: &'static str },
    /// A response data set refused by the structure check before any parse.
    #[error("archive {called_ae}: {service}: response identifier refused: {reason}")]
    Identifier { called_ae: AeTitle, service: &'static str, reason: &'static str },
    #[error("archive {called_ae}: C-FIND {from}..={to} ended with status {status:#06X}")]
    FindFailed { called_ae: AeTitle, from: NaiveDate, to: NaiveDate, status: u16 },
    #[error(
        "archive {called_ae}: C-FIND {from}..={to} matched more than {limit} studies; \
         lower dicom_pull.window_days"
    )]
    TooManyStudies { called_ae: AeTitle, from: NaiveDate, to: NaiveDate, limit: usize },
    #[error(
        "archive {called_ae}: C-MOVE to {destination} ended with status {status:#06X} \
         (completed {completed}, failed {failed}, warning {warning})"
    )]
    MoveFailed {
        called_ae: AeTitle,
        destination: AeTitle,
        status: u16,
        completed: u16,
        failed: u16,
        warning: u16,
    },
    #[error("state database: {0}")]
    State(#[from] super::watermark::StoreError),
    #[error("gateway stopping")]
    Stopped,
}

/// One C-FIND match. `Debug` hides the UID.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StudyHit {
    pub uid: Uid,
    /// `None` when the archive returned no readable StudyDate.
    pub date: Option<NaiveDate>,
    /// NumberOfStudyRelatedInstances, when the archive supports it.
    pub instances: Option<u32>,
}

impl fmt::Debug for StudyHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StudyHit")
            .field("uid", &"<redacted>")
            .field("date", &self.date)
            .field("instances", &self.instances)
            .finish()
    }
}

/// Sub-operation counts of a successful C-MOVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Moved {
    pub completed: u16,
    pub warning: u16,
}

/// Where and as whom to associate.
#[derive(Debug, Clone)]
pub(crate) struct Scu {
    pub calling_ae: AeTitle,
    pub called_ae: AeTitle,
    pub host: String,
    pub port: u16,
    /// C-MOVE destination: our own SCP's AE title.
    pub destination: AeTitle,
}

type Assoc = AsyncClientAssociation<TcpStream>;

/// An established association with its one accepted presentation context, and PDVs read
/// but not yet consumed (one P-DATA PDU may carry the end of a command and a data set).
struct Link {
    assoc: Assoc,
    pc: u8,
    ts: &'static str,
    pending: VecDeque<PDataValue>,
    service: &'static str,
}

impl Scu {
    fn protocol(&self, service: &'static str, reason: &'static str) -> PullError {
        PullError::Protocol { called_ae: self.called_ae.clone(), service, reason }
    }

    async fn associate(
        &self,
        abstract_syntax: &str,
        service: &'static str,
    ) -> Result<Link, PullError> {
        let opts = ClientAssociationOptions::new()
            .calling_ae_title(self.calling_ae.as_str())
            .called_ae_title(self.called_ae.as_str())
            .with_presentation_context(abstract_syntax, vec![EXPLICIT_VR_LE, IMPLICIT_VR_LE])
            .max_pdu_length(MAX_PDU)
            .connection_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .write_timeout(WRITE_TIMEOUT);
        let assoc = opts.establish_async((self.host.as_str(), self.port)).await.map_err(|e| {
            PullError::Associate {
                calling_ae: self.calling_ae.clone(),
                called_ae: self.called_ae.clone(),
                host: self.host.clone(),
                port: self.port,
                reason: ul_reason(&e),
            }
        })?;
        let accepted = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_string()));
        let Some((pc, ts)) = accepted else {
            let _ = assoc.abort().await;
            return Err(PullError::NotAccepted { called_ae: self.called_ae.clone(), service });
        };
        let ts = match ts.as_str() {
            EXPLICIT_VR_LE => EXPLICIT_VR_LE,
            IMPLICIT_VR_LE => IMPLICIT_VR_LE,
            _ => {
                let _ = assoc.abort().await;
                return Err(self.protocol(service, "archive chose a transfer syntax not proposed"));
            }
        };
        Ok(Link { assoc, pc, ts, pending: VecDeque::new(), service })
    }

    /// C-FIND at STUDY level for `from..=to` (StudyDate range matching). Asks only for what
    /// the pull needs; whatever else the archive adds is never read.
    pub(crate) async fn find_studies(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<StudyHit>, PullError> {
        let mut link = self.associate(STUDY_ROOT_FIND, "C-FIND").await?;
        let range = format!("{}-{}", from.format("%Y%m%d"), to.format("%Y%m%d"));
        let identifier = InMemDicomObject::from_element_iter([
            DataElement::new(tags::QUERY_RETRIEVE_LEVEL, VR::CS, PrimitiveValue::from("STUDY")),
            DataElement::new(tags::STUDY_DATE, VR::DA, PrimitiveValue::from(range)),
            DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, PrimitiveValue::Empty),
            DataElement::new(
                tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                VR::IS,
                PrimitiveValue::Empty,
            ),
        ]);
        let result = async {
            let class = Uid::new(STUDY_ROOT_FIND).expect("built-in UID");
            link.send_request(dimse::C_FIND_RQ, &class, None, &identifier, self).await?;
            let mut hits = Vec::new();
            loop {
                let (rsp, data) = link.receive(self).await?;
                if rsp.field != dimse::C_FIND_RSP || rsp.responding_to != 1 {
                    return Err(self.protocol("C-FIND", "response does not answer the request"));
                }
                if !rsp.is_pending() {
                    if rsp.status != 0x0000 {
                        return Err(PullError::FindFailed {
                            called_ae: self.called_ae.clone(),
                            from,
                            to,
                            status: rsp.status,
                        });
                    }
                    return Ok(hits);
                }
                let Some(data) = data else {
                    return Err(self.protocol("C-FIND", "pending response without identifier"));
                };
                if hits.len() >= MAX_STUDIES_PER_WINDOW {
                    return Err(PullError::TooManyStudies {
                        called_ae: self.called_ae.clone(),
                        from,
                        to,
                        limit: MAX_STUDIES_PER_WINDOW,
                    });
                }
                match parse_hit(&data, link.ts) {
                    Ok(hit) => hits.push(hit),
                    Err(HitError::Structure(reason)) => {
                        let called_ae = self.called_ae.clone();
                        return Err(PullError::Identifier { called_ae, service: "C-FIND", reason });
                    }
                    Err(HitError::NoStudy) => {
                        return Err(
                            self.protocol("C-FIND", "match without a valid StudyInstanceUID")
                        )
                    }
                }
            }
        }
        .await;
        link.finish(result.is_ok()).await;
        result
    }

    /// C-MOVE of one study to our SCP. Success only when the archive's final status is
    /// Success (0x0000): a Warning (some objects failed) leaves the window open so it is
    /// retried.
    pub(crate) async fn move_study(&self, study: &Uid) -> Result<Moved, PullError> {
        let mut link = self.associate(STUDY_ROOT_MOVE, "C-MOVE").await?;
        let identifier = InMemDicomObject::from_element_iter([
            DataElement::new(tags::QUERY_RETRIEVE_LEVEL, VR::CS, PrimitiveValue::from("STUDY")),
            DataElement::new(
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(study.as_str()),
            ),
        ]);
        let result = async {
            let class = Uid::new(STUDY_ROOT_MOVE).expect("built-in UID");
            let dest = Some(&self.destination);
            link.send_request(dimse::C_MOVE_RQ, &class, dest, &identifier, self).await?;
            loop {
                // A pending response may carry no identifier; a final failure may carry the
                // list of failed instance UIDs, which is not read.
                let (rsp, _) = link.receive(self).await?;
                if rsp.field != dimse::C_MOVE_RSP || rsp.responding_to != 1 {
                    return Err(self.protocol("C-MOVE", "response does not answer the request"));
                }
                if rsp.is_pending() {
                    continue;
                }
                let completed = rsp.completed.unwrap_or(0);
                let failed = rsp.failed.unwrap_or(0);
                let warning = rsp.warning.unwrap_or(0);
                if rsp.status == 0x0000 && failed == 0 {
                    return Ok(Moved { completed, warning });
                }
                return Err(PullError::MoveFailed {
                    called_ae: self.called_ae.clone(),
                    destination: self.destination.clone(),
                    status: rsp.status,
                    completed,
                    failed,
                    warning,
                });
            }
        }
        .await;
        link.finish(result.is_ok()).await;
        result
    }
}

/// Why a C-FIND match was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HitError {
    /// Refused by the structure check (the defect's code), before any parse.
    Structure(&'static str),
    /// Unparseable, or no valid StudyInstanceUID in it.
    NoStudy,
}

/// One C-FIND match: the structure check first (dicom-object's read recurses per sequence
/// level, so a deeply nested identifier would overflow the stack and abort the daemon), then
/// the parse, then the three attributes asked for.
fn parse_hit(data: &[u8], ts: &str) -> Result<StudyHit, HitError> {
    let syntax = TransferSyntaxRegistry.get(ts).ok_or(HitError::NoStudy)?;
    dimse::check_structure(ts, data, Limits::IDENTIFIER).map_err(|e| match e {
        DimseError::Structure(d) => HitError::Structure(d.code()),
        _ => HitError::Structure("deflated"),
    })?;
    // The parser's errors can quote values: only "no hit" is kept.
    let obj =
        InMemDicomObject::read_dataset_with_ts(data, syntax).map_err(|_| HitError::NoStudy)?;
    let text = |tag| -> Option<String> {
        let e = obj.element_opt(tag).ok().flatten()?;
        e.to_str().ok().map(|s| s.trim_matches(['\0', ' ']).to_string())
    };
    let uid =
        text(tags::STUDY_INSTANCE_UID).and_then(|u| Uid::new(u).ok()).ok_or(HitError::NoStudy)?;
    let date = text(tags::STUDY_DATE).and_then(|d| NaiveDate::parse_from_str(&d, "%Y%m%d").ok());
    let instances = text(tags::NUMBER_OF_STUDY_RELATED_INSTANCES).and_then(|n| n.parse().ok());
    Ok(StudyHit { uid, date, instances })
}

/// How a C-FIND response identifier is read (structure check, parse, the attributes asked
/// for), on bytes alone: the entry point of the `dicom_structure` fuzz target and of the
/// mutation tests. `Err` is the fixed reason the pull would stop the window with.
pub fn read_find_match(data: &[u8], transfer_syntax: &str) -> Result<(), &'static str> {
    match parse_hit(data, transfer_syntax) {
        Ok(_) => Ok(()),
        Err(HitError::Structure(code)) => Err(code),
        Err(HitError::NoStudy) => Err("match without a valid StudyInstanceUID"),
    }
}

impl Link {
    async fn send_request(
        &mut self,
        field: u16,
        class: &Uid,
        destination: Option<&AeTitle>,
        identifier: &InMemDicomObject,
        scu: &Scu,
    ) -> Result<(), PullError> {
        let command = dimse::request(field, 1, class, destination);
        let syntax = TransferSyntaxRegistry.get(self.ts).expect("registered transfer syntax");
        let mut data = Vec::new();
        identifier
            .write_dataset_with_ts(&mut data, syntax)
            .map_err(|_| scu.protocol(self.service, "identifier could not be encoded"))?;
        for (value_type, bytes) in
            [(PDataValueType::Command, command), (PDataValueType::Data, data)]
        {
            let pdu = Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: self.pc,
                    value_type,
                    is_last: true,
                    data: bytes,
                }],
            };
            self.assoc.send(&pdu).await.map_err(|e| scu.protocol(self.service, ul_reason(&e)))?;
        }
        Ok(())
    }

    async fn next_pdv(&mut self, scu: &Scu) -> Result<PDataValue, PullError> {
        loop {
            if let Some(pdv) = self.pending.pop_front() {
                if pdv.presentation_context_id != self.pc {
                    return Err(scu.protocol(self.service, "PDV on another presentation context"));
                }
                return Ok(pdv);
            }
            match self.assoc.receive().await {
                Ok(Pdu::PData { data }) => self.pending.extend(data),
                Ok(Pdu::AbortRQ { .. }) => {
                    return Err(scu.protocol(self.service, "association aborted by archive"))
                }
                Ok(_) => return Err(scu.protocol(self.service, "unexpected PDU")),
                Err(e) => return Err(scu.protocol(self.service, ul_reason(&e))),
            }
        }
    }

    /// One response: its command set, and its data set if it announces one.
    async fn receive(&mut self, scu: &Scu) -> Result<(Response, Option<Vec<u8>>), PullError> {
        let mut command = Vec::new();
        loop {
            let pdv = self.next_pdv(scu).await?;
            if pdv.value_type != PDataValueType::Command {
                return Err(scu.protocol(self.service, "data fragment where a command was due"));
            }
            command.extend_from_slice(&pdv.data);
            if command.len() > dimse::MAX_COMMAND_BYTES {
                return Err(scu.protocol(self.service, "command set too large"));
            }
            if pdv.is_last {
                break;
            }
        }
        let rsp = dimse::parse_response(&command)
            .map_err(|_| scu.protocol(self.service, "unreadable response command set"))?;
        if !rsp.has_data_set {
            return Ok((rsp, None));
        }
        let mut data = Vec::new();
        loop {
            let pdv = self.next_pdv(scu).await?;
            if pdv.value_type != PDataValueType::Data {
                return Err(scu.protocol(self.service, "command fragment where data was due"));
            }
            data.extend_from_slice(&pdv.data);
            if data.len() > MAX_IDENTIFIER_BYTES {
                return Err(scu.protocol(self.service, "response data set too large"));
            }
            if pdv.is_last {
                return Ok((rsp, Some(data)));
            }
        }
    }

    /// Release after a completed exchange; abort after a failed one (the archive may still
    /// be sending).
    async fn finish(self, ok: bool) {
        if ok {
            let _ = self.assoc.release().await;
        } else {
            let _ = self.assoc.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(out: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], value: &[u8]) {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(vr);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }

    fn raw(out: &mut Vec<u8>, g: u16, e: u16, len: u32) {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }

    /// A C-FIND match as an archive returns it, with `levels` nested sequences of
    /// undefined length after the three attributes asked for.
    fn identifier(ts: &str, levels: usize) -> Vec<u8> {
        let implicit = ts == IMPLICIT_VR_LE;
        let mut d = Vec::new();
        let el = |d: &mut Vec<u8>, g, e, vr: &[u8; 2], v: &[u8]| {
            if implicit {
                raw(d, g, e, v.len() as u32);
                d.extend_from_slice(v);
            } else {
                explicit(d, g, e, vr, v);
            }
        };
        el(&mut d, 0x0008, 0x0020, b"DA", b"20240301");
        el(&mut d, 0x0008, 0x0052, b"CS", b"STUDY ");
        el(&mut d, 0x0020, 0x000D, b"UI", b"1.2.392.999.5\0");
        el(&mut d, 0x0020, 0x1208, b"IS", b"12");
        for _ in 0..levels {
            if implicit {
                raw(&mut d, 0x0040, 0xA730, u32::MAX);
            } else {
                d.extend_from_slice(&[0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0]);
                d.extend_from_slice(&u32::MAX.to_le_bytes());
            }
            raw(&mut d, 0xFFFE, 0xE000, u32::MAX);
        }
        for _ in 0..levels {
            raw(&mut d, 0xFFFE, 0xE00D, 0);
            raw(&mut d, 0xFFFE, 0xE0DD, 0);
        }
        d
    }

    #[test]
    fn a_match_is_read() {
        for ts in [EXPLICIT_VR_LE, IMPLICIT_VR_LE] {
            let hit = parse_hit(&identifier(ts, 2), ts).unwrap();
            assert_eq!(hit.uid.as_str(), "1.2.392.999.5");
            assert_eq!(hit.date, NaiveDate::from_ymd_opt(2024, 3, 1));
            assert_eq!(hit.instances, Some(12));
        }
    }

    /// A C-FIND response identifier with 2,000 nested sequences: before the structure check
    /// it went straight to dicom-object's recursive read, which overflowed the stack and
    /// aborted the gateway. Now it is refused with the reason code, before any parse.
    #[test]
    fn a_deeply_nested_match_is_refused_before_parsing() {
        for ts in [EXPLICIT_VR_LE, IMPLICIT_VR_LE] {
            let deep = identifier(ts, 2_000);
            assert_eq!(parse_hit(&deep, ts), Err(HitError::Structure("nesting-too-deep")));
            assert_eq!(read_find_match(&deep, ts), Err("nesting-too-deep"));
            // Within the identifier limit it is read.
            let limit = Limits::IDENTIFIER.max_depth;
            assert!(parse_hit(&identifier(ts, limit), ts).is_ok());
            let over = parse_hit(&identifier(ts, limit + 1), ts);
            assert_eq!(over, Err(HitError::Structure("nesting-too-deep")));
        }
        let e = PullError::Identifier {
            called_ae: AeTitle::new("ARCHIVE").unwrap(),
            service: "C-FIND",
            reason: "nesting-too-deep",
        };
        assert_eq!(
            e.to_string(),
            "archive ARCHIVE: C-FIND: response identifier refused: nesting-too-deep"
        );
    }
}
