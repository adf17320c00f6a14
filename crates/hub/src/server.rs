//! TLS acceptor + HTTP/1.1 server. Authentication of devices is the TLS layer: a client
//! certificate must chain to the society CA, or to the manufacturing CA (IDevIDs, for
//! enrollment only) when the hub has one. The leaf's fingerprint and the CA it chains to are
//! attached to every request of the connection ([`ConnPeer`]); the API looks the fingerprint
//! up in the registry on every request, so a revocation reaches open connections.
//!
//! A client may also send no certificate at all (a browser: the operators' dashboard). Such
//! a connection is marked [`ClientAuth::Anonymous`] and the API's middleware lets it reach
//! the dashboard's paths only, which have their own login; every other path answers 401
//! before routing. A certificate that is sent must still chain to a hub CA, or the
//! handshake fails as before.
//!
//! At most `max_connections` connections are served at once: the accept loop takes a permit
//! before it accepts, so further clients wait in the kernel's listen backlog (their connect
//! timeout decides when they give up). Idle keep-alive connections close after
//! `header_timeout_secs`. Garbage collection ([`crate::gc`]: unreferenced objects, expired
//! upload sessions) runs every `gc_interval_secs`.

use super::api::{self, Anchor, ClientAuth, ConnPeer, HubState, Limits, UploadSlots};
use super::config::{ConfigError, HubConfig};
use super::enroll::EnrollSettings;
use super::store::{MetaStore, ObjectStore, StoreError};
use fgw_tls::TlsError;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A client has this long to finish the TLS handshake (stops idle half-open connections
/// from holding sockets).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, in-flight requests get this long to finish.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the hub could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PKI files are not usable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("hub: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The WireGuard tunnel could not be set up (boxed: it is the largest error here).
    #[error(transparent)]
    Vpn(Box<crate::vpn::VpnError>),
    /// The background server task panicked or was cancelled.
    #[error("hub: server task failed")]
    Join,
}

impl From<crate::vpn::VpnError> for ServeError {
    fn from(e: crate::vpn::VpnError) -> Self {
        ServeError::Vpn(Box::new(e))
    }
}

/// ALPN: HTTP/1.1 only, as `fgw_tls` configures both ends.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The server's TLS config, and a verifier for the society CA alone (which root a client
/// chains to is decided with it after the handshake).
fn tls_config(
    cfg: &HubConfig,
) -> Result<(rustls::ServerConfig, Arc<dyn ClientCertVerifier>), ServeError> {
    use rustls::pki_types::pem::{self, PemObject};
    use rustls::pki_types::PrivateKeyDer;
    let provider = fgw_tls::provider();
    let verifier = |roots: rustls::RootCertStore, path: PathBuf| {
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|source| TlsError::Verifier { path, source })
    };
    let society = verifier(fgw_tls::ca_roots(&cfg.ca_cert())?, cfg.ca_cert())?;
    let mut roots = fgw_tls::ca_roots(&cfg.ca_cert())?;
    let manufacturing = cfg.manufacturing_ca_cert();
    if manufacturing.exists() {
        for cert in fgw_tls::load_certs(&manufacturing)? {
            roots
                .add(cert)
                .map_err(|source| TlsError::BadCa { path: manufacturing.clone(), source })?;
        }
    } else {
        tracing::warn!(
            path = %manufacturing.display(),
            "no manufacturing CA certificate: IDevIDs are not accepted (hub init-manufacturing)"
        );
    }
    // A client without a certificate gets through the handshake (browsers of the
    // dashboard); the API then serves it the dashboard's paths only. A certificate that is
    // sent must chain to one of the roots.
    let both = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| TlsError::Verifier { path: manufacturing, source })?;
    let (cert_p, key_p) = (cfg.server_cert(), cfg.server_key());
    let chain = fgw_tls::load_certs(&cert_p)?;
    let key = PrivateKeyDer::from_pem_file(&key_p).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey { path: key_p.clone() },
        pem::Error::Io(source) => TlsError::Io { path: key_p.clone(), source },
        source => TlsError::Pem { path: key_p.clone(), source },
    })?;
    let config_err = |source| TlsError::Config { cert: cert_p.clone(), key: key_p.clone(), source };
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(both)
        .with_single_cert(chain, key)
        .map_err(config_err)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok((config, society))
}

/// A configured hub: stores opened, TLS loaded, not yet listening.
pub struct Hub {
    state: Arc<HubState>,
    tls: Arc<rustls::ServerConfig>,
    society: Arc<dyn ClientCertVerifier>,
    listen: SocketAddr,
    max_connections: usize,
    header_timeout: Duration,
    gc: crate::gc::GcPolicy,
    gc_interval: Duration,
}

impl Hub {
    /// Open the stores `[store]` names (default: embedded, under `data_dir`) and load the
    /// PKI files.
    pub fn open(cfg: &HubConfig) -> Result<Hub, ServeError> {
        let objects = crate::store::open_objects(cfg)?;
        let meta = crate::store::open_meta(cfg)?;
        Hub::with_stores(cfg, objects, meta)
    }

    /// A hub over any store implementations.
    pub fn with_stores(
        cfg: &HubConfig,
        objects: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetaStore>,
    ) -> Result<Hub, ServeError> {
        cfg.validate()?;
        fgw_tls::install_ring_provider();
        let (tls, society) = tls_config(cfg)?;
        let vpn_key = match &cfg.vpn {
            Some(_) => Some(crate::vpn::load_or_create_key(&cfg.vpn_key_file())?),
            None => None,
        };
        let state = Arc::new(HubState {
            objects,
            meta,
            limits: Limits {
                max_object_bytes: cfg.max_object_bytes,
                max_manifest_bytes: cfg.max_manifest_bytes,
                facility_quota_bytes: cfg.facility_quota_bytes,
                max_uploads_per_device: cfg.max_uploads_per_device,
                body_timeout: Duration::from_secs(cfg.body_timeout_secs),
                min_body_bytes_per_sec: cfg.min_body_bytes_per_sec,
                min_chunk_bytes: cfg.min_chunk_bytes,
                max_chunk_bytes: cfg.max_chunk_bytes,
                max_upload_bytes: cfg.max_upload_bytes,
                max_open_uploads_per_facility: cfg.max_open_uploads_per_facility,
            },
            uploads: UploadSlots::default(),
            chunks: crate::uploads::ChunkClaims::default(),
            running: crate::uploads::RunningHashes::default(),
            enroll: Arc::new(EnrollSettings::from_config(cfg, vpn_key.as_ref())?),
            releases: crate::releases::ReleasePaths::of(cfg),
            dashboard: crate::dashboard::Dashboard::from_config(&cfg.dashboard),
        });
        Ok(Hub {
            state,
            tls: Arc::new(tls),
            society,
            listen: cfg.listen_addr()?,
            max_connections: cfg.max_connections as usize,
            header_timeout: Duration::from_secs(cfg.header_timeout_secs),
            gc: cfg.gc_policy(),
            gc_interval: Duration::from_secs(cfg.gc_interval_secs),
        })
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.state.objects
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.state.meta
    }

    /// Listen on the configured address and serve in the background.
    pub async fn bind(self) -> Result<RunningHub, ServeError> {
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: self.listen, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr: self.listen, source })?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let objects = self.state.objects.clone();
        let meta = self.state.meta.clone();
        let task = tokio::spawn(self.run(listener, async {
            let _ = stop_rx.await;
        }));
        Ok(RunningHub { addr, stop: Some(stop_tx), task, objects, meta })
    }

    /// Accept connections on `listener` until `shutdown` completes, then drain.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.run_listeners(listener, None, shutdown).await
    }

    /// Serve every route on `listener` and, if given, enrollment alone on `enrollment` (the
    /// public listener of a hub whose API is inside the tunnel), until `shutdown` completes;
    /// then drain. Both share the connection cap.
    async fn run_listeners(
        self,
        listener: TcpListener,
        enrollment: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let router = api::router(self.state.clone());
        let enroll_router = api::router_for(self.state.clone(), api::Surface::EnrollmentOnly);
        if let Some(addr) = enrollment.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(%addr, "hub listening for enrollment only");
        }
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let conn_ids = AtomicU64::new(0);
        let gc = tokio::spawn(collect_periodically(self.state.clone(), self.gc, self.gc_interval));
        let releases = tokio::spawn(release_upkeep(self.state.clone()));
        tokio::pin!(shutdown);
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, max_connections = self.max_connections, "hub listening");
        }
        'serve: loop {
            // A permit first: over the cap, the next client waits in the listen backlog.
            let permit = loop {
                tokio::select! {
                    _ = &mut shutdown => break 'serve,
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    p = permits.clone().acquire_owned() => {
                        break p.expect("the semaphore is never closed");
                    }
                }
            };
            let (accepted, surface_router) = tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                accepted = listener.accept() => (accepted, &router),
                accepted = accept_maybe(enrollment.as_ref()) => (accepted, &enroll_router),
            };
            match accepted {
                Ok((tcp, _peer)) => {
                    let conn = connection(
                        acceptor.clone(),
                        tcp,
                        self.society.clone(),
                        conn_ids.fetch_add(1, Ordering::Relaxed) + 1,
                        surface_router.clone(),
                        drain_rx.clone(),
                        self.header_timeout,
                    );
                    conns.spawn(async move {
                        conn.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        gc.abort();
        releases.abort();
        tracing::info!(connections = conns.len(), "hub shutting down");
        let _ = drain_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            conns.abort_all();
        }
        Ok(())
    }
}

/// The next connection on `listener`; never, if there is none.
async fn accept_maybe(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Every `interval`, collect under `policy` (counts logged).
async fn collect_periodically(
    state: Arc<HubState>,
    policy: crate::gc::GcPolicy,
    interval: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (objects, meta) = (state.objects.clone(), state.meta.clone());
        let run = tokio::task::spawn_blocking(move || {
            crate::gc::collect(&*objects, &*meta, &policy, std::time::SystemTime::now())
        });
        match run.await {
            Ok(Ok(report)) => crate::gc::log(&report),
            Ok(Err(e)) => tracing::error!(error = %e, "garbage collection failed"),
            Err(_) => tracing::error!("garbage collection task failed"),
        }
    }
}

/// Seconds between rollout evaluations (halting on failures).
const ROLLOUT_EVAL_INTERVAL: Duration = Duration::from_secs(5);
/// Seconds between checks of the release timestamp's expiry.
const RELEASE_REFRESH_INTERVAL: Duration = Duration::from_secs(600);

/// The release repository (made if missing), then, periodically: halt rollouts whose
/// failures reached their threshold, and re-sign snapshot and timestamp before expiry.
async fn release_upkeep(state: Arc<HubState>) {
    if let Err(e) = crate::releases::ensure_repository(&state.releases).await {
        tracing::error!(error = %e, "release repository unavailable");
    }
    let mut tick = tokio::time::interval(ROLLOUT_EVAL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refresh: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let meta = state.meta.clone();
        let run = tokio::task::spawn_blocking(move || {
            crate::rollout::evaluate(&*meta, chrono::Utc::now())
        });
        match run.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "rollout evaluation failed"),
            Err(_) => tracing::error!("rollout evaluation task failed"),
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= RELEASE_REFRESH_INTERVAL) {
            last_refresh = Some(tokio::time::Instant::now());
            if let Err(e) = crate::releases::refresh_if_due(&state.releases).await {
                tracing::error!(error = %e, "release metadata refresh failed");
            }
        }
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    society: Arc<dyn ClientCertVerifier>,
    conn: u64,
    router: axum::Router,
    mut drain: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "tls handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!("tls handshake timed out");
            return;
        }
    };
    let client = match tls.get_ref().1.peer_certificates().and_then(|c| c.split_first()) {
        Some((leaf, intermediates)) => {
            // The handshake accepted a chain to one of the roots; to the society CA, or else
            // to the manufacturing CA. The registry decides per request what it may do.
            let now = rustls::pki_types::UnixTime::now();
            let anchor = match society.verify_client_cert(leaf, intermediates, now) {
                Ok(_) => Anchor::Society,
                Err(_) => Anchor::Manufacturing,
            };
            let fingerprint = fgw_tls::cert_fingerprint(leaf);
            tracing::debug!(conn, %fingerprint, ?anchor, "tls connection");
            ClientAuth::Certificate { fingerprint, anchor }
        }
        None => {
            tracing::debug!(conn, "tls connection without a client certificate");
            ClientAuth::Anonymous
        }
    };
    let peer = ConnPeer { client, conn };
    let svc = tower::ServiceExt::map_request(router, move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Also closes a keep-alive connection idle this long, freeing its permit.
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = drain.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A hub serving in the background (tests, embedding).
pub struct RunningHub {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    objects: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetaStore>,
}

impl RunningHub {
    /// The bound address (useful with `listen = "127.0.0.1:0"`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The metadata store.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// Stop accepting, drain in-flight requests, and wait.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|_| ServeError::Join)?
    }
}

/// Open the hub described by `cfg` and start serving in the background on `cfg.listen`
/// (port 0 picks a free port; see [`RunningHub::addr`]).
pub async fn bind(cfg: HubConfig) -> Result<RunningHub, ServeError> {
    Hub::open(&cfg)?.bind().await
}

/// Serve until `shutdown` completes.
pub async fn serve(
    cfg: HubConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let hub = Hub::open(&cfg)?;
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
    };
    let Some(vpn) = &cfg.vpn else {
        let listener = bind(hub.listen).await?;
        return hub.run(listener, shutdown).await;
    };
    // The tunnel first: the API listens on its address. `listen` then serves enrollment
    // only, which a box needs before it has the tunnel's peer data.
    let tunnel = crate::vpn::HubTunnel::start(&cfg, hub.meta().clone()).await?;
    let api = bind(vpn.api_listen_addr()?).await?;
    let public = bind(hub.listen).await?;
    let served = hub.run_listeners(api, Some(public), shutdown).await;
    drop(tunnel);
    served
}
