//! The TCP accept loop shared by the MLLP listener and the DICOM SCP: accept until shutdown,
//! peer allow list, connection slots, idle eviction when they are full, a time limit per
//! connection, and a bounded number of "busy" replies beyond the slots.
//!
//! Log lines name the peer IP and a fixed reason; nothing is read from a refused peer here.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
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

/// One entry of a listener's `allowed_peers`: an address (`10.0.0.5`, a single host) or a
/// network in CIDR form (`10.0.0.0/24`). IPv4-mapped IPv6 peers compare as IPv4.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why an `allowed_peers` entry was refused; names the rule, never guesses a fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerNetError {
    /// Not an address or `address/prefix`.
    #[error("not an IP address or CIDR network (e.g. 10.0.0.5 or 10.0.0.0/24)")]
    Syntax,
    /// The prefix is longer than the address or zero (which would admit every peer).
    #[error("prefix length must be 1-32 (IPv4) or 1-128 (IPv6)")]
    Prefix,
    /// Bits set beyond the prefix (`10.0.0.5/24`): ambiguous, so refused.
    #[error(
        "address has bits set beyond its prefix; write the network address (e.g. 10.0.0.0/24)"
    )]
    HostBits,
    /// 0.0.0.0, ::, or a multicast address: not a peer.
    #[error("not a unicast peer address")]
    NotUnicast,
}

impl PeerNet {
    fn width(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(width: u8, prefix: u8) -> u128 {
        let host = u32::from(width - prefix);
        let all = if width == 32 { u32::MAX as u128 } else { u128::MAX };
        all.checked_shl(host).map_or(0, |m| m & all)
    }

    /// Whether `peer` is in this network.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        if peer.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let mask = Self::mask(Self::width(self.addr), self.prefix);
        Self::bits(peer) & mask == Self::bits(self.addr)
    }
}

impl FromStr for PeerNet {
    type Err = PeerNetError;

    fn from_str(s: &str) -> Result<PeerNet, PeerNetError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| PeerNetError::Syntax)?.to_canonical();
        let width = Self::width(addr);
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse::<u8>().map_err(|_| PeerNetError::Syntax)?,
        };
        if prefix == 0 || prefix > width {
            return Err(PeerNetError::Prefix);
        }
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(PeerNetError::NotUnicast);
        }
        if Self::bits(addr) & !Self::mask(width, prefix) != 0 {
            return Err(PeerNetError::HostBits);
        }
        Ok(PeerNet { addr, prefix })
    }
}

impl From<IpAddr> for PeerNet {
    /// A single host.
    fn from(addr: IpAddr) -> PeerNet {
        let addr = addr.to_canonical();
        PeerNet { addr, prefix: Self::width(addr) }
    }
}

impl fmt::Display for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for PeerNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerNet({self})")
    }
}

impl serde::Serialize for PeerNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PeerNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The check every enabled listener's `validate` makes: an allow list is required, so an
/// open port is never the default. `Err((key, what it needs))`.
pub(crate) fn require_allowed_peers(
    enabled: bool,
    peers: &[PeerNet],
    key: &'static str,
) -> Result<(), (&'static str, String)> {
    if enabled && peers.is_empty() {
        return Err((
            key,
            "the peers allowed to connect, e.g. [\"10.0.0.5\", \"10.1.2.0/24\"] (required when \
             the listener is enabled: it refuses to start without one)"
                .into(),
        ));
    }
    Ok(())
}

/// A per-connection time limit from the configuration (`*_secs` keys): at least 1 s, at most a
/// day, so that a typo cannot mean "forever". `Err((key, range))`.
pub(crate) fn check_secs(secs: u64, key: &'static str) -> Result<(), (&'static str, String)> {
    if (1..=86_400).contains(&secs) {
        Ok(())
    } else {
        Err((key, "an integer from 1 to 86400 (seconds)".into()))
    }
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

    fn evicted(self, peer: IpAddr) {
        match self {
            Protocol::Hl7 => {
                tracing::info!(%peer, "hl7 idle connection closed: its slot is needed")
            }
            Protocol::Dicom => {
                tracing::info!(%peer, "dicom idle connection closed: its slot is needed")
            }
        }
    }

    fn time_limit(self, peer: IpAddr) {
        match self {
            Protocol::Hl7 => tracing::info!(%peer, "hl7 connection closed: time limit reached"),
            Protocol::Dicom => {
                tracing::info!(%peer, "dicom association closed: time limit reached")
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

/// What a served connection gets from the loop besides its socket.
pub(crate) struct Conn {
    /// Turns true on shutdown, when the connection is closed to make room (it was idle), or
    /// when its time limit is up: finish the exchange in hand, reply, and return.
    pub(crate) stop: watch::Receiver<bool>,
    /// Tells the loop whether the connection is idle (may be closed to make room).
    pub(crate) activity: Activity,
}

/// A connection in the loop's table: idle since when (`None` while busy), and how to stop it.
struct Entry {
    peer: IpAddr,
    idle_since: Option<Instant>,
    stop: watch::Sender<bool>,
    /// The connection this one was closed for: its slot goes there, not back to the pool, so
    /// no connection accepted in between can take it (a waiter not yet polled is not queued
    /// on the semaphore; in CI such a theft left a real sender without a slot).
    successor: Option<oneshot::Sender<OwnedSemaphorePermit>>,
}

#[derive(Default)]
struct Table {
    next: u64,
    conns: HashMap<u64, Entry>,
}

impl Table {
    /// Picks an idle connection to close for a new one, tells it to stop, and marks it busy so
    /// no other new connection picks it too: of the peer holding the most connections, the one
    /// idle longest. A flood of idle sockets thus closes its own sockets first. The receiver
    /// gets the victim's slot once it has closed.
    fn evict(&mut self) -> Option<(IpAddr, oneshot::Receiver<OwnedSemaphorePermit>)> {
        let mut per_peer: HashMap<IpAddr, usize> = HashMap::new();
        for e in self.conns.values() {
            *per_peer.entry(e.peer).or_default() += 1;
        }
        let victim = self
            .conns
            .values_mut()
            .filter_map(|e| {
                let since = e.idle_since?;
                Some(((per_peer[&e.peer], std::cmp::Reverse(since)), e))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, e)| e)?;
        victim.idle_since = None;
        let _ = victim.stop.send(true);
        let (tx, rx) = oneshot::channel();
        victim.successor = Some(tx);
        Some((victim.peer, rx))
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks one connection idle or busy in the loop's table. A connection starts idle once it has
/// its slot: a peer that connects and sends nothing holds no slot that a sender needs.
pub(crate) struct Activity {
    id: u64,
    table: Arc<Mutex<Table>>,
}

impl Activity {
    fn set(&self, idle_since: Option<Instant>) {
        let mut t = lock(&self.table);
        if let Some(e) = t.conns.get_mut(&self.id) {
            // A connection already told to stop stays out of the choice.
            if !*e.stop.borrow() {
                e.idle_since = idle_since;
            }
        }
    }

    /// Between exchanges: nothing received and unanswered.
    pub(crate) fn idle(&self) {
        self.set(Some(Instant::now()));
    }

    /// In an exchange: a message or an association under way.
    pub(crate) fn busy(&self) {
        self.set(None);
    }
}

/// Removes its connection from the table when the connection ends, and hands its slot to the
/// connection it was closed for, if any.
struct Registration {
    id: u64,
    table: Arc<Mutex<Table>>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Registration {
    fn new(table: &Arc<Mutex<Table>>, peer: IpAddr) -> (Registration, Conn) {
        let (tx, rx) = watch::channel(false);
        let mut t = lock(table);
        t.next += 1;
        let id = t.next;
        // Idle from the start: nothing has been read from it. A connection waiting for the
        // slot of one closed for it is a candidate too: closing it passes that slot on once it
        // arrives. (Registered busy, a burst of idle sockets left a moment in which no
        // connection was a candidate, and a real sender arriving then was refused.)
        let idle_since = Some(Instant::now());
        t.conns.insert(id, Entry { peer, idle_since, stop: tx, successor: None });
        drop(t);
        let registration = Registration { id, table: Arc::clone(table), slot: None };
        let activity = registration.activity();
        (registration, Conn { stop: rx, activity })
    }

    fn activity(&self) -> Activity {
        Activity { id: self.id, table: Arc::clone(&self.table) }
    }

    fn stop(&self) {
        if let Some(e) = lock(&self.table).conns.get_mut(&self.id) {
            e.idle_since = None;
            let _ = e.stop.send(true);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let entry = lock(&self.table).conns.remove(&self.id);
        let successor = entry.and_then(|e| e.successor);
        if let (Some(slot), Some(next)) = (self.slot.take(), successor) {
            // If the successor gave up waiting, the slot returns to the pool (dropped).
            let _ = next.send(slot);
        }
    }
}

/// What a listener does with the connections the loop hands it.
pub(crate) trait Service: Send + Sync + 'static {
    /// Names the log lines.
    const PROTOCOL: Protocol;
    /// Connections served at once.
    const MAX_CONNECTIONS: usize;
    /// Connections beyond [`Service::MAX_CONNECTIONS`] still answered by [`Service::busy`]
    /// when no idle connection can make room; past this they are closed at once.
    const MAX_BUSY_REPLIES: usize = 0;

    /// Whether `peer` (canonical: IPv4-mapped addresses as IPv4) may connect at all. A
    /// refused peer's connection is closed before anything is read from it.
    fn admits(&self, peer: IpAddr) -> bool;

    /// How long one connection may last in all; then its `stop` turns true.
    fn max_connection_time(&self) -> Duration;

    /// Serves one admitted connection until it ends or `conn.stop` turns true.
    fn connection(
        &self,
        stream: TcpStream,
        peer: IpAddr,
        conn: Conn,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Answers a connection over the limit (e.g. "try again later") and closes it.
    fn busy(&self, stream: TcpStream) -> impl Future<Output = ()> + Send + 'static {
        async move { drop(stream) }
    }
}

/// How long a connection whose time is up may take to finish the exchange in hand (a sink
/// writing to disk) before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How long a new connection waits for the slot of the idle one closed for it.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

/// Accepts until `shutdown` is true (or its sender is gone), then waits for the open
/// connections, which are told to stop.
pub(crate) async fn accept_loop<S: Service>(
    listener: TcpListener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(S::MAX_CONNECTIONS));
    let busy = Arc::new(Semaphore::new(S::MAX_BUSY_REPLIES));
    let table = Arc::new(Mutex::new(Table::default()));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let peer = addr.ip().to_canonical();
                    let admitted = service.admits(peer);
                    let slot = admitted.then(|| Arc::clone(&slots).try_acquire_owned().ok());
                    // Only when every slot is taken; the table's lock is released here.
                    let victim = match slot {
                        Some(None) => lock(&table).evict(),
                        _ => None,
                    };
                    if !admitted {
                        S::PROTOCOL.not_allowed(peer);
                        drop(stream);
                    } else if let Some(Some(slot)) = slot {
                        let slot = std::future::ready(Some(slot));
                        admit(&mut conns, &service, &table, stream, peer, slot, &shutdown);
                    } else if let Some((victim, handoff)) = victim {
                        // Every slot is taken but one is idle: it goes, this one gets its slot.
                        S::PROTOCOL.evicted(victim);
                        let slot = handed_over(handoff, Arc::clone(&slots));
                        admit(&mut conns, &service, &table, stream, peer, slot, &shutdown);
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

/// Registers an admitted connection and spawns it into `conns`, under [`supervised`], to run
/// once `slot` yields its slot.
fn admit<S: Service>(
    conns: &mut JoinSet<()>,
    service: &S,
    table: &Arc<Mutex<Table>>,
    stream: TcpStream,
    peer: IpAddr,
    slot: impl Future<Output = Option<OwnedSemaphorePermit>> + Send + 'static,
    shutdown: &watch::Receiver<bool>,
) {
    let (registration, conn) = Registration::new(table, peer);
    let served = service.connection(stream, peer, conn);
    let limit = service.max_connection_time();
    conns.spawn(supervised::<S, _>(served, registration, slot, peer, limit, shutdown));
}

/// The slot of the connection closed for this one, once that has closed; if the handoff
/// fails (the closed one was itself waiting and gave up), one from the pool. `None` after
/// [`EVICTION_WAIT`].
async fn handed_over(
    handoff: oneshot::Receiver<OwnedSemaphorePermit>,
    slots: Arc<Semaphore>,
) -> Option<OwnedSemaphorePermit> {
    let deadline = tokio::time::Instant::now() + EVICTION_WAIT;
    match tokio::time::timeout_at(deadline, handoff).await {
        Ok(Ok(slot)) => Some(slot),
        Ok(Err(_)) => tokio::time::timeout_at(deadline, slots.acquire_owned()).await.ok()?.ok(),
        Err(_) => None,
    }
}

/// One registered connection under its time limit, once `slot` yields its slot (without one
/// it is closed, logged as "too many connections"). Nothing runs until the returned future is
/// polled; dropping it unpolled closes the socket and unregisters the connection.
fn supervised<S: Service, F: Future<Output = ()> + Send + 'static>(
    served: F,
    mut registration: Registration,
    slot: impl Future<Output = Option<OwnedSemaphorePermit>> + Send + 'static,
    peer: IpAddr,
    limit: Duration,
    shutdown: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut shutdown = shutdown.clone();
    async move {
        let Some(slot) = slot.await else {
            S::PROTOCOL.full(peer);
            return;
        };
        // Released, or handed on, when the registration drops.
        registration.slot = Some(slot);
        // Idle from the moment it has its slot until the service says otherwise.
        registration.activity().idle();
        tokio::pin!(served);
        tokio::select! {
            _ = &mut served => {}
            _ = stopped(&mut shutdown) => {
                // As before the loop had limits: the connection finishes what it has in hand.
                registration.stop();
                served.await;
            }
            _ = tokio::time::sleep(limit) => {
                S::PROTOCOL.time_limit(peer);
                registration.stop();
                let _ = tokio::time::timeout(STOP_GRACE, served).await;
            }
        }
        drop(registration);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn net(s: &str) -> PeerNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peer_networks() {
        assert!(net("10.0.0.5").contains(ip("10.0.0.5")));
        assert!(!net("10.0.0.5").contains(ip("10.0.0.6")));
        assert!(net("10.1.0.0/16").contains(ip("10.1.255.3")));
        assert!(!net("10.1.0.0/16").contains(ip("10.2.0.1")));
        assert!(net("10.1.0.0/16").contains(ip("::ffff:10.1.0.9")), "mapped IPv6 as IPv4");
        assert!(net("::ffff:127.0.0.1").contains(ip("127.0.0.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(net("127.0.0.0/8").to_string(), "127.0.0.0/8");
        let err = |s: &str| s.parse::<PeerNet>().unwrap_err();
        assert_eq!(err("10.0.0.5/24"), PeerNetError::HostBits);
        assert_eq!(err("0.0.0.0/0"), PeerNetError::Prefix);
        assert_eq!(err("10.0.0.0/33"), PeerNetError::Prefix);
        assert_eq!(err("0.0.0.0"), PeerNetError::NotUnicast);
        assert_eq!(err("224.0.0.1"), PeerNetError::NotUnicast);
        assert_eq!(err("host.example"), PeerNetError::Syntax);
        assert_eq!(err("10.0.0.0/x"), PeerNetError::Syntax);
    }

    #[test]
    fn an_enabled_listener_needs_an_allow_list() {
        let (key, allowed) = require_allowed_peers(true, &[], "hl7.allowed_peers").unwrap_err();
        assert_eq!(key, "hl7.allowed_peers");
        assert!(allowed.contains("refuses to start"));
        require_allowed_peers(false, &[], "hl7.allowed_peers").unwrap();
        require_allowed_peers(true, &[net("10.0.0.5")], "hl7.allowed_peers").unwrap();
    }

    /// Echoes one line per connection, marking itself busy while it has read something.
    struct Echo {
        allowed: PeerNet,
        limit: Duration,
    }

    impl Service for Echo {
        const PROTOCOL: Protocol = Protocol::Hl7;
        const MAX_CONNECTIONS: usize = 4;

        fn admits(&self, peer: IpAddr) -> bool {
            self.allowed.contains(peer)
        }

        fn max_connection_time(&self) -> Duration {
            self.limit
        }

        // Not `async fn`: the future must not borrow the service (it outlives the call).
        #[allow(clippy::manual_async_fn)]
        fn connection(
            &self,
            mut stream: TcpStream,
            _peer: IpAddr,
            conn: Conn,
        ) -> impl Future<Output = ()> + Send + 'static {
            async move {
                let Conn { mut stop, activity } = conn;
                let mut buf = [0u8; 64];
                loop {
                    activity.idle();
                    let n = tokio::select! {
                        r = stream.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                        _ = stopped(&mut stop) => return,
                    };
                    activity.busy();
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn start(service: Echo) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, service, rx));
        (addr, tx)
    }

    async fn echo(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        stream.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut got));
        match read.await {
            Ok(Ok(_)) => got,
            _ => Vec::new(),
        }
    }

    /// Reads until the peer closes (0 bytes) or fails: true if it closed within 10 s.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut b = [0u8; 8];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn idle_sockets_at_the_cap_make_room_for_a_sender() {
        let (addr, _stop) =
            start(Echo { allowed: net("127.0.0.1"), limit: Duration::from_secs(600) }).await;
        // Four times the cap of silent sockets, as a scanner or a leaking sender leaves them.
        let mut idle = Vec::new();
        for _ in 0..4 * Echo::MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut sender = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo(&mut sender, b"report").await, b"report", "the sender was served");
        // A busy connection is never the one closed: the sender is still served after more
        // idle sockets arrive.
        for _ in 0..Echo::MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut second = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo(&mut second, b"again").await, b"again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twice_the_cap_of_idle_sockets_then_a_sender_many_times() {
        for _ in 0..50 {
            let service = Echo { allowed: net("127.0.0.1"), limit: Duration::from_secs(600) };
            let (addr, stop) = start(service).await;
            let idle: Vec<_> = (0..2 * Echo::MAX_CONNECTIONS)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            let mut sender = TcpStream::connect(addr).await.unwrap();
            assert_eq!(echo(&mut sender, b"report").await, b"report", "the sender was served");
            let _ = stop.send(true);
            drop(idle);
        }
    }

    #[test]
    fn the_slot_of_a_closed_connection_goes_to_the_one_it_was_closed_for() {
        let slots = Arc::new(Semaphore::new(1));
        let table = Arc::new(Mutex::new(Table::default()));
        let (mut held, _conn) = Registration::new(&table, ip("10.0.0.9"));
        held.slot = Some(Arc::clone(&slots).try_acquire_owned().unwrap());
        let (_, mut handoff) = lock(&table).evict().unwrap();
        drop(held);
        assert_eq!(
            slots.available_permits(),
            0,
            "not back in the pool, where anyone could take it"
        );
        assert!(handoff.try_recv().is_ok(), "handed to the successor");
    }

    #[tokio::test]
    async fn peers_outside_the_list_are_closed_at_accept() {
        let (addr, _stop) =
            start(Echo { allowed: net("127.0.0.2"), limit: Duration::from_secs(600) }).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"hello").await;
        assert!(closed(&mut s).await, "a peer not on the list is closed");
    }

    #[tokio::test]
    async fn a_connection_is_closed_when_its_time_is_up() {
        let (addr, _stop) =
            start(Echo { allowed: net("127.0.0.1"), limit: Duration::from_millis(300) }).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(echo(&mut s, b"x").await, b"x");
        assert!(closed(&mut s).await, "closed after its time limit");
    }

    #[test]
    fn connections_waiting_for_an_evicted_slot_are_candidates_themselves() {
        // Two slots, both idle sockets; two more idle sockets arrive and each has one closed
        // for it. Until those close, every slot is held: a sender arriving then must still
        // find a candidate (before: none, and it was refused).
        let table = Arc::new(Mutex::new(Table::default()));
        let held: Vec<_> = (0..2).map(|_| Registration::new(&table, ip("10.0.0.9"))).collect();
        let first = lock(&table).evict();
        let second = lock(&table).evict();
        assert!(first.is_some() && second.is_some());
        let waiting: Vec<_> = (0..2).map(|_| Registration::new(&table, ip("10.0.0.9"))).collect();
        let victim = lock(&table).evict().map(|(peer, _)| peer);
        assert_eq!(victim, Some(ip("10.0.0.9")), "a waiting socket gives way");
        assert!(waiting.iter().any(|(_, c)| *c.stop.borrow()));
        drop((held, waiting));
    }

    #[test]
    fn eviction_picks_the_idle_connection_of_the_busiest_peer() {
        let table = Arc::new(Mutex::new(Table::default()));
        let (a, ca) = Registration::new(&table, ip("10.0.0.1"));
        let (b1, cb1) = Registration::new(&table, ip("10.0.0.2"));
        let (b2, cb2) = Registration::new(&table, ip("10.0.0.2"));
        for c in [&ca, &cb1, &cb2] {
            c.activity.busy();
        }
        assert_eq!(lock(&table).evict().map(|(peer, _)| peer), None, "nothing idle");
        ca.activity.idle();
        std::thread::sleep(Duration::from_millis(5));
        cb1.activity.idle();
        cb2.activity.busy();
        // 10.0.0.2 holds two connections: its idle one goes, though 10.0.0.1's is older.
        assert_eq!(lock(&table).evict().map(|(peer, _)| peer), Some(ip("10.0.0.2")));
        assert!(*cb1.stop.borrow());
        assert!(!*cb2.stop.borrow() && !*ca.stop.borrow());
        // A stopped connection cannot become a candidate again.
        cb1.activity.idle();
        assert_eq!(lock(&table).evict().map(|(peer, _)| peer), Some(ip("10.0.0.1")));
        assert_eq!(lock(&table).evict().map(|(peer, _)| peer), None);
        drop((a, b1, b2));
        assert!(lock(&table).conns.is_empty(), "registrations remove themselves");
    }
}
