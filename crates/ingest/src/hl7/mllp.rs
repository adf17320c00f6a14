//! MLLP over TCP: `0x0B message 0x1C 0x0D` frames, several per connection, one reply each.
//!
//! The AA goes back only after the sink accepted every report of the message, so a crash
//! before that leaves the sender to retry; a sink failure gets AE (retry later).

use super::ack::{AckCode, Hl7ErrorCode, Nak, ReplyHeader};
use super::message::{self, ParseError};
use super::oru::reports_from_oru;
use super::{
    Hl7Config, PeerPolicy, ReportSink, SinkError, Timeouts, MAX_CONNECTIONS, MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
};
use crate::listener::{accept_loop, stopped, Conn, Protocol, Service};
use fgw_records::RawReport;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Start block, end block and the carriage return after it.
pub(crate) const START_BLOCK: u8 = 0x0B;
pub(crate) const END_BLOCK: u8 = 0x1C;
const CR: u8 = 0x0D;
/// Bytes of an oversize frame kept to answer it (its MSH).
const HEAD_BYTES: usize = 4096;
/// A peer that stops reading its ACK must not hold a connection slot forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the listener could not start, or why a connection was closed.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum MllpError {
    #[error("hl7.listen {addr}: cannot listen: {source}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("MLLP frame larger than {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("more than {limit} bytes without an MLLP start block")]
    NoStartBlock { limit: usize },
}

/// A complete frame.
pub(crate) enum Frame {
    Message(Vec<u8>),
    /// Longer than the message limit but ended within the frame limit: answered with AR.
    Oversize {
        head: Vec<u8>,
        len: usize,
    },
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Message(b) => write!(f, "Frame::Message({} bytes)", b.len()),
            Frame::Oversize { len, .. } => write!(f, "Frame::Oversize({len} bytes)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Seeking,
    InFrame,
    /// Just after an end block: a CR here belongs to it.
    AfterEnd,
}

/// Incremental MLLP deframer: feed it whatever each read returned.
pub(crate) struct Framer {
    state: State,
    cur: Vec<u8>,
    len: usize,
    oversize: bool,
    garbage: usize,
    max_message: usize,
    max_frame: usize,
}

impl Framer {
    pub(crate) fn new(max_message: usize, max_frame: usize) -> Framer {
        Framer {
            state: State::Seeking,
            cur: Vec::new(),
            len: 0,
            oversize: false,
            garbage: 0,
            max_message,
            max_frame,
        }
    }

    /// True between frames with nothing of a next one read: the connection is idle.
    fn is_idle(&self) -> bool {
        self.state != State::InFrame && self.garbage == 0
    }

    fn begin(&mut self) {
        self.state = State::InFrame;
        self.cur.clear();
        self.len = 0;
        self.oversize = false;
        self.garbage = 0;
    }

    /// Appends completed frames to `out`. On `Err` the connection must be closed; frames
    /// completed before the error are still in `out`.
    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) -> Result<(), MllpError> {
        while !data.is_empty() {
            match self.state {
                State::AfterEnd => {
                    // The end block alone already ended the frame (0x1C never occurs in
                    // text of our charsets), so a missing CR does not delay the reply.
                    if data[0] == CR {
                        data = &data[1..];
                    }
                    self.state = State::Seeking;
                }
                State::Seeking => {
                    let start = data.iter().position(|&b| b == START_BLOCK);
                    self.garbage += start.unwrap_or(data.len());
                    if self.garbage > self.max_frame {
                        return Err(MllpError::NoStartBlock { limit: self.max_frame });
                    }
                    match start {
                        Some(i) => {
                            self.begin();
                            data = &data[i + 1..];
                        }
                        None => data = &[],
                    }
                }
                State::InFrame => {
                    let stop = data.iter().position(|&b| b == END_BLOCK || b == START_BLOCK);
                    let chunk = &data[..stop.unwrap_or(data.len())];
                    self.len += chunk.len();
                    if self.len > self.max_frame {
                        return Err(MllpError::FrameTooLarge { limit: self.max_frame });
                    }
                    if !self.oversize {
                        self.cur.extend_from_slice(chunk);
                        if self.len > self.max_message {
                            self.oversize = true;
                            self.cur.truncate(HEAD_BYTES);
                            self.cur.shrink_to_fit();
                        }
                    }
                    let Some(i) = stop else {
                        data = &[];
                        continue;
                    };
                    if data[i] == END_BLOCK {
                        let bytes = std::mem::take(&mut self.cur);
                        out.push(if self.oversize {
                            Frame::Oversize { head: bytes, len: self.len }
                        } else {
                            Frame::Message(bytes)
                        });
                        self.state = State::AfterEnd;
                    } else {
                        // A new start block: the sender gave up on the partial frame.
                        self.begin();
                    }
                    data = &data[i + 1..];
                }
            }
        }
        Ok(())
    }
}

/// A bound listener with its peer policy and connection time limits.
pub struct Hl7Listener {
    listener: TcpListener,
    policy: PeerPolicy,
    timeouts: Timeouts,
}

impl Hl7Listener {
    /// Binds `config.listen` whatever `config.mode` says: the caller decides whether to run.
    pub async fn bind(config: &Hl7Config) -> Result<Hl7Listener, MllpError> {
        let listener = crate::listener::bind(config.listen_addr())
            .await
            .map_err(|source| MllpError::Bind { addr: config.listen.clone(), source })?;
        Ok(Hl7Listener { listener, policy: config.peer_policy(), timeouts: config.timeouts() })
    }

    /// An already bound listener (tests bind port 0), with the default time limits.
    pub fn new(listener: TcpListener, policy: PeerPolicy) -> Hl7Listener {
        Hl7Listener { listener, policy, timeouts: Timeouts::default() }
    }

    /// The same listener with other time limits.
    pub fn with_timeouts(self, timeouts: Timeouts) -> Hl7Listener {
        Hl7Listener { timeouts, ..self }
    }

    /// The bound address (its port, when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves this listener with its peer policy and time limits, until `shutdown`.
    pub async fn serve(self, sink: impl ReportSink, shutdown: watch::Receiver<bool>) {
        serve_with(self.listener, self.policy, self.timeouts, sink, shutdown).await
    }
}

/// Returns once `shutdown` is true (or its sender is gone). Connections finish the message
/// they are handling, reply, and close. Default time limits ([`Timeouts::default`]).
pub async fn serve(
    listener: TcpListener,
    policy: PeerPolicy,
    sink: impl ReportSink,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, policy, Timeouts::default(), sink, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    policy: PeerPolicy,
    timeouts: Timeouts,
    sink: impl ReportSink,
    shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "hl7 listening");
    }
    let service = Mllp { policy, timeouts, sink: Arc::new(sink) };
    accept_loop(listener, service, shutdown).await
}

/// The MLLP side of the shared accept loop.
struct Mllp<S> {
    policy: PeerPolicy,
    timeouts: Timeouts,
    sink: Arc<S>,
}

impl<S: ReportSink> Service for Mllp<S> {
    const PROTOCOL: Protocol = Protocol::Hl7;
    const MAX_CONNECTIONS: usize = MAX_CONNECTIONS;

    fn admits(&self, peer: IpAddr) -> bool {
        self.policy.allows(peer)
    }

    fn max_connection_time(&self) -> Duration {
        self.timeouts.total
    }

    fn connection(
        &self,
        stream: TcpStream,
        peer: IpAddr,
        conn: Conn,
    ) -> impl Future<Output = ()> + Send + 'static {
        connection(stream, peer, Arc::clone(&self.sink), conn, self.timeouts.idle)
    }
}

async fn connection<S: ReportSink>(
    mut stream: TcpStream,
    peer: IpAddr,
    sink: Arc<S>,
    conn: Conn,
    idle_timeout: Duration,
) {
    let Conn { stop: mut shutdown, activity } = conn;
    let mut framer = Framer::new(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    loop {
        // Between messages the slot may be given to a new connection (this one is closed).
        if framer.is_idle() {
            activity.idle();
        }
        let n = tokio::select! {
            r = tokio::time::timeout(idle_timeout, stream.read(&mut buf)) => match r {
                Err(_) => {
                    tracing::info!(%peer, "hl7 connection closed: idle timeout");
                    return;
                }
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "hl7 read failed");
                    return;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        activity.busy();
        let framed = framer.push(&buf[..n], &mut frames);
        for frame in frames.drain(..) {
            let reply = process(frame, peer, &sink).await;
            match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&reply)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "hl7 write failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "hl7 write timed out; closing");
                    return;
                }
            }
        }
        if let Err(e) = framed {
            tracing::warn!(%peer, error = %e, "hl7 connection closed");
            return;
        }
    }
}

/// Per-process message number: names a message in `RawReport::source` and logs without
/// using anything the sender wrote.
static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// One frame → the framed reply, after the sink took the reports (or did not).
async fn process<S: ReportSink>(frame: Frame, peer: IpAddr, sink: &Arc<S>) -> Vec<u8> {
    let n = MESSAGES.fetch_add(1, Ordering::Relaxed) + 1;
    let source = format!("hl7 {peer} msg {n}");
    let (header, outcome) = match frame {
        Frame::Oversize { head, len } => {
            let e = ParseError::TooLarge { size: len, limit: MAX_MESSAGE_BYTES };
            (ReplyHeader::salvage(&head), Err(e.nak()))
        }
        Frame::Message(bytes) => match message::decode(&bytes) {
            Err(e) => (ReplyHeader::salvage(&bytes), Err(e.nak())),
            Ok(msg) => {
                let header = ReplyHeader::from_message(&msg);
                let outcome = match reports_from_oru(&msg, &source) {
                    Ok(reports) => store(reports, sink).await,
                    Err(e) => Err(e.nak()),
                };
                (header, outcome)
            }
        },
    };
    match &outcome {
        Ok(k) => tracing::info!(%peer, msg = n, reports = k, "hl7 AA"),
        Err(nak) => tracing::warn!(%peer, msg = n, reason = %nak.text, "hl7 {}", nak.code.as_str()),
    }
    let now = chrono::Local::now();
    let ack_id = format!("{}{:06}", now.format("%Y%m%d%H%M%S"), n % 1_000_000);
    let ack =
        header.ack(outcome.err().as_ref(), &ack_id, &now.format("%Y%m%d%H%M%S%z").to_string());
    let mut framed = Vec::with_capacity(ack.len() + 3);
    framed.push(START_BLOCK);
    framed.extend_from_slice(&ack);
    framed.extend_from_slice(&[END_BLOCK, CR]);
    framed
}

/// Hands every report to the sink on a blocking thread (it writes files and a database).
async fn store<S: ReportSink>(reports: Vec<RawReport>, sink: &Arc<S>) -> Result<usize, Nak> {
    let count = reports.len();
    let sink = Arc::clone(sink);
    let stored =
        tokio::task::spawn_blocking(move || reports.into_iter().try_for_each(|r| sink.accept(r)))
            .await;
    let sink_nak =
        |code, text: String| Nak { code, location: None, error: Hl7ErrorCode::InternalError, text };
    match stored {
        Ok(Ok(())) => Ok(count),
        Ok(Err(e @ SinkError::Unavailable(_))) => Err(sink_nak(AckCode::Error, e.to_string())),
        Ok(Err(e @ SinkError::Rejected(_))) => Err(sink_nak(AckCode::Reject, e.to_string())),
        // The sink panicked: nothing is known to be stored, so the sender should retry.
        Err(_) => Err(sink_nak(AckCode::Error, "report store failed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(framer: &mut Framer, chunks: &[&[u8]]) -> Result<Vec<Frame>, MllpError> {
        let mut out = Vec::new();
        for c in chunks {
            framer.push(c, &mut out)?;
        }
        Ok(out)
    }

    fn messages(frames: &[Frame]) -> Vec<&[u8]> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Message(b) => b.as_slice(),
                Frame::Oversize { .. } => panic!("oversize"),
            })
            .collect()
    }

    #[test]
    fn frame_split_across_reads() {
        let mut f = Framer::new(100, 400);
        let out = feed(&mut f, &[b"\x0bMSH|a", b"bc\r", b"PID|1\x1c", b"\r"]).unwrap();
        assert_eq!(messages(&out), [b"MSH|abc\rPID|1".as_slice()]);
        let out = feed(&mut f, &[b"\x0b", b"x", b"\x1c\r"]).unwrap();
        assert_eq!(messages(&out), [b"x".as_slice()]);
    }

    #[test]
    fn two_frames_in_one_read_and_missing_cr() {
        let mut f = Framer::new(100, 400);
        let out = feed(&mut f, &[b"\x0bone\x1c\r\x0btwo\x1c\x0bthree\x1c\r"]).unwrap();
        assert_eq!(messages(&out), [b"one".as_slice(), b"two", b"three"]);
    }

    #[test]
    fn garbage_before_start_and_restarted_frame() {
        let mut f = Framer::new(100, 400);
        let out =
            feed(&mut f, &[b"\r\nGET / HTTP/1.0\x00\x0bpart", b"ial\x0bwhole\x1c\r"]).unwrap();
        assert_eq!(messages(&out), [b"whole".as_slice()]);
        let mut f = Framer::new(100, 400);
        let junk = vec![b'x'; 401];
        assert!(matches!(feed(&mut f, &[&junk]), Err(MllpError::NoStartBlock { .. })));
    }

    #[test]
    fn oversize_message_then_oversize_frame() {
        let mut f = Framer::new(10, 40);
        let out = feed(&mut f, &[b"\x0bMSH|0123456789", b"abcdef\x1c\r\x0bok\x1c\r"]).unwrap();
        assert_eq!(out.len(), 2);
        match &out[0] {
            Frame::Oversize { head, len } => {
                assert_eq!(*len, 20);
                assert!(head.starts_with(b"MSH|"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(messages(&out[1..]), [b"ok".as_slice()]);
        let mut out = Vec::new();
        let big = vec![b'a'; 41];
        let r = f.push(b"\x0bfine\x1c\r\x0b", &mut out).and_then(|_| f.push(&big, &mut out));
        assert!(matches!(r, Err(MllpError::FrameTooLarge { limit: 40 })));
        assert_eq!(messages(&out), [b"fine".as_slice()]);
    }
}
