//! Uplink to the society hub over mutual TLS (de-identified side only: it accepts nothing but
//! a [`StagedPackage`], and never imports `record` or `ingest`).
//!
//! Protocol (`docs/package-format.md#upload-protocol`): for each file `HEAD` the object and
//! send it if missing, then `PUT` the manifest. Objects up to `single_put_max_bytes` go in one
//! `PUT`; larger ones in chunks through an upload session ([`crate::chunked`]), so a cut costs
//! at most the chunk in flight. Otherwise resumable at file granularity: after a network cut
//! only the objects the hub lacks are sent again. If the hub still answers 409 (objects
//! missing) the listed objects are uploaded and the manifest is retried once.
//!
//! Every object and chunk body is streamed from its staged file through the [`Throttle`]
//! (`max_bytes_per_sec` and `[[uplink.schedule]]`), hashed as it goes; [`UplinkProgress`]
//! counts what was sent, for status.

use crate::body::{range_body, FileRange, RangeFault};
use crate::chunked::ROUTE_OPEN;
use crate::outbox::StagedPackage;
use crate::proxy::{HubRoute, ProxyError, ProxySettings};
use crate::throttle::{RateSchedule, ScheduleEntry, Throttle, TimeOfDay};
use fgw_format::ids::{FacilityId, Sha256Hex, UploadId};
use fgw_format::package::protocol::{Ack, ApiError, ExamListing, OBJECTS, PACKAGES};
use fgw_format::package::FileEntry;
use fgw_tls::TlsError;
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `[uplink]` in the gateway config. Defaults match a hub on the same machine with the
/// files `hub issue-device --out /etc/facility-gateway/uplink` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Base URL of the hub; must be `https://`. Default `https://localhost:8443`.
    #[serde(default = "default_hub_url")]
    pub hub_url: String,
    /// Several hub nodes (issue 15): `["https://…", "https://…"]`, an alternative to
    /// `hub_url`. When set, it is used instead: requests go to the first, and a request that
    /// cannot reach its node (connection refused, reset, timed out) moves the box to the
    /// next, where an interrupted upload resumes (upload sessions are named by facility and
    /// object, so any node sharing the hub's stores finds them). Default empty.
    #[serde(default)]
    pub hub_urls: Vec<String>,
    /// The society CA: the only root trusted for the hub's certificate.
    /// Default `/etc/facility-gateway/uplink/ca.crt`.
    #[serde(default = "default_ca_cert")]
    pub ca_cert: PathBuf,
    /// This gateway's client certificate. Default `/etc/facility-gateway/uplink/device.crt`.
    #[serde(default = "default_client_cert")]
    pub client_cert: PathBuf,
    /// Its private key (0600). Default `/etc/facility-gateway/uplink/device.key`.
    #[serde(default = "default_client_key")]
    pub client_key: PathBuf,
    /// Per-request timeout in seconds for small requests (HEAD, manifest, listing).
    /// Default 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// TCP + TLS connect timeout in seconds. Default 10.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Slowest upload rate still considered alive, in bytes/s: an object PUT may take
    /// `timeout_secs + size / min_upload_bytes_per_sec`. Default 65536 (64 KiB/s, a
    /// congested hospital line), so a 256 MiB video gets ~70 minutes.
    #[serde(default = "default_min_upload_bytes_per_sec")]
    pub min_upload_bytes_per_sec: u64,
    /// Objects up to this size go in one `PUT /v1/objects`; larger ones in chunks through an
    /// upload session. Default 8 MiB; 65536 to 4 GiB.
    #[serde(default = "default_single_put_max_bytes")]
    pub single_put_max_bytes: u64,
    /// Chunk size asked for when a session is opened (the hub may answer with another, which
    /// is then used). Default 8 MiB; 65536 to 1 GiB.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: u64,
    /// Cap on request bodies (objects and chunks) in bytes/s, outside the schedule's windows;
    /// 0 = unlimited (the default). Otherwise at least `min_upload_bytes_per_sec`.
    #[serde(default)]
    pub max_bytes_per_sec: u64,
    /// `[[uplink.schedule]]`: windows of the box's local time with their own cap,
    /// `{ from = "HH:MM", to = "HH:MM", max_bytes_per_sec = N }` (0 = unlimited). `to` before
    /// `from` wraps midnight; the first window containing the time wins. Default none.
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// The hospital's HTTP proxy, `http://host:port`, when the box may reach the hub only
    /// through it (CONNECT; TLS stays end to end): enrollment and uploads both use it. Default
    /// none: straight to the hub, whatever the environment's proxy variables say.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// User name for the proxy's basic authentication, with `proxy_password_file`.
    #[serde(default)]
    pub proxy_username: Option<String>,
    /// File (0600) holding the proxy password on one line. Never in this file, which is
    /// shown and logged.
    #[serde(default)]
    pub proxy_password_file: Option<PathBuf>,
}

fn default_hub_url() -> String {
    "https://localhost:8443".into()
}
fn default_ca_cert() -> PathBuf {
    "/etc/facility-gateway/uplink/ca.crt".into()
}
fn default_client_cert() -> PathBuf {
    "/etc/facility-gateway/uplink/device.crt".into()
}
fn default_client_key() -> PathBuf {
    "/etc/facility-gateway/uplink/device.key".into()
}
fn default_timeout_secs() -> u64 {
    60
}
fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_min_upload_bytes_per_sec() -> u64 {
    64 * 1024
}
fn default_single_put_max_bytes() -> u64 {
    8 << 20
}
fn default_chunk_bytes() -> u64 {
    8 << 20
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            hub_url: default_hub_url(),
            hub_urls: Vec::new(),
            ca_cert: default_ca_cert(),
            client_cert: default_client_cert(),
            client_key: default_client_key(),
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            min_upload_bytes_per_sec: default_min_upload_bytes_per_sec(),
            single_put_max_bytes: default_single_put_max_bytes(),
            chunk_bytes: default_chunk_bytes(),
            max_bytes_per_sec: 0,
            schedule: Vec::new(),
            proxy_url: None,
            proxy_username: None,
            proxy_password_file: None,
        }
    }
}

impl UplinkConfig {
    /// Make relative certificate paths relative to `base` (the config file's directory).
    pub fn resolve_relative(&mut self, base: &Path) {
        for p in [&mut self.ca_cert, &mut self.client_cert, &mut self.client_key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = self.proxy_password_file.as_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The proxy settings as written (see [`HubRoute`]).
    pub fn proxy_settings(&self) -> ProxySettings<'_> {
        ProxySettings {
            url: self.proxy_url.as_deref(),
            username: self.proxy_username.as_deref(),
            password_file: self.proxy_password_file.as_deref(),
        }
    }

    /// The way to the hub: direct or through the proxy (reads the password file).
    pub fn hub_route(&self) -> Result<HubRoute, ProxyError> {
        HubRoute::from_settings(self.proxy_settings())
    }

    /// The hub nodes in order: `hub_urls`, or `hub_url` alone.
    pub fn hub_list(&self) -> Vec<&str> {
        if self.hub_urls.is_empty() {
            vec![self.hub_url.as_str()]
        } else {
            self.hub_urls.iter().map(String::as_str).collect()
        }
    }

    /// Check shapes only (files are read by [`Uplink::new`]). Error: (key, what is allowed).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        parse_hub_url(&self.hub_url).map_err(|e| match e {
            UplinkError::Config { key, expected } => (key, expected),
            other => ("uplink.hub_url", other.to_string()),
        })?;
        if self.hub_urls.len() > 16 {
            return Err(("uplink.hub_urls", "at most 16 https:// URLs".into()));
        }
        for u in &self.hub_urls {
            parse_hub_url(u).map_err(|_| {
                ("uplink.hub_urls", "https:// URLs without query or fragment".to_string())
            })?;
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(("uplink.timeout_secs", "an integer from 1 to 3600".into()));
        }
        if !(1..=600).contains(&self.connect_timeout_secs) {
            return Err(("uplink.connect_timeout_secs", "an integer from 1 to 600".into()));
        }
        if self.min_upload_bytes_per_sec < 1024 {
            return Err(("uplink.min_upload_bytes_per_sec", "an integer >= 1024".into()));
        }
        if !(64 << 10..=4 << 30).contains(&self.single_put_max_bytes) {
            return Err((
                "uplink.single_put_max_bytes",
                "a number of bytes from 65536 to 4294967296".into(),
            ));
        }
        if !(64 << 10..=1 << 30).contains(&self.chunk_bytes) {
            return Err((
                "uplink.chunk_bytes",
                "a number of bytes from 65536 to 1073741824".into(),
            ));
        }
        self.rate_schedule().map_err(|e| (e.key, e.expected))?;
        HubRoute::check(self.proxy_settings()).map_err(|e| match e {
            ProxyError::Config { key, expected } => (key, expected.to_string()),
            other => ("uplink.proxy_url", other.to_string()),
        })?;
        Ok(())
    }

    /// The cap and schedule of this config (what [`Uplink::new`] paces by), for a process
    /// that has no [`Uplink`], e.g. `gateway status`: `cap_at(TimeOfDay::now_local())`.
    pub fn rate_schedule(&self) -> Result<RateSchedule, crate::throttle::ScheduleError> {
        RateSchedule::new(self.max_bytes_per_sec, &self.schedule, self.min_upload_bytes_per_sec)
    }
}

fn parse_hub_url(s: &str) -> Result<String, UplinkError> {
    let bad = || UplinkError::Config {
        key: "uplink.hub_url",
        expected: "an https:// URL without query or fragment, e.g. https://hub.example:8443".into(),
    };
    let url = reqwest::Url::parse(s).map_err(|_| bad())?;
    // https only: the hub is reached over the open network; there is no plaintext mode.
    if url.scheme() != "https"
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Why an upload or hub request failed; the pipeline retries only [`Self::Retryable`].
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// A setting of `[uplink]` is not usable.
    #[error("{key}: expected {expected}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What it must be.
        expected: String,
    },
    /// The certificate, key or CA files are not usable.
    #[error("uplink: {0}")]
    Tls(#[from] TlsError),
    /// The HTTP client could not be built.
    #[error("uplink: cannot build the HTTP client: {0}")]
    Client(String),
    /// The proxy settings cannot be used.
    #[error("uplink: {0}")]
    Proxy(#[from] ProxyError),
    /// Connect / TLS / timeout failures, 5xx, 408 and 429: worth retrying later.
    #[error("uplink {route}: {reason}")]
    Retryable {
        /// The request.
        route: &'static str,
        /// What failed, with its causes.
        reason: String,
    },
    /// The hub refused the request (4xx): retrying the same bytes will not help.
    #[error("uplink {route}: hub rejected the request ({status}): {message}")]
    Rejected {
        /// The request.
        route: &'static str,
        /// The HTTP status.
        status: u16,
        /// The hub's error text (ids and reasons only).
        message: String,
    },
    /// A staged file could not be read.
    #[error("uplink: reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// A staged file changed after it was verified.
    #[error("uplink: {path} no longer matches its hash {sha256}")]
    LocalCorrupt {
        /// The file.
        path: PathBuf,
        /// The hash it must have.
        sha256: Sha256Hex,
    },
    /// An upload session vanished at the hub (404: expired or collected) again after it was
    /// opened anew in the same attempt.
    #[error("uplink {route}: upload session {upload_id} is gone at the hub")]
    SessionGone {
        /// The request.
        route: &'static str,
        /// The session.
        upload_id: UploadId,
    },
    /// The hub answered with something the protocol does not allow.
    #[error("uplink {route}: unexpected response from the hub: {what}")]
    Protocol {
        /// The request.
        route: &'static str,
        /// What was unexpected.
        what: String,
    },
}

/// What the pipeline does after a failed upload: the hub's answer, classified
/// (docs/decisions.md, "4xx classification").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Network, TLS or timeout failures, 5xx, 408, 429: the same upload later, with back-off.
    RetryLater,
    /// The hub refuses this box, not this package: 401 and 403 (certificate not registered,
    /// role, facility mismatch), 404 and 405 on our routes (a wrong hub URL or version), or the
    /// uplink cannot be set up. Every package would get the same answer, so the uplink pauses;
    /// items stay where they are and go once the cause is fixed.
    PauseUplink,
    /// The hub refused this package (400, 413, 422 and other 4xx), an answer the protocol
    /// does not allow, or the staged files changed: the package is quarantined, re-drivable
    /// once the cause is fixed.
    RefusePackage,
}

impl UplinkError {
    /// True if the same upload may succeed later (network, hub overload or outage).
    pub fn is_retryable(&self) -> bool {
        self.disposition() == Disposition::RetryLater
    }

    /// What to do about this failure.
    pub fn disposition(&self) -> Disposition {
        match self {
            // Sessions are the hub's housekeeping, not a verdict on the box or the package.
            UplinkError::Retryable { .. } | UplinkError::SessionGone { .. } => {
                Disposition::RetryLater
            }
            UplinkError::Config { .. }
            | UplinkError::Tls(_)
            | UplinkError::Client(_)
            | UplinkError::Proxy(_) => Disposition::PauseUplink,
            UplinkError::Rejected { status, .. } => match *status {
                401 | 403 | 404 | 405 | 407 | 421 => Disposition::PauseUplink,
                _ => Disposition::RefusePackage,
            },
            UplinkError::Io { .. } | UplinkError::LocalCorrupt { .. } => Disposition::RefusePackage,
            UplinkError::Protocol { .. } => Disposition::RefusePackage,
        }
    }
}

const ROUTE_HEAD: &str = "HEAD /v1/objects";
const ROUTE_PUT_OBJECT: &str = "PUT /v1/objects";
const ROUTE_PUT_PACKAGE: &str = "PUT /v1/packages";
const ROUTE_LIST: &str = "GET /v1/facilities/exams";
const ROUTE_HEARTBEAT: &str = "PUT /v1/heartbeat";
const ROUTE_HEALTH: &str = "GET /v1/health";
const ROUTE_UPDATE: &str = "GET /v1/update";

/// How the uplink authenticates to the hub.
#[derive(Clone)]
pub enum ClientCredential {
    /// `[uplink] ca_cert`, `client_cert` and `client_key` files (provisioned by hand; the
    /// boxes of earlier issues, development).
    Files,
    /// An enrolled box (issue 12): the certificate a resolver hands out (the operational
    /// certificate, signed for by the key store, replaced when renewed), trusting `ca_cert`.
    Resolver {
        /// The society CA.
        ca_cert: PathBuf,
        /// The current certificate and its signing key.
        resolver: Arc<dyn rustls::client::ResolvesClientCert>,
    },
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Files => f.write_str("Files"),
            ClientCredential::Resolver { ca_cert, .. } => {
                write!(f, "Resolver(ca {})", ca_cert.display())
            }
        }
    }
}

/// A connection pool to the hub, authenticated with this gateway's certificate. Clones share
/// the throttle and the byte counter.
#[derive(Debug, Clone)]
pub struct Uplink {
    credential: ClientCredential,
    pub(crate) client: reqwest::Client,
    hubs: Arc<HubNodes>,
    pub(crate) timeout: Duration,
    min_rate: u64,
    single_put_max: u64,
    pub(crate) chunk_bytes: u64,
    pub(crate) throttle: Throttle,
}

/// The hub nodes and the one in use (shared by clones of an uplink).
#[derive(Debug)]
struct HubNodes {
    urls: Vec<String>,
    current: AtomicUsize,
}

/// The uplink's progress, for status: cheap to clone and read from any thread.
#[derive(Debug, Clone)]
pub struct UplinkProgress {
    throttle: Throttle,
}

impl UplinkProgress {
    /// Request body bytes (objects and chunks) handed to the connection since the uplink was
    /// made (kept across [`Uplink::renew`]), attempts that failed included: sample it twice
    /// for the rate actually achieved.
    pub fn bytes_sent(&self) -> u64 {
        self.throttle.sent().load(Ordering::Relaxed)
    }

    /// The counter behind [`Self::bytes_sent`].
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.throttle.sent().clone()
    }

    /// The cap in force now (box local time), bytes/s; `None` = unlimited.
    pub fn rate_cap_now(&self) -> Option<u64> {
        self.throttle.cap_now().map(|c| c.get())
    }

    /// Estimated time to send `bytes` starting now, at `line_bytes_per_sec` (the rate the
    /// line achieves, e.g. measured from [`Self::bytes_sent`]) held under the cap of each
    /// schedule window as the clock passes through them. `None` if the rate is 0 while
    /// uncapped.
    pub fn time_to_send(&self, bytes: u64, line_bytes_per_sec: u64) -> Option<Duration> {
        self.throttle.schedule().time_to_send(bytes, TimeOfDay::now_local(), line_bytes_per_sec)
    }
}

enum ManifestOutcome {
    Ack(Ack),
    Missing(Vec<Sha256Hex>),
}

/// Error text with its causes (reqwest's top-level message alone is "error sending request").
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

pub(crate) fn send_failed(route: &'static str, e: reqwest::Error) -> UplinkError {
    UplinkError::Retryable { route, reason: describe(e) }
}

impl Uplink {
    /// The base URL of the hub node in use.
    pub(crate) fn base(&self) -> &str {
        let i = self.hubs.current.load(Ordering::Relaxed) % self.hubs.urls.len();
        &self.hubs.urls[i]
    }

    /// A request could not reach its node: later requests go to the next node (when there
    /// is more than one), and the error is retryable as always.
    pub(crate) fn unreachable(&self, route: &'static str, e: reqwest::Error) -> UplinkError {
        let n = self.hubs.urls.len();
        if n > 1 && (e.is_connect() || e.is_timeout() || e.is_request()) {
            let from = self.hubs.current.fetch_add(1, Ordering::Relaxed) % n;
            tracing::warn!(from = %self.hubs.urls[from], to = %self.hubs.urls[(from + 1) % n], route, "hub node unreachable; failing over");
        }
        send_failed(route, e)
    }
}

/// Turn a non-success response into the error class the pipeline acts on.
/// A success answer's JSON body as `T`; `what` names the body in the protocol error.
pub(crate) async fn json_answer<T: serde::de::DeserializeOwned>(
    route: &'static str,
    resp: Response,
    what: &str,
) -> Result<T, UplinkError> {
    resp.json().await.map_err(|e| UplinkError::Protocol {
        route,
        what: format!("{what} is not valid JSON ({})", describe(e)),
    })
}

pub(crate) async fn failure(route: &'static str, resp: Response) -> UplinkError {
    let status = resp.status();
    let message = match resp.json::<ApiError>().await {
        Ok(e) => e.error,
        Err(_) => status.canonical_reason().unwrap_or("no reason").to_string(),
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        UplinkError::Retryable { route, reason: format!("hub answered {status}: {message}") }
    } else {
        UplinkError::Rejected { route, status: status.as_u16(), message }
    }
}

impl Uplink {
    /// A client for the hub in `cfg`, with the certificate and key files of `cfg`.
    pub fn new(cfg: &UplinkConfig) -> Result<Uplink, UplinkError> {
        Uplink::with_credential(cfg, ClientCredential::Files)
    }

    /// A client for the hub in `cfg`, authenticated with `credential`.
    pub fn with_credential(
        cfg: &UplinkConfig,
        credential: ClientCredential,
    ) -> Result<Uplink, UplinkError> {
        let urls = cfg.hub_list().into_iter().map(parse_hub_url).collect::<Result<Vec<_>, _>>()?;
        let hubs = Arc::new(HubNodes { urls, current: AtomicUsize::new(0) });
        fgw_tls::install_ring_provider();
        let tls = match &credential {
            ClientCredential::Files => {
                fgw_tls::client_config(&cfg.ca_cert, &cfg.client_cert, &cfg.client_key)?
            }
            ClientCredential::Resolver { ca_cert, resolver } => {
                fgw_tls::client_config_with_resolver(ca_cert, resolver.clone())?
            }
        };
        let route = cfg.hub_route()?;
        let client = route
            .apply(reqwest::Client::builder())?
            .use_preconfigured_tls(tls)
            .https_only(true)
            .http1_only()
            // The hub never redirects; following one would resend bodies elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .user_agent(concat!("fgw-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UplinkError::Client(describe(e)))?;
        let schedule = cfg
            .rate_schedule()
            .map_err(|e| UplinkError::Config { key: e.key, expected: e.expected })?;
        Ok(Uplink {
            credential,
            client,
            hubs,
            timeout: Duration::from_secs(cfg.timeout_secs),
            min_rate: cfg.min_upload_bytes_per_sec.max(1),
            single_put_max: cfg.single_put_max_bytes,
            chunk_bytes: cfg.chunk_bytes.max(1),
            throttle: Throttle::new(schedule),
        })
    }

    /// A new client for `cfg` (new connections, certificate files read again) that keeps
    /// this one's throttle and byte counter, so status and the cap carry over.
    pub fn renew(&self, cfg: &UplinkConfig) -> Result<Uplink, UplinkError> {
        Ok(Uplink {
            throttle: self.throttle.clone(),
            ..Uplink::with_credential(cfg, self.credential.clone())?
        })
    }

    /// Bytes sent and the cap in force, for status.
    pub fn progress(&self) -> UplinkProgress {
        UplinkProgress { throttle: self.throttle.clone() }
    }

    /// Time allowed for a request whose body is `len` bytes: the base timeout plus the body
    /// at the slowest rate still considered alive (every cap is at least that rate).
    pub(crate) fn body_timeout(&self, len: u64) -> Duration {
        self.timeout + Duration::from_secs(len / self.min_rate)
    }

    /// The error for a body that stopped itself.
    pub(crate) fn local_fault(&self, f: RangeFault, entry: &FileEntry, path: &Path) -> UplinkError {
        match f {
            RangeFault::Changed => {
                UplinkError::LocalCorrupt { path: path.to_path_buf(), sha256: entry.sha256.clone() }
            }
            RangeFault::Io(source) => UplinkError::Io { path: path.to_path_buf(), source },
        }
    }

    /// Send a package; returns the hub's acknowledgement (after which the raw input may go).
    pub async fn upload(&self, pkg: &StagedPackage) -> Result<Ack, UplinkError> {
        let mut seen = BTreeSet::new();
        for (entry, path) in pkg.files() {
            // The same image twice in one package is one object.
            if !seen.insert(&entry.sha256) {
                continue;
            }
            if !self.has_object(&entry.sha256).await? {
                self.send_object(entry, path).await?;
            }
        }
        let missing = match self.put_manifest(pkg).await? {
            ManifestOutcome::Ack(ack) => return Ok(ack),
            ManifestOutcome::Missing(missing) => missing,
        };
        // Objects vanished between our HEAD and the manifest (hub restore, GC race): send
        // what it lists, once.
        for sha in &missing {
            let Some((entry, path)) = pkg.files().iter().find(|(e, _)| &e.sha256 == sha) else {
                return Err(UplinkError::Protocol {
                    route: ROUTE_PUT_PACKAGE,
                    what: format!(
                        "hub asked for object {sha}, which is not in package {}",
                        pkg.id()
                    ),
                });
            };
            self.send_object(entry, path).await?;
        }
        match self.put_manifest(pkg).await? {
            ManifestOutcome::Ack(ack) => Ok(ack),
            ManifestOutcome::Missing(missing) => Err(UplinkError::Retryable {
                route: ROUTE_PUT_PACKAGE,
                reason: format!("{} object(s) still missing after re-upload", missing.len()),
            }),
        }
    }

    /// Current exams of a facility as the hub sees them (own facility for a device).
    pub async fn list_exams(&self, facility: &FacilityId) -> Result<Vec<ExamListing>, UplinkError> {
        let url = format!("{}/v1/facilities/{facility}/exams", self.base());
        let resp = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_LIST, e))?;
        if !resp.status().is_success() {
            return Err(failure(ROUTE_LIST, resp).await);
        }
        json_answer(ROUTE_LIST, resp, "listing").await
    }

    /// Sends the box's heartbeat (`PUT /v1/heartbeat`; 204).
    pub async fn heartbeat(
        &self,
        heartbeat: &fgw_format::package::protocol::Heartbeat,
    ) -> Result<(), UplinkError> {
        let resp = self
            .client
            .put(format!("{}{}", self.base(), fgw_format::package::protocol::HEARTBEAT))
            .timeout(self.timeout)
            .json(heartbeat)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_HEARTBEAT, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(ROUTE_HEARTBEAT, resp).await)
        }
    }

    /// What the hub's rollouts offer this box (`GET /v1/update`).
    pub async fn update_offers(
        &self,
    ) -> Result<fgw_format::package::protocol::UpdateOffers, UplinkError> {
        let resp = self
            .client
            .get(format!("{}{}", self.base(), fgw_format::package::protocol::UPDATE_OFFERS))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_UPDATE, e))?;
        if !resp.status().is_success() {
            return Err(failure(ROUTE_UPDATE, resp).await);
        }
        json_answer(ROUTE_UPDATE, resp, "update offers").await
    }

    /// The connection pool to the hub (mutual TLS, the configured route): the release
    /// transport fetches the TUF repository through it.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The hub's base URL (`https://host:port`, no trailing slash).
    pub fn base_url(&self) -> &str {
        self.base()
    }

    /// The per-request timeout of the uplink.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Reachability and authentication check (`gateway doctor`-style).
    pub async fn health(&self) -> Result<(), UplinkError> {
        let resp = self
            .client
            .get(format!("{}/v1/health", self.base()))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_HEALTH, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(ROUTE_HEALTH, resp).await)
        }
    }

    async fn has_object(&self, sha: &Sha256Hex) -> Result<bool, UplinkError> {
        let resp = self
            .client
            .head(format!("{}{OBJECTS}/{sha}", self.base()))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_HEAD, e))?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure(ROUTE_HEAD, resp).await),
        }
    }

    /// One object, in one `PUT` or in chunks by its size.
    async fn send_object(&self, entry: &FileEntry, path: &Path) -> Result<(), UplinkError> {
        // The outbox checked size and hash at load; a file changed since is caught here (size)
        // or as it is read (hash), and never sent under its name.
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|source| UplinkError::Io { path: path.to_path_buf(), source })?
            .len();
        if len != entry.size {
            return Err(UplinkError::LocalCorrupt {
                path: path.to_path_buf(),
                sha256: entry.sha256.clone(),
            });
        }
        if entry.size <= self.single_put_max {
            return self.put_object(entry, path).await;
        }
        match self.put_chunked(entry, path).await {
            // A hub of a release before chunked uploads: one PUT, as before (a wrong hub URL
            // gets 404 there too and pauses the uplink).
            Err(UplinkError::Rejected { route: ROUTE_OPEN, status: 404 | 405, .. }) => {
                tracing::info!(object = %entry.sha256, "hub has no chunked uploads; sending the object in one request");
                self.put_object(entry, path).await
            }
            other => other,
        }
    }

    async fn put_object(&self, entry: &FileEntry, path: &Path) -> Result<(), UplinkError> {
        let range = FileRange {
            path: path.to_path_buf(),
            offset: 0,
            len: entry.size,
            sha256: entry.sha256.as_str().to_string(),
        };
        let (body, outcome) = range_body(range, self.throttle.clone())
            .map_err(|f| self.local_fault(f, entry, path))?;
        let resp = self
            .client
            .put(format!("{}{OBJECTS}/{}", self.base(), entry.sha256))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, entry.size)
            .timeout(self.body_timeout(entry.size))
            .body(body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return Err(match outcome.take() {
                    Some(f) => self.local_fault(f, entry, path),
                    None => self.unreachable(ROUTE_PUT_OBJECT, e),
                })
            }
        };
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(ROUTE_PUT_OBJECT, resp).await)
        }
    }

    async fn put_manifest(&self, pkg: &StagedPackage) -> Result<ManifestOutcome, UplinkError> {
        let resp = self
            .client
            .put(format!("{}{PACKAGES}/{}", self.base(), pkg.id()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(pkg.manifest_bytes().to_vec())
            .send()
            .await
            .map_err(|e| self.unreachable(ROUTE_PUT_PACKAGE, e))?;
        let status = resp.status();
        if status == StatusCode::CONFLICT {
            let body = resp.bytes().await.map_err(|e| self.unreachable(ROUTE_PUT_PACKAGE, e))?;
            let missing = match serde_json::from_slice::<
                fgw_format::package::protocol::MissingObjects,
            >(&body)
            {
                Ok(m) if !m.missing.is_empty() => m.missing,
                // No usable list: resend every object of the package.
                _ => pkg.files().iter().map(|(e, _)| e.sha256.clone()).collect(),
            };
            return Ok(ManifestOutcome::Missing(missing));
        }
        if !status.is_success() {
            return Err(failure(ROUTE_PUT_PACKAGE, resp).await);
        }
        let ack: Ack = json_answer(ROUTE_PUT_PACKAGE, resp, "acknowledgement").await?;
        // An ack for anything else would let us delete data the hub does not hold.
        if &ack.package_id != pkg.id() || ack.facility_id != pkg.manifest().facility_id {
            return Err(UplinkError::Protocol {
                route: ROUTE_PUT_PACKAGE,
                what: format!("acknowledgement does not match package {}", pkg.id()),
            });
        }
        Ok(ManifestOutcome::Ack(ack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_urls_must_be_https() {
        let cfg = UplinkConfig::default();
        cfg.validate().unwrap();
        let parsed: UplinkConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, cfg);
        for bad in ["http://hub:8443", "hub:8443", "https://hub/?x=1", "https://u:p@hub/"] {
            let c = UplinkConfig { hub_url: bad.into(), ..UplinkConfig::default() };
            assert_eq!(c.validate().unwrap_err().0, "uplink.hub_url", "{bad}");
        }
        assert_eq!(parse_hub_url("https://hub.example:8443/").unwrap(), "https://hub.example:8443");
        assert!(toml::from_str::<UplinkConfig>("verify = false").is_err());
    }

    #[test]
    fn answers_are_classified_by_who_they_are_about() {
        let rejected = |status| UplinkError::Rejected {
            route: ROUTE_PUT_PACKAGE,
            status,
            message: "x".into(),
        };
        // A registry mistake (403) or a wrong hub URL (404) is about the box: pause.
        for status in [401, 403, 404, 405] {
            assert_eq!(rejected(status).disposition(), Disposition::PauseUplink, "{status}");
            assert!(!rejected(status).is_retryable());
        }
        // What the hub says about this package: quarantine it.
        for status in [400, 409, 410, 413, 415, 422] {
            assert_eq!(rejected(status).disposition(), Disposition::RefusePackage, "{status}");
        }
        let later = UplinkError::Retryable { route: ROUTE_HEAD, reason: "503".into() };
        assert_eq!(later.disposition(), Disposition::RetryLater);
        assert!(later.is_retryable());
        let odd = UplinkError::Protocol { route: ROUTE_PUT_PACKAGE, what: "ack".into() };
        assert_eq!(odd.disposition(), Disposition::RefusePackage);
    }

    #[test]
    fn chunking_and_bandwidth_settings_are_checked_with_their_keys() {
        let c = UplinkConfig::default();
        assert_eq!((c.single_put_max_bytes, c.chunk_bytes), (8 << 20, 8 << 20));
        assert_eq!((c.max_bytes_per_sec, c.schedule.len()), (0, 0));
        let parsed: UplinkConfig = toml::from_str(
            r#"
            max_bytes_per_sec = 200000
            [[schedule]]
            from = "08:00"
            to = "18:00"
            max_bytes_per_sec = 100000
            [[schedule]]
            from = "22:00"
            to = "06:00"
            max_bytes_per_sec = 0
            "#,
        )
        .unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.schedule[1].to, "06:00");
        let key =
            |text: &str| toml::from_str::<UplinkConfig>(text).unwrap().validate().unwrap_err();
        assert_eq!(key("single_put_max_bytes = 1000").0, "uplink.single_put_max_bytes");
        assert_eq!(key("chunk_bytes = 0").0, "uplink.chunk_bytes");
        assert_eq!(key("chunk_bytes = 2147483648").0, "uplink.chunk_bytes");
        // A cap under the slowest rate still considered alive would time out its own bodies.
        let (k, expected) = key("max_bytes_per_sec = 1000");
        assert_eq!(k, "uplink.max_bytes_per_sec");
        assert!(expected.contains("65536"), "{expected}");
        assert_eq!(
            key("min_upload_bytes_per_sec = 1024\nmax_bytes_per_sec = 1000").0,
            "uplink.max_bytes_per_sec"
        );
        toml::from_str::<UplinkConfig>("min_upload_bytes_per_sec = 1024\nmax_bytes_per_sec = 2048")
            .unwrap()
            .validate()
            .unwrap();
        let entry = |from: &str, to: &str, rate: u64| {
            format!("[[schedule]]\nfrom = \"{from}\"\nto = \"{to}\"\nmax_bytes_per_sec = {rate}\n")
        };
        let two = |second: String| format!("{}{second}", entry("01:00", "02:00", 0));
        assert_eq!(key(&two(entry("7:00", "08:00", 0))).0, "uplink.schedule[1].from");
        assert_eq!(key(&two(entry("07:00", "24:00", 0))).0, "uplink.schedule[1].to");
        assert_eq!(key(&two(entry("07:00", "08:00", 5))).0, "uplink.schedule[1].max_bytes_per_sec");
        // Unknown keys in an entry are refused at parse time.
        assert!(toml::from_str::<UplinkConfig>(
            "[[schedule]]\nfrom = \"01:00\"\nto = \"02:00\"\nmax_bytes_per_sec = 0\nrate = 1"
        )
        .is_err());
    }

    #[test]
    fn a_vanished_session_is_retried_not_a_pause() {
        let gone = UplinkError::SessionGone {
            route: crate::chunked::ROUTE_PUT_CHUNK,
            upload_id: UploadId::new("0123456789abcdef0123456789abcdef").unwrap(),
        };
        assert_eq!(gone.disposition(), Disposition::RetryLater);
        // The route that opens sessions keeps the usual classification: a hub without it
        // (or a wrong URL) is about the box.
        let open = UplinkError::Rejected { route: ROUTE_OPEN, status: 404, message: "x".into() };
        assert_eq!(open.disposition(), Disposition::PauseUplink);
    }

    #[test]
    fn relative_paths_follow_the_config() {
        let mut c: UplinkConfig = toml::from_str("ca_cert = \"pki/ca.crt\"").unwrap();
        c.resolve_relative(Path::new("/etc/fgw"));
        assert_eq!(c.ca_cert, PathBuf::from("/etc/fgw/pki/ca.crt"));
        assert_eq!(c.client_key, PathBuf::from("/etc/facility-gateway/uplink/device.key"));
    }
}
