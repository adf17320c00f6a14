//! Uplink to the society hub over mutual TLS (de-identified side only: it accepts nothing but
//! a [`StagedPackage`], and never imports `record` or `ingest`).
//!
//! Protocol (`docs/package-format.md#upload-protocol`): for each file `HEAD` the object and
//! `PUT` it if missing, then `PUT` the manifest. Resumable at file granularity: after a
//! network cut only the objects the hub lacks are sent again. If the hub still answers 409
//! (objects missing) the listed objects are uploaded and the manifest is retried once.

use crate::outbox::StagedPackage;
use fgw_format::ids::{FacilityId, Sha256Hex};
use fgw_format::package::protocol::{Ack, ApiError, ExamListing, OBJECTS, PACKAGES};
use fgw_format::package::FileEntry;
use fgw_tls::TlsError;
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[uplink]` in the gateway config. Defaults match a hub on the same machine with the
/// files `hub issue-device --out /etc/facility-gateway/uplink` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Base URL of the hub; must be `https://`. Default `https://localhost:8443`.
    #[serde(default = "default_hub_url")]
    pub hub_url: String,
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

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            hub_url: default_hub_url(),
            ca_cert: default_ca_cert(),
            client_cert: default_client_cert(),
            client_key: default_client_key(),
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            min_upload_bytes_per_sec: default_min_upload_bytes_per_sec(),
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
    }

    /// Check shapes only (files are read by [`Uplink::new`]). Error: (key, what is allowed).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        parse_hub_url(&self.hub_url).map_err(|e| match e {
            UplinkError::Config { key, expected } => (key, expected),
            other => ("uplink.hub_url", other.to_string()),
        })?;
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(("uplink.timeout_secs", "an integer from 1 to 3600".into()));
        }
        if !(1..=600).contains(&self.connect_timeout_secs) {
            return Err(("uplink.connect_timeout_secs", "an integer from 1 to 600".into()));
        }
        if self.min_upload_bytes_per_sec < 1024 {
            return Err(("uplink.min_upload_bytes_per_sec", "an integer >= 1024".into()));
        }
        Ok(())
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
            UplinkError::Retryable { .. } => Disposition::RetryLater,
            UplinkError::Config { .. } | UplinkError::Tls(_) | UplinkError::Client(_) => {
                Disposition::PauseUplink
            }
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
const ROUTE_HEALTH: &str = "GET /v1/health";

/// A connection pool to the hub, authenticated with this gateway's certificate.
#[derive(Debug, Clone)]
pub struct Uplink {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
    min_rate: u64,
}

enum ManifestOutcome {
    Ack(Ack),
    Missing(Vec<Sha256Hex>),
}

/// Error text with its causes (reqwest's top-level message alone is "error sending request").
fn describe(e: reqwest::Error) -> String {
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

fn send_failed(route: &'static str, e: reqwest::Error) -> UplinkError {
    UplinkError::Retryable { route, reason: describe(e) }
}

/// Turn a non-success response into the error class the pipeline acts on.
async fn failure(route: &'static str, resp: Response) -> UplinkError {
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
    /// A client for the hub in `cfg`, with this gateway's certificate.
    pub fn new(cfg: &UplinkConfig) -> Result<Uplink, UplinkError> {
        let base = parse_hub_url(&cfg.hub_url)?;
        fgw_tls::install_ring_provider();
        let tls = fgw_tls::client_config(&cfg.ca_cert, &cfg.client_cert, &cfg.client_key)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .http1_only()
            // The hub never redirects; following one would resend bodies elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .user_agent(concat!("fgw-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UplinkError::Client(describe(e)))?;
        Ok(Uplink {
            client,
            base,
            timeout: Duration::from_secs(cfg.timeout_secs),
            min_rate: cfg.min_upload_bytes_per_sec.max(1),
        })
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
                self.put_object(entry, path).await?;
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
            self.put_object(entry, path).await?;
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
        let url = format!("{}/v1/facilities/{facility}/exams", self.base);
        let resp = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_LIST, e))?;
        if !resp.status().is_success() {
            return Err(failure(ROUTE_LIST, resp).await);
        }
        resp.json().await.map_err(|e| UplinkError::Protocol {
            route: ROUTE_LIST,
            what: format!("listing is not valid JSON ({})", describe(e)),
        })
    }

    /// Reachability and authentication check (`gateway doctor`-style).
    pub async fn health(&self) -> Result<(), UplinkError> {
        let resp = self
            .client
            .get(format!("{}/v1/health", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_HEALTH, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(ROUTE_HEALTH, resp).await)
        }
    }

    async fn has_object(&self, sha: &Sha256Hex) -> Result<bool, UplinkError> {
        let resp = self
            .client
            .head(format!("{}{OBJECTS}/{sha}", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_HEAD, e))?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(failure(ROUTE_HEAD, resp).await),
        }
    }

    async fn put_object(&self, entry: &FileEntry, path: &Path) -> Result<(), UplinkError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| UplinkError::Io { path: path.to_path_buf(), source })?;
        // The outbox verified this at load; re-check so a file changed since is never sent
        // under a name it no longer matches.
        if Sha256Hex::of(&bytes) != entry.sha256 {
            return Err(UplinkError::LocalCorrupt {
                path: path.to_path_buf(),
                sha256: entry.sha256.clone(),
            });
        }
        let timeout = self.timeout + Duration::from_secs(bytes.len() as u64 / self.min_rate);
        let resp = self
            .client
            .put(format!("{}{OBJECTS}/{}", self.base, entry.sha256))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(bytes)
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_PUT_OBJECT, e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(failure(ROUTE_PUT_OBJECT, resp).await)
        }
    }

    async fn put_manifest(&self, pkg: &StagedPackage) -> Result<ManifestOutcome, UplinkError> {
        let resp = self
            .client
            .put(format!("{}{PACKAGES}/{}", self.base, pkg.id()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(pkg.manifest_bytes().to_vec())
            .send()
            .await
            .map_err(|e| send_failed(ROUTE_PUT_PACKAGE, e))?;
        let status = resp.status();
        if status == StatusCode::CONFLICT {
            let body = resp.bytes().await.map_err(|e| send_failed(ROUTE_PUT_PACKAGE, e))?;
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
        let ack: Ack = resp.json().await.map_err(|e| UplinkError::Protocol {
            route: ROUTE_PUT_PACKAGE,
            what: format!("acknowledgement is not valid JSON ({})", describe(e)),
        })?;
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
    fn relative_paths_follow_the_config() {
        let mut c: UplinkConfig = toml::from_str("ca_cert = \"pki/ca.crt\"").unwrap();
        c.resolve_relative(Path::new("/etc/fgw"));
        assert_eq!(c.ca_cert, PathBuf::from("/etc/fgw/pki/ca.crt"));
        assert_eq!(c.client_key, PathBuf::from("/etc/facility-gateway/uplink/device.key"));
    }
}
