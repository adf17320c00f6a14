//! The listener's handling of untrusted bytes without a socket or a sink, for the fuzz
//! targets (`hl7_message`, `mllp_frame`) and the stable mutation test: the same deframer,
//! decoder, ORU mapping and ACK builder a connection uses, with the listener's limits.

use super::ack::ReplyHeader;
use super::message;
use super::mllp::{Frame, Framer, MllpError};
use super::oru::reports_from_oru;
use super::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use fgw_records::RawReport;

/// One frame from [`deframe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deframed {
    /// A frame's content (at most [`MAX_MESSAGE_BYTES`]).
    Message(Vec<u8>),
    /// A frame over [`MAX_MESSAGE_BYTES`] (answered AR): its first bytes and full length.
    Oversize {
        /// The first bytes kept to answer it (its MSH).
        head: Vec<u8>,
        /// Its length.
        len: usize,
    },
}

/// `chunks` as successive reads of one connection through the MLLP deframer → the frames
/// completed, and the error that would close the connection, if one.
pub fn deframe<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Deframed>, Option<MllpError>) {
    let mut framer = Framer::new(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES);
    let mut frames = Vec::new();
    let mut closed = None;
    for chunk in chunks {
        if let Err(e) = framer.push(chunk, &mut frames) {
            closed = Some(e);
            break;
        }
    }
    let out = frames
        .into_iter()
        .map(|f| match f {
            Frame::Message(b) => Deframed::Message(b),
            Frame::Oversize { head, len } => Deframed::Oversize { head, len },
        })
        .collect();
    (out, closed)
}

/// One frame's content → the ACK bytes it gets back and the reports it holds (`Err`: the
/// NAK's text, positions and fixed words only).
pub fn parse_message(bytes: &[u8]) -> (Vec<u8>, Result<Vec<RawReport>, String>) {
    let (header, outcome) = match message::decode(bytes) {
        Err(e) => (ReplyHeader::salvage(bytes), Err(e.nak())),
        Ok(msg) => {
            let header = ReplyHeader::from_message(&msg);
            (header, reports_from_oru(&msg, "bytes").map_err(|e| e.nak()))
        }
    };
    let ack = header.ack(outcome.as_ref().err(), "1", "20260101000000+0900");
    (ack, outcome.map_err(|nak| nak.text))
}
