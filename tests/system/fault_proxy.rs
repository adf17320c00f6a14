//! A fault-injecting TCP proxy for system tests (issue 11, "Network faults"): the gateway's
//! `[uplink] hub_url` points at it, it forwards to the hub. It sees only TLS records, so every
//! fault is one a real network or middlebox can cause; nothing is forged or decrypted.
//!
//! Faults, drawn per connection from a seeded generator (the same seed and the same order of
//! accepted connections give the same plans):
//! - **cuts**: with probability `probability`, a connection is cut once `min_bytes..=max_bytes`
//!   (both directions counted) have passed. [`CutStyle::Abort`] resets both sides at once and
//!   drops what the proxy still holds; [`CutStyle::DeliverInFlight`] resets the gateway's side
//!   at once but still delivers the bytes already taken from it to the hub, at their due time,
//!   then closes the hub's side (the hub sees a complete or truncated request from a client
//!   that is gone, possibly after that client's retry on a new connection).
//! - **latency**: every chunk read is written on the other side `latency` later, in each
//!   direction (pipelined: latency, not a rate limit).
//! - **reordering**: TCP delivers a connection's bytes in order, so at this layer reordering
//!   means *across connections*: each connection gets an extra delay drawn from `0..=jitter`,
//!   so a request sent later on one connection can reach the hub before an earlier one on
//!   another (a retry overtaking the stale attempt it replaces, with `DeliverInFlight`).
//!   Reordering of IP packets within a connection is the kernel's business: the network
//!   namespace tests (`net_faults`) do that.
//! - **rate**: an optional cap in bytes/s per direction and connection (a slow line, so that a
//!   test can act while one large upload is in progress).
//!
//! The faults can be changed while the proxy runs ([`FaultProxy::set_faults`]; new
//! connections take them up) and every open connection can be cut at once
//! ([`FaultProxy::cut_all`]). The proxy runs on a runtime of its own, so synchronous tests use
//! it without one.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Largest chunk read at once (and so the granularity of latency and cuts).
const CHUNK: usize = 16 * 1024;
/// Chunks queued per direction: bounds the proxy's memory and how far it reads ahead.
const QUEUE: usize = 64;
/// Time allowed to connect to the upstream (the hub); past it the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What happens to bytes still inside the proxy when a connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutStyle {
    /// Both sides are reset at once; queued bytes are dropped.
    Abort,
    /// The client's side is reset at once; bytes already read from the client still reach the
    /// upstream at their due time, then the upstream side is closed.
    DeliverInFlight,
}

/// When connections are cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cuts {
    /// Never (pass-through).
    Never,
    /// With `probability` (0..=1) per connection, after a byte count drawn uniformly from
    /// `min_bytes..=max_bytes`, in a style drawn uniformly from [`CutStyle`]'s variants.
    After {
        /// Smallest budget, bytes (both directions counted).
        min_bytes: u64,
        /// Largest budget, bytes.
        max_bytes: u64,
        /// Share of connections that get a budget.
        probability: f64,
    },
}

/// The faults applied to new connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Connection cuts.
    pub cuts: Cuts,
    /// Added to every chunk, in each direction.
    pub latency: Duration,
    /// Extra per-connection delay, uniform in `0..=jitter`: reordering across connections.
    pub jitter: Duration,
    /// Cap in bytes/s per direction and connection; `None`: unlimited.
    pub rate: Option<u64>,
}

impl Faults {
    /// No faults: a plain relay.
    pub fn none() -> Faults {
        Faults { cuts: Cuts::Never, latency: Duration::ZERO, jitter: Duration::ZERO, rate: None }
    }

    /// The issue's network: cuts after a random 0.2–3 MB on half the connections, 300 ms per
    /// direction and chunk, up to 500 ms more on some connections than on others.
    pub fn issue_11() -> Faults {
        Faults {
            cuts: Cuts::After { min_bytes: 200_000, max_bytes: 3_000_000, probability: 0.5 },
            latency: Duration::from_millis(300),
            jitter: Duration::from_millis(500),
            rate: None,
        }
    }
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections cut by a budget or by [`FaultProxy::cut_all`].
    pub cuts: u64,
    /// Connections reset because one side reset or failed (a killed hub, a killed client).
    pub resets: u64,
    /// Connections reset because the upstream did not accept (hub down).
    pub refused: u64,
    /// Bytes written to the upstream.
    pub bytes_up: u64,
    /// Bytes written to clients.
    pub bytes_down: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    cuts: AtomicU64,
    resets: AtomicU64,
    refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// splitmix64: a seeded stream without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + ((self.next_u64() as u128 * (hi - lo + 1) as u128) >> 64) as u64
    }

    /// Uniform in `0..=max`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.range(0, max.as_micros() as u64))
    }
}

/// What one connection gets.
#[derive(Debug, Clone, Copy)]
struct Plan {
    cut: Option<(u64, CutStyle)>,
    delay: Duration,
    rate: Option<u64>,
}

struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    rng: Mutex<SplitMix>,
    counters: Counters,
    /// Cut switches of the open connections.
    open: Mutex<Vec<Weak<watch::Sender<Option<CutStyle>>>>>,
}

impl Shared {
    fn plan(&self) -> Plan {
        let faults = self.faults.lock().unwrap().clone();
        let mut rng = self.rng.lock().unwrap();
        let delay = faults.latency + rng.duration(faults.jitter);
        let cut = match faults.cuts {
            Cuts::Never => None,
            Cuts::After { min_bytes, max_bytes, probability } => {
                let budget = rng.range(min_bytes, max_bytes);
                let style =
                    if rng.unit() < 0.5 { CutStyle::Abort } else { CutStyle::DeliverInFlight };
                (rng.unit() < probability).then_some((budget, style))
            }
        };
        Plan { cut, delay, rate: faults.rate }
    }
}

/// A running proxy; stops (resetting its connections) when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Listens on a free loopback port and relays to `upstream` with `faults`; `seed` drives
    /// every random choice.
    pub fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> FaultProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(faults),
            rng: Mutex::new(SplitMix::new(seed)),
            counters: Counters::default(),
            open: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        rt.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                s.counters.connections.fetch_add(1, Ordering::Relaxed);
                let plan = s.plan();
                tokio::spawn(relay(s.clone(), client, plan));
            }
        });
        FaultProxy { port, shared, rt: Some(rt) }
    }

    /// The port clients connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:<port>`: the hub's certificate names 127.0.0.1 (`server_names`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Faults for connections accepted from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    /// Cuts every open connection now, in `style`.
    pub fn cut_all(&self, style: CutStyle) {
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap());
        for tx in open.iter().filter_map(Weak::upgrade) {
            if tx.send_replace(Some(style)).is_none() {
                self.shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            cuts: c.cuts.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Allowed inside another runtime too (an async test), unlike dropping a runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A chunk and when it may be written.
type Chunk = (Instant, Vec<u8>);

/// Which socket a task serves: the client's is always reset at a cut; the upstream's follows
/// the cut's style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

/// Resets `stream` (RST, no FIN) when it is closed.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(shared: Arc<Shared>, client: TcpStream, plan: Plan) {
    let upstream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.upstream)).await {
            Ok(Ok(s)) => s,
            _ => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                reset(client);
                return;
            }
        };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cut_tx, cut_rx) = watch::channel(None::<CutStyle>);
    let cut_tx = Arc::new(cut_tx);
    shared.open.lock().unwrap().push(Arc::downgrade(&cut_tx));
    let moved = Arc::new(AtomicU64::new(0));
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let (up_tx, up_rx) = mpsc::channel::<Chunk>(QUEUE);
    let (down_tx, down_rx) = mpsc::channel::<Chunk>(QUEUE);
    let link = Link { shared: shared.clone(), plan, moved, cut: cut_tx.clone() };
    let tasks = [
        tokio::spawn(read_side(link.clone(), cr, Side::Client, up_tx, cut_rx.clone())),
        tokio::spawn(read_side(link.clone(), ur, Side::Upstream, down_tx, cut_rx.clone())),
        tokio::spawn(write_side(link.clone(), uw, Side::Upstream, up_rx, cut_rx.clone())),
        tokio::spawn(write_side(link, cw, Side::Client, down_rx, cut_rx)),
    ];
    for t in tasks {
        let _ = t.await;
    }
    let mut open = shared.open.lock().unwrap();
    open.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&Arc::downgrade(&cut_tx)));
}

/// Why a connection was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Its byte budget ran out.
    Fault,
    /// A side reset or failed.
    Peer,
}

#[derive(Clone)]
struct Link {
    shared: Arc<Shared>,
    plan: Plan,
    /// Bytes read so far, both directions.
    moved: Arc<AtomicU64>,
    cut: Arc<watch::Sender<Option<CutStyle>>>,
}

impl Link {
    /// Cuts the connection (once): a fault of ours, or passing on a peer's reset.
    fn cut(&self, style: CutStyle, cause: Cause) {
        let mut first = false;
        self.cut.send_if_modified(|c| {
            first = c.is_none();
            if first {
                *c = Some(style);
            }
            first
        });
        if first {
            let counter = match cause {
                Cause::Fault => &self.shared.counters.cuts,
                Cause::Peer => &self.shared.counters.resets,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits until the connection is cut; returns the style.
async fn cut_signal(rx: &mut watch::Receiver<Option<CutStyle>>) -> CutStyle {
    match rx.wait_for(Option::is_some).await {
        Ok(s) => s.expect("waited for Some"),
        // The sender lives as long as the connection's tasks: treat its loss as a cut.
        Err(_) => CutStyle::Abort,
    }
}

/// Whether `side`'s socket is reset at a cut of `style` (otherwise it is closed after what
/// is queued for it was delivered).
fn resets(side: Side, style: CutStyle) -> bool {
    side == Side::Client || style == CutStyle::Abort
}

async fn read_side(
    link: Link,
    mut rh: OwnedReadHalf,
    side: Side,
    tx: mpsc::Sender<Chunk>,
    mut cut: watch::Receiver<Option<CutStyle>>,
) {
    let plan = link.plan;
    let chunk = match plan.rate {
        // Small reads on a slow line, so its pace is smooth (about 20 reads a second).
        Some(rate) => ((rate / 20) as usize).clamp(512, CHUNK),
        None => CHUNK,
    };
    let mut buf = vec![0u8; chunk];
    let mut next_free = Instant::now();
    loop {
        if plan.rate.is_some() {
            tokio::select! {
                _ = tokio::time::sleep_until(next_free) => {}
                style = cut_signal(&mut cut) => return stop_reading(rh, side, style),
            }
        }
        let n = tokio::select! {
            r = rh.read(&mut buf) => match r {
                Ok(n) => n,
                Err(_) => {
                    // The peer reset: pass it on.
                    link.cut(CutStyle::Abort, Cause::Peer);
                    return stop_reading(rh, side, CutStyle::Abort);
                }
            },
            style = cut_signal(&mut cut) => return stop_reading(rh, side, style),
        };
        if n == 0 {
            // End of stream: the writer on the other side sends FIN once the queue drained.
            return;
        }
        let mut take = n;
        let mut cut_now = None;
        let before = link.moved.fetch_add(n as u64, Ordering::Relaxed);
        if let Some((budget, style)) = plan.cut {
            if before + n as u64 >= budget {
                take = budget.saturating_sub(before) as usize;
                cut_now = Some(style);
            }
        }
        let now = Instant::now();
        if let Some(rate) = plan.rate {
            next_free = next_free.max(now) + Duration::from_secs_f64(take as f64 / rate as f64);
        }
        if take > 0 && tx.send((now + plan.delay, buf[..take].to_vec())).await.is_err() {
            // The writer is gone (its socket failed): it cut the connection already.
            return stop_reading(rh, side, CutStyle::Abort);
        }
        if let Some(style) = cut_now {
            link.cut(style, Cause::Fault);
            return stop_reading(rh, side, style);
        }
    }
}

fn stop_reading(rh: OwnedReadHalf, side: Side, style: CutStyle) {
    if resets(side, style) {
        let _ = rh.as_ref().set_zero_linger();
    }
    drop(rh);
}

async fn write_side(
    link: Link,
    mut wh: OwnedWriteHalf,
    side: Side,
    mut rx: mpsc::Receiver<Chunk>,
    mut cut: watch::Receiver<Option<CutStyle>>,
) {
    let counter = match side {
        Side::Upstream => &link.shared.counters.bytes_up,
        Side::Client => &link.shared.counters.bytes_down,
    };
    loop {
        // Once a cut says this side is to be reset, stop at once; otherwise drain the queue.
        let reset_now = matches!(*cut.borrow(), Some(style) if resets(side, style));
        if reset_now {
            wh.forget();
            return;
        }
        let next = tokio::select! {
            c = rx.recv() => c,
            style = cut_signal(&mut cut), if cut.borrow().is_none() => {
                if resets(side, style) {
                    wh.forget();
                    return;
                }
                // Deliver what is queued: the reader stopped, so the queue ends.
                continue;
            }
        };
        let Some((due, bytes)) = next else {
            // The peer half-closed (pass it on), or a cut left this side to deliver what was
            // in flight: close with FIN, not a reset, so those bytes are not discarded.
            let _ = wh.shutdown().await;
            return;
        };
        let wait = tokio::time::sleep_until(due);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                style = cut_signal(&mut cut), if cut.borrow().is_none() => {
                    if resets(side, style) {
                        wh.forget();
                        return;
                    }
                }
            }
        }
        if wh.write_all(&bytes).await.is_err() {
            link.cut(CutStyle::Abort, Cause::Peer);
            wh.forget();
            return;
        }
        counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on loopback (std threads: the proxy brings its own runtime).
    fn echo() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    /// Sends `data` through the proxy and reads the echo until the end or an error.
    fn round_trip(proxy: &FaultProxy, data: Vec<u8>) -> Vec<u8> {
        let s = std::net::TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&data);
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let mut got = Vec::new();
        let mut r = s;
        let _ = r.read_to_end(&mut got);
        writer.join().unwrap();
        got
    }

    fn pattern(n: usize) -> Vec<u8> {
        let mut rng = SplitMix::new(7);
        (0..n).map(|_| rng.next_u64() as u8).collect()
    }

    #[test]
    fn a_delayed_connection_relays_every_byte_in_order() {
        let faults = Faults {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(20),
            ..Faults::none()
        };
        let proxy = FaultProxy::start(echo(), faults, 1);
        let data = pattern(1 << 20);
        assert!(round_trip(&proxy, data.clone()) == data, "bytes changed on the way");
        let st = proxy.stats();
        assert_eq!((st.connections, st.cuts), (1, 0), "{st:?}");
        assert_eq!((st.bytes_up, st.bytes_down), (1 << 20, 1 << 20), "{st:?}");
    }

    #[test]
    fn a_connection_is_cut_once_its_budget_has_passed() {
        let cuts = Cuts::After { min_bytes: 100_000, max_bytes: 100_000, probability: 1.0 };
        let proxy = FaultProxy::start(echo(), Faults { cuts, ..Faults::none() }, 1);
        let data = pattern(1 << 20);
        let got = round_trip(&proxy, data.clone());
        // Both directions count: the client gets at most the budget back, and a prefix of it.
        assert!(got.len() < 100_000, "{} bytes came back", got.len());
        assert!(data.starts_with(&got));
        let st = proxy.stats();
        assert_eq!(st.cuts, 1, "{st:?}");
        assert!(st.bytes_up + st.bytes_down <= 100_000, "{st:?}");
    }
}
