//! The listener and the associations: policy at A-ASSOCIATE, then C-ECHO and C-STORE.
//!
//! One DIMSE operation at a time per association (we never negotiate asynchronous
//! operations), so an association is a small state machine: idle → command fragments →
//! data fragments → response. The C-STORE response goes out only after the sink returned;
//! a malformed data set gets a failure status and the association goes on.

use super::dimse::{self, Command, DimseError, Status};
use super::{
    AeTitle, CalledAePolicy, DicomScpConfig, DicomSink, ReceivedObject, Refusal, SinkError, Uid,
    MAX_ASSOCIATIONS, VERIFICATION,
};
use crate::listener::{accept_loop, stopped, Conn, Protocol, Service};
use dicom_ul::association::server::{AcceptAny, AccessControl, DefaultNegotiation};
use dicom_ul::association::{Association, Error as UlError, ServerAssociationOptions};
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType,
    PresentationContextResultReason, UserIdentity,
};
use dicom_ul::Pdu;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A peer that stops reading our responses must not hold a slot forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections beyond [`MAX_ASSOCIATIONS`] that we still answer with a transient A-ASSOCIATE-RJ;
/// past this they are closed at once.
const MAX_BUSY_REPLIES: usize = 16;
/// How long a refused-for-load peer gets to send its A-ASSOCIATE-RQ before we answer.
const BUSY_READ_TIMEOUT: Duration = Duration::from_secs(5);

type BaseOptions = ServerAssociationOptions<'static, AcceptAny, DefaultNegotiation>;

/// Why the SCP could not start, or why an association ended.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variants and fields: the error message says what each is
pub enum ScpError {
    #[error("dicom_scp.listen {addr}: cannot listen: {source}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The peer broke the protocol; the association is aborted.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The upper layer failed (connection closed, timeout, malformed PDU).
    #[error("association ended: {0}")]
    Association(&'static str),
}

/// A bound listener with its configuration.
pub struct DicomScp {
    listener: TcpListener,
    cfg: DicomScpConfig,
}

impl DicomScp {
    /// Binds `cfg.listen` whatever `cfg.mode` says: the caller decides whether to run.
    pub async fn bind(cfg: &DicomScpConfig) -> Result<DicomScp, ScpError> {
        let listener = crate::listener::bind(cfg.listen_addr())
            .await
            .map_err(|source| ScpError::Bind { addr: cfg.listen.clone(), source })?;
        Ok(DicomScp { listener, cfg: cfg.clone() })
    }

    /// An already bound listener (tests bind port 0); `cfg.listen` is not used.
    pub fn new(listener: TcpListener, cfg: DicomScpConfig) -> DicomScp {
        DicomScp { listener, cfg }
    }

    /// The bound address (its port, when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Returns once `shutdown` is true (or its sender is gone). An association whose data
    /// set is with the sink gets its response first; then associations are aborted (a
    /// transfer cut short this way was never acknowledged, so the sender retries it).
    pub async fn serve(self, sink: impl DicomSink, shutdown: watch::Receiver<bool>) {
        let DicomScp { listener, cfg } = self;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, ae_title = %cfg.ae_title, "dicom scp listening");
        }
        let service =
            Scp { base: Arc::new(base_options(&cfg)), cfg: Arc::new(cfg), sink: Arc::new(sink) };
        accept_loop(listener, service, shutdown).await
    }
}

/// The SCP side of the shared accept loop.
struct Scp<S> {
    base: Arc<BaseOptions>,
    cfg: Arc<DicomScpConfig>,
    sink: Arc<S>,
}

impl<S: DicomSink> Service for Scp<S> {
    const PROTOCOL: Protocol = Protocol::Dicom;
    const MAX_CONNECTIONS: usize = MAX_ASSOCIATIONS;
    const MAX_BUSY_REPLIES: usize = MAX_BUSY_REPLIES;

    // `allowed_peers` at accept; the `allow` rules pair IP addresses with calling AE titles,
    // so `PeerAccess` applies them at the A-ASSOCIATE-RQ.
    fn admits(&self, peer: IpAddr) -> bool {
        self.cfg.admits_peer(peer)
    }

    fn max_connection_time(&self) -> Duration {
        Duration::from_secs(self.cfg.max_association_secs)
    }

    fn connection(
        &self,
        stream: TcpStream,
        peer: IpAddr,
        conn: Conn,
    ) -> impl Future<Output = ()> + Send + 'static {
        let ctx = Ctx { peer, cfg: Arc::clone(&self.cfg), sink: Arc::clone(&self.sink) };
        let base = Arc::clone(&self.base);
        async move {
            let Conn { stop, activity } = conn;
            association(stream, ctx, &base, stop, activity).await
        }
    }

    fn busy(&self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        reject_busy(stream)
    }
}

/// Binds `cfg.listen` and serves until `shutdown`.
pub async fn serve(
    cfg: DicomScpConfig,
    sink: impl DicomSink,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ScpError> {
    DicomScp::bind(&cfg).await?.serve(sink, shutdown).await;
    Ok(())
}

fn base_options(cfg: &DicomScpConfig) -> BaseOptions {
    let mut o = ServerAssociationOptions::new()
        .ae_title(cfg.ae_title.to_string())
        .max_pdu_length(cfg.max_pdu)
        .read_timeout(Duration::from_secs(cfg.idle_timeout_secs))
        .write_timeout(WRITE_TIMEOUT);
    for uid in &cfg.sop_classes {
        o = o.with_abstract_syntax(uid.to_string());
    }
    for uid in &cfg.transfer_syntaxes {
        o = o.with_transfer_syntax(uid.to_string());
    }
    o
}

/// An AE title from the wire, fit for a log line: at most 16 printable ASCII characters.
fn loggable(ae: &str) -> String {
    ae.chars().take(16).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// The allow list and called-AE policy, applied by dicom-ul while it reads the
/// A-ASSOCIATE-RQ (it sends the A-ASSOCIATE-RJ); built per connection to know the peer.
struct PeerAccess {
    peer: IpAddr,
    cfg: Arc<DicomScpConfig>,
    /// Set when this policy refused, so the caller does not log the rejection twice.
    refused: Arc<AtomicBool>,
}

impl AccessControl for PeerAccess {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let called_ok = match self.cfg.called_ae {
            CalledAePolicy::MustMatch => called_ae_title == self.cfg.ae_title.as_str(),
            CalledAePolicy::Any => true,
        };
        let verdict = if !called_ok {
            Err((AssociationRJServiceUserReason::CalledAETitleNotRecognized, "called AE title"))
        } else {
            match AeTitle::new(calling_ae_title) {
                Ok(calling) if self.cfg.allows(&calling, self.peer) => Ok(()),
                Ok(_) => Err((
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                    "not in allow list",
                )),
                Err(_) => Err((
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                    "calling AE title malformed",
                )),
            }
        };
        verdict.map_err(|(reason, why)| {
            self.refused.store(true, Ordering::Relaxed);
            tracing::warn!(
                peer = %self.peer,
                calling_ae = %loggable(calling_ae_title),
                called_ae = %loggable(called_ae_title),
                reason = why,
                "dicom association refused"
            );
            reason
        })
    }
}

/// What an association task needs besides its socket.
struct Ctx<S> {
    peer: IpAddr,
    cfg: Arc<DicomScpConfig>,
    sink: Arc<S>,
}

/// Where an association is between PDUs.
enum State {
    Idle,
    Command {
        pc: u8,
        buf: Vec<u8>,
    },
    Data {
        pc: u8,
        ts: Uid,
        cmd: Command,
        buf: Vec<u8>,
        /// Decided before the data set is complete; the rest of it is read and dropped.
        refusal: Option<(Status, &'static str)>,
    },
}

async fn association<S: DicomSink>(
    stream: TcpStream,
    ctx: Ctx<S>,
    base: &BaseOptions,
    mut shutdown: watch::Receiver<bool>,
    activity: crate::listener::Activity,
) {
    let peer = ctx.peer;
    let refused = Arc::new(AtomicBool::new(false));
    let access = PeerAccess { peer, cfg: Arc::clone(&ctx.cfg), refused: Arc::clone(&refused) };
    let options = base.clone().ae_access_control(access);
    // Until associated the socket is idle: closed at once when its slot is needed.
    let established = tokio::select! {
        r = options.establish_async(stream) => r,
        _ = crate::listener::stopped(&mut shutdown) => return,
    };
    let mut scp = match established {
        Ok(scp) => scp,
        Err(e) => {
            // check_access has logged its own refusals (with the AE titles).
            if !refused.load(Ordering::Relaxed) {
                tracing::warn!(%peer, reason = ul_reason(&e), "dicom association not established");
            }
            return;
        }
    };
    // Associated: no longer an idle socket that a new connection may displace.
    activity.busy();
    let Ok(calling) = AeTitle::new(scp.peer_ae_title()) else {
        // check_access already validated it; nothing else may pass.
        let _ = scp.abort().await;
        return;
    };
    let accepted = scp
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .count();
    tracing::info!(%peer, calling_ae = %calling, contexts = accepted, "dicom association accepted");

    let mut state = State::Idle;
    let ended = loop {
        enum Next {
            Pdu(Result<Pdu, UlError>),
            Stop,
        }
        let next = tokio::select! {
            r = scp.receive() => Next::Pdu(r),
            _ = stopped(&mut shutdown) => Next::Stop,
        };
        let pdu = match next {
            Next::Stop => break Err(ScpError::Association("gateway stopping")),
            Next::Pdu(Ok(pdu)) => pdu,
            Next::Pdu(Err(e)) => break Err(ScpError::Association(ul_reason(&e))),
        };
        match pdu {
            Pdu::PData { data } => {
                let mut failed = None;
                for pdv in data {
                    let reply = match on_pdv(&mut state, pdv, &scp, &ctx, &calling) {
                        Ok(Step::Wait) => continue,
                        Ok(Step::Echo { pc, message_id }) => (pc, echo_response(message_id)),
                        Ok(Step::Store { pc, ts, cmd, data, refusal }) => {
                            let rsp = store(&ctx, &calling, ts, cmd, data, refusal).await;
                            (pc, rsp)
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    };
                    let (pc, bytes) = reply;
                    let pdu = Pdu::PData {
                        data: vec![PDataValue {
                            presentation_context_id: pc,
                            value_type: PDataValueType::Command,
                            is_last: true,
                            data: bytes,
                        }],
                    };
                    if let Err(e) = scp.send(&pdu).await {
                        failed = Some(ScpError::Association(ul_reason(&e)));
                        break;
                    }
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
            Pdu::ReleaseRQ => {
                let _ = scp.send(&Pdu::ReleaseRP).await;
                break Ok(());
            }
            Pdu::AbortRQ { .. } => break Err(ScpError::Association("aborted by peer")),
            _ => break Err(ScpError::Protocol("unexpected PDU type")),
        }
    };
    match ended {
        Ok(()) => tracing::info!(%peer, calling_ae = %calling, "dicom association released"),
        Err(e @ ScpError::Protocol(_)) => {
            tracing::warn!(%peer, calling_ae = %calling, error = %e, "dicom association aborted");
            let _ = scp.abort().await;
        }
        Err(e) => {
            tracing::info!(%peer, calling_ae = %calling, error = %e, "dicom association ended");
            let _ = scp.abort().await;
        }
    }
}

/// What to do after one presentation data value.
enum Step {
    Wait,
    Echo { pc: u8, message_id: u16 },
    Store { pc: u8, ts: Uid, cmd: Command, data: Vec<u8>, refusal: Option<(Status, &'static str)> },
}

fn on_pdv<S, A: Association>(
    state: &mut State,
    pdv: PDataValue,
    scp: &A,
    ctx: &Ctx<S>,
    calling: &AeTitle,
) -> Result<Step, ScpError> {
    let PDataValue { presentation_context_id: pc, value_type, is_last, data } = pdv;
    let command = match (value_type, std::mem::replace(state, State::Idle)) {
        (PDataValueType::Command, State::Idle) => data,
        (PDataValueType::Command, State::Command { pc: p, mut buf }) if p == pc => {
            buf.extend_from_slice(&data);
            buf
        }
        (PDataValueType::Data, State::Data { pc: p, ts, cmd, mut buf, mut refusal }) if p == pc => {
            if refusal.is_none() {
                if (buf.len() + data.len()) as u64 > ctx.cfg.max_object_bytes {
                    refusal = Some((Status::OutOfResources, "data set too large"));
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(&data);
                }
            }
            if is_last {
                return Ok(Step::Store { pc, ts, cmd, data: buf, refusal });
            }
            *state = State::Data { pc, ts, cmd, buf, refusal };
            return Ok(Step::Wait);
        }
        _ => return Err(ScpError::Protocol("fragment out of order")),
    };
    if command.len() > dimse::MAX_COMMAND_BYTES {
        return Err(ScpError::Protocol("command set too large"));
    }
    if !is_last {
        *state = State::Command { pc, buf: command };
        return Ok(Step::Wait);
    }
    let cmd = dimse::parse_command(&command).map_err(|e| {
        tracing::warn!(
            peer = %ctx.peer, calling_ae = %calling, reason = %e, "dicom command unreadable"
        );
        ScpError::Protocol("unreadable command set")
    })?;
    let Some(context) = scp
        .presentation_contexts()
        .iter()
        .find(|c| c.id == pc && c.reason == PresentationContextResultReason::Acceptance)
    else {
        return Err(ScpError::Protocol("presentation context not accepted"));
    };
    match cmd.field {
        dimse::C_ECHO_RQ if !cmd.has_data_set => Ok(Step::Echo { pc, message_id: cmd.message_id }),
        dimse::C_STORE_RQ => {
            let Ok(ts) = Uid::new(context.transfer_syntax.as_str()) else {
                return Err(ScpError::Protocol("negotiated transfer syntax malformed"));
            };
            let refusal = match (&cmd.sop_class, &cmd.sop_instance) {
                (None, _) | (_, None) => {
                    Some((Status::CannotUnderstand, "no valid affected SOP class/instance UID"))
                }
                (Some(class), _)
                    if class.as_str() != context.abstract_syntax.trim_end_matches('\0') =>
                {
                    Some((Status::SopClassNotSupported, "SOP class differs from the context's"))
                }
                _ => None,
            };
            if !cmd.has_data_set {
                return Ok(Step::Store {
                    pc,
                    ts,
                    cmd,
                    data: Vec::new(),
                    refusal: Some((Status::CannotUnderstand, "C-STORE without a data set")),
                });
            }
            *state = State::Data { pc, ts, cmd, buf: Vec::new(), refusal };
            Ok(Step::Wait)
        }
        _ => Err(ScpError::Protocol("unsupported DIMSE command")),
    }
}

fn echo_response(message_id: u16) -> Vec<u8> {
    let verification = Uid::new(VERIFICATION).expect("built-in UID");
    dimse::response(dimse::C_ECHO_RSP, message_id, Some(&verification), None, Status::Success, None)
}

/// Per-process message number: names a C-STORE in logs and refusals without using anything
/// the sender wrote.
static MESSAGES: AtomicU64 = AtomicU64::new(0);

enum Outcome {
    Stored(usize),
    Refused(DimseError),
    Sink(SinkError),
    /// The parser or the sink panicked: nothing is known to be stored.
    Panicked,
}

/// Checks the data set, builds the Part-10 file, hands it to the sink (all on a blocking
/// thread), and returns the C-STORE-RSP command set.
async fn store<S: DicomSink>(
    ctx: &Ctx<S>,
    calling: &AeTitle,
    ts: Uid,
    cmd: Command,
    data: Vec<u8>,
    refusal: Option<(Status, &'static str)>,
) -> Vec<u8> {
    let n = MESSAGES.fetch_add(1, Ordering::Relaxed) + 1;
    let peer = ctx.peer;
    let (class, instance) = (cmd.sop_class.clone(), cmd.sop_instance.clone());
    let sink = Arc::clone(&ctx.sink);
    let our_ae = ctx.cfg.ae_title.clone();
    let calling_ae = calling.clone();
    let class_for_log = class.clone();
    let ts_for_log = ts.clone();
    let job = move || -> (Status, Outcome) {
        let refuse = |status: Status, reason: &'static str| {
            let r = Refusal { peer, calling_ae: calling_ae.clone(), message: n, status, reason };
            sink.refused(&r);
        };
        let (class, instance) = match (refusal, class, instance) {
            (None, Some(class), Some(instance)) => (class, instance),
            (refusal, _, _) => {
                // on_pdv always sets a refusal when a UID is missing.
                let (status, reason) = refusal.unwrap_or((Status::CannotUnderstand, "no UIDs"));
                refuse(status, reason);
                return (status, Outcome::Refused(DimseError::Dataset(reason)));
            }
        };
        let checked = dimse::check_data_set(&ts, &data, &class, &instance)
            .and_then(|()| dimse::part10(&ts, &class, &instance, &calling_ae, &our_ae, data));
        let bytes = match checked {
            Ok(b) => b,
            Err(e) => {
                refuse(e.status(), e.reason());
                return (e.status(), Outcome::Refused(e));
            }
        };
        let len = bytes.len();
        let object = ReceivedObject {
            peer,
            calling_ae,
            sop_class_uid: class,
            sop_instance_uid: instance,
            transfer_syntax: ts,
            bytes,
        };
        match sink.accept(object) {
            Ok(()) => (Status::Success, Outcome::Stored(len)),
            Err(e @ SinkError::Unavailable(_)) => (Status::OutOfResources, Outcome::Sink(e)),
            Err(e @ SinkError::Rejected(_)) => (Status::ProcessingFailure, Outcome::Sink(e)),
        }
    };
    let (status, outcome) = tokio::task::spawn_blocking(job)
        .await
        .unwrap_or((Status::OutOfResources, Outcome::Panicked));
    let class_log = class_for_log.as_ref().map_or("-", |c| c.as_str());
    let comment = match &outcome {
        Outcome::Stored(bytes) => {
            tracing::info!(
                %peer, calling_ae = %calling, msg = n, sop_class = class_log, ts = %ts_for_log,
                bytes, "dicom C-STORE stored"
            );
            None
        }
        Outcome::Refused(e) => {
            tracing::warn!(
                %peer, calling_ae = %calling, msg = n, sop_class = class_log, ts = %ts_for_log,
                %status, reason = e.reason(), "dicom C-STORE refused"
            );
            Some(e.reason())
        }
        Outcome::Sink(e) => {
            tracing::warn!(
                %peer, calling_ae = %calling, msg = n, %status, error = %e,
                "dicom C-STORE not stored"
            );
            Some("object not stored")
        }
        Outcome::Panicked => {
            tracing::error!(
                %peer, calling_ae = %calling, msg = n, "dicom C-STORE handler panicked"
            );
            Some("object not stored")
        }
    };
    dimse::response(
        dimse::C_STORE_RSP,
        cmd.message_id,
        cmd.sop_class.as_ref(),
        cmd.sop_instance.as_ref(),
        status,
        comment,
    )
}

/// Reads the A-ASSOCIATE-RQ (closing with unread data would reset the connection and lose
/// our answer), then answers A-ASSOCIATE-RJ transient, local limit exceeded: the sender
/// retries later.
async fn reject_busy(mut stream: TcpStream) {
    let read = async {
        let mut header = [0u8; 6];
        stream.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        // An A-ASSOCIATE-RQ is a few kilobytes; anything else is not worth answering.
        if header[0] != 0x01 || len > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not an A-ASSOCIATE-RQ"));
        }
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await.map(|_| ())
    };
    if !matches!(tokio::time::timeout(BUSY_READ_TIMEOUT, read).await, Ok(Ok(()))) {
        return;
    }
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut bytes = Vec::new();
    if dicom_ul::write_pdu(&mut bytes, &rj).is_ok() {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
        let _ = stream.shutdown().await;
    }
}

/// A fixed description of an upper-layer error. dicom-ul's own messages can print whole
/// PDUs (`{:?}`), which may carry data set bytes, so they are never logged.
pub(crate) fn ul_reason(e: &UlError) -> &'static str {
    match e {
        UlError::Rejected { .. } => "association rejected",
        UlError::Aborted { .. } => "association aborted",
        UlError::ConnectionClosed { .. } => "connection closed by peer",
        UlError::Timeout { .. } => "timed out",
        UlError::ReceivePdu { .. } => "malformed or oversized PDU",
        UlError::SendPdu { .. } | UlError::SendTooLongPdu { .. } => "PDU could not be sent",
        UlError::WireSend { .. } | UlError::WireRead { .. } => "connection failed",
        UlError::UnexpectedPdu { .. } => "unexpected PDU",
        UlError::UnknownPdu { .. } => "unknown PDU type",
        UlError::ProtocolVersionMismatch { .. } => "protocol version not supported",
        _ => "upper layer error",
    }
}
