//! The TCP accept loop shared by the MLLP listener and the DICOM SCP: accept until shutdown,
//! peer check, connection slots, and a bounded number of "busy" replies beyond them.
//!
//! Log lines name the peer IP and a fixed reason; nothing is read from a refused peer here.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// A listener's `listen` setting as an address: an IP address and a non-zero port. The error
/// is the config key and what it accepts (e.g. `0.0.0.0:2575`), for `validate` and `bind`.
pub(crate) fn listen_addr(
    listen: &str,
    key: &'static str,
    example: &str,
) -> Result<SocketAddr, (&'static str, String)> {
    match listen.trim().parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        _ => Err((key, format!("an IP address and port, e.g. {example}"))),
    }
}

/// Binds what [`listen_addr`] gave; an unusable setting is an `InvalidInput` error saying
/// what the key accepts.
pub(crate) async fn bind(
    addr: Result<SocketAddr, (&'static str, String)>,
) -> io::Result<TcpListener> {
    let addr = addr.map_err(|(_, allowed)| io::Error::new(io::ErrorKind::InvalidInput, allowed))?;
    TcpListener::bind(addr).await
}

/// Which listener runs the loop: names its log lines, which keep the wording each listener
/// had before the loop was shared (operators and tests search for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Hl7,
    Dicom,
}

impl Protocol {
    fn not_allowed(self, peer: IpAddr) {
        match self {
            Protocol::Hl7 => tracing::warn!(%peer, "hl7 connection refused: peer not allowed"),
            // Not reached: the SCP admits every peer here (its rules need the calling AE).
            Protocol::Dicom => tracing::warn!(%peer, "dicom connection refused: peer not allowed"),
        }
    }

    fn busy(self, peer: IpAddr) {
        match self {
            // Not reached: the MLLP listener has no busy replies; same event as `full`.
            Protocol::Hl7 => tracing::warn!(%peer, "hl7 connection refused: too many connections"),
            Protocol::Dicom => {
                tracing::warn!(%peer, "dicom association refused: too many associations")
            }
        }
    }

    fn full(self, peer: IpAddr) {
        match self {
            Protocol::Hl7 => {
                tracing::warn!(%peer, "hl7 connection refused: too many connections")
            }
            Protocol::Dicom => {
                tracing::warn!(%peer, "dicom connection closed: too many connections")
            }
        }
    }

    fn accept_failed(self, e: &std::io::Error) {
        match self {
            Protocol::Hl7 => tracing::warn!(error = %e, "hl7 accept failed"),
            Protocol::Dicom => tracing::warn!(error = %e, "dicom accept failed"),
        }
    }

    fn stopping(self, open: usize) {
        match self {
            Protocol::Hl7 => tracing::info!(connections = open, "hl7 listener stopping"),
            Protocol::Dicom => tracing::info!(associations = open, "dicom scp stopping"),
        }
    }
}

/// What a listener does with the connections the loop hands it.
pub(crate) trait Service: Send + Sync + 'static {
    /// Names the log lines.
    const PROTOCOL: Protocol;
    /// Connections served at once.
    const MAX_CONNECTIONS: usize;
    /// Connections beyond [`Service::MAX_CONNECTIONS`] still answered by [`Service::busy`];
    /// past this they are closed at once.
    const MAX_BUSY_REPLIES: usize = 0;

    /// Whether `peer` (canonical: IPv4-mapped addresses as IPv4) may connect at all. A
    /// refused peer's connection is closed before anything is read from it.
    fn admits(&self, peer: IpAddr) -> bool;

    /// Serves one admitted connection until it ends or `shutdown` turns true.
    fn connection(
        &self,
        stream: TcpStream,
        peer: IpAddr,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Answers a connection over the limit (e.g. "try again later") and closes it.
    fn busy(&self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        async move { drop(stream) }
    }
}

/// Accepts until `shutdown` is true (or its sender is gone), then waits for the open
/// connections, which see the same `shutdown`.
pub(crate) async fn accept_loop<S: Service>(
    listener: TcpListener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(S::MAX_CONNECTIONS));
    let busy = Arc::new(Semaphore::new(S::MAX_BUSY_REPLIES));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let peer = addr.ip().to_canonical();
                    if !service.admits(peer) {
                        S::PROTOCOL.not_allowed(peer);
                        drop(stream);
                    } else if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                        let served = service.connection(stream, peer, shutdown.clone());
                        conns.spawn(async move {
                            served.await;
                            drop(slot);
                        });
                    } else if let Ok(permit) = Arc::clone(&busy).try_acquire_owned() {
                        S::PROTOCOL.busy(peer);
                        let answered = service.busy(stream);
                        conns.spawn(async move {
                            answered.await;
                            drop(permit);
                        });
                    } else {
                        S::PROTOCOL.full(peer);
                    }
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    S::PROTOCOL.accept_failed(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    S::PROTOCOL.stopping(conns.len());
    while conns.join_next().await.is_some() {}
}

/// Resolves once the shutdown flag is true or its sender is gone.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
