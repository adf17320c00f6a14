//! The box's identity at run time (issue 12, docs/enrollment.md): the configured key store,
//! `gateway identity init` (the device identity key and its CSR, at imaging), enrollment
//! with the hub (EST `simpleenroll` with the IDevID, then `simplereenroll` with the
//! operational certificate before it expires), and the client credential the uplink presents.
//!
//! Private keys stay in the key store: in the TPM they are never in this process. What is
//! on disk is public: the IDevID certificate and the society CA (put there at imaging), the
//! operational certificate and its dates (`<state_dir>/identity/`). A state folder copied to
//! another box is useless there: its TPM holds other keys, so the certificates do not match
//! and the hub does not know its serial.

use crate::config::GatewayConfig;
use fgw_format::durable::write_atomic;
use fgw_format::ids::FacilityId;
use fgw_format::package::protocol::EnrollResponse;
use fgw_identity::{
    certified_key, client_config_with_key, csr_pem, write_csr, DeviceSerial, IdentityKey, KeyRole,
    KeyStore, KeyStoreKind, P256PublicKey, Tcti, TpmKeyStore,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// `[identity]` of `gateway.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Where the box's private keys live: `tpm` (the box) or `insecure-file` (development
    /// only: 0600 files in the state folder, and `gateway identity show` says so).
    pub key_store: KeyStoreKind,
    /// The TPM's TCTI, required with `key_store = "tpm"`: `device:/dev/tpmrm0` on the box,
    /// `swtpm:host=127.0.0.1,port=2321` with a software TPM.
    #[serde(default)]
    pub tpm_tcti: Option<Tcti>,
    /// The IDevID certificate the society's manufacturing CA signed at imaging
    /// (`hub device add … --out DIR` writes it as `DIR/idevid.crt`).
    /// Default `/etc/facility-gateway/identity/idevid.crt`.
    #[serde(default = "default_idevid_cert")]
    pub idevid_cert: PathBuf,
    /// The society CA (`DIR/ca.crt`): the one root trusted for the hub, for enrollment and
    /// uploads. Default `/etc/facility-gateway/identity/ca.crt`.
    #[serde(default = "default_ca_cert")]
    pub ca_cert: PathBuf,
    /// How often the daemon checks whether the operational certificate is due for renewal,
    /// in seconds. Default 3600; 1 to 86400.
    #[serde(default = "default_renew_check_secs")]
    pub renew_check_secs: u64,
}

fn default_idevid_cert() -> PathBuf {
    "/etc/facility-gateway/identity/idevid.crt".into()
}

fn default_ca_cert() -> PathBuf {
    "/etc/facility-gateway/identity/ca.crt".into()
}

fn default_renew_check_secs() -> u64 {
    3600
}

impl IdentityConfig {
    /// Relative paths are relative to the configuration file's folder.
    pub fn resolve_relative(&mut self, base: &Path) {
        for p in [&mut self.idevid_cert, &mut self.ca_cert] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The checks beyond the types: `(key, what is allowed)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.key_store == KeyStoreKind::Tpm && self.tpm_tcti.is_none() {
            return Err((
                "identity.tpm_tcti",
                "a TCTI such as device:/dev/tpmrm0 (required with key_store = \"tpm\")".into(),
            ));
        }
        if !(1..=86_400).contains(&self.renew_check_secs) {
            return Err(("identity.renew_check_secs", "an integer from 1 to 86400".into()));
        }
        Ok(())
    }
}

/// Why an identity operation failed. Paths, routes and statuses; never key material.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The proxy settings of `[uplink]` cannot be used.
    #[error("identity: {0}")]
    Proxy(#[from] fgw_outbound::proxy::ProxyError),
    /// The key store could not be opened or used.
    #[error("identity: key store: {0}")]
    Key(#[from] fgw_identity::KeyError),
    /// The TPM could not be reached.
    #[error("identity: {0}")]
    Tpm(#[from] fgw_identity::TpmError),
    /// The CSR could not be made or written.
    #[error("identity: {0}")]
    Csr(#[from] fgw_identity::CsrError),
    /// A file of the identity could not be read or written.
    #[error("identity: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate file holds no certificate.
    #[error("identity: {path}: no PEM certificate in it")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate is not for this box's key (another box's files, or a store that lost
    /// its key).
    #[error("identity: {what} is not certified for this box's {role} key: {detail}")]
    NotThisKey {
        /// Which certificate.
        what: &'static str,
        /// Which key.
        role: &'static str,
        /// rustls' reason.
        detail: String,
    },
    /// A setting the configured store needs is missing.
    #[error("identity: {key} is not set")]
    Missing {
        /// The configuration key.
        key: &'static str,
    },
    /// The TLS client could not be set up.
    #[error("identity: TLS client: {0}")]
    Tls(String),
    /// The hub could not be reached or did not answer.
    #[error("identity: {route}: {reason}")]
    Unreachable {
        /// The request.
        route: &'static str,
        /// What failed (network, TLS, timeout).
        reason: String,
    },
    /// The hub refused the request (the serial is unknown, revoked, or the certificate not
    /// accepted): enrolling again does not help until the registry changes.
    #[error("identity: {route}: the hub refused enrollment ({status}): {message}")]
    Refused {
        /// The request.
        route: &'static str,
        /// The HTTP status.
        status: u16,
        /// The hub's error text (it names serials and reasons, no data).
        message: String,
    },
    /// The hub's answer does not fit this box.
    #[error("identity: {route}: {what}")]
    Answer {
        /// The request.
        route: &'static str,
        /// What is wrong with it.
        what: String,
    },
}

impl IdentityError {
    /// True if trying again later may succeed (the hub down, a network fault, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, IdentityError::Unreachable { .. })
    }
}

/// The enrollment route for a first certificate (or after one expired), with the IDevID.
pub const ROUTE_ENROLL: &str = "POST /.well-known/est/simpleenroll";
/// The renewal route, with the operational certificate.
pub const ROUTE_REENROLL: &str = "POST /.well-known/est/simplereenroll";
const PATH_ENROLL: &str = "/.well-known/est/simpleenroll";
const PATH_REENROLL: &str = "/.well-known/est/simplereenroll";

/// The operational certificate and its dates, as the last enrollment answered
/// (`<state_dir>/identity/enrollment.json`; the certificate itself is `operational.crt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The box's serial, as the registry knows it.
    pub serial: String,
    /// The facility the registry assigns the box to.
    pub facility_id: FacilityId,
    /// Validity start (RFC 3339, UTC).
    pub not_before: String,
    /// Expiry (RFC 3339, UTC).
    pub not_after: String,
    /// When to renew (RFC 3339, UTC): two thirds into the validity.
    pub renew_after: String,
    /// When this certificate was received (RFC 3339, UTC).
    pub enrolled_at: String,
    /// The facility's configuration and the VPN peer, as handed by the hub.
    pub config: serde_json::Value,
}

impl Enrollment {
    fn time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
    }

    /// True once `renew_after` has passed (or cannot be read).
    pub fn renewal_due(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        Self::time(&self.renew_after).is_none_or(|t| now >= t)
    }

    /// True once `not_after` has passed (or cannot be read): the hub refuses it then.
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        Self::time(&self.not_after).is_none_or(|t| now >= t)
    }
}

/// What `gateway identity init --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The box serial, derived from the device identity key.
    pub serial: String,
    /// The CSR file, for `hub device add --csr`.
    pub csr: PathBuf,
}

/// What `gateway identity show --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ShowReport {
    /// `tpm` or `insecure-file`.
    pub key_store: KeyStoreKind,
    /// The TPM's TCTI, if the store is the TPM.
    pub tpm_tcti: Option<String>,
    /// The serial, if the device identity key exists.
    pub serial: Option<String>,
    /// Whether the IDevID certificate file is present.
    pub idevid_cert: bool,
    /// The operational certificate's dates, once the box has enrolled.
    pub operational: Option<OperationalReport>,
}

/// The operational certificate in `gateway identity show`.
#[derive(Debug, Clone, Serialize)]
pub struct OperationalReport {
    /// Its facility.
    pub facility_id: FacilityId,
    /// Validity start (RFC 3339, UTC).
    pub not_before: String,
    /// Expiry (RFC 3339, UTC).
    pub not_after: String,
    /// When the box renews it.
    pub renew_after: String,
    /// When it was received.
    pub enrolled_at: String,
}

/// The client certificate the uplink presents: the current operational certificate with the
/// operational key, replaced in place when it is renewed (new connections use the new one).
#[derive(Debug)]
pub struct CurrentCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for CurrentCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl CurrentCertificate {
    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

/// The box's identity: its key store and identity files.
pub struct BoxIdentity {
    cfg: IdentityConfig,
    facility: FacilityId,
    store: KeyStore,
    dir: PathBuf,
    /// Direct, or through the hospital's proxy (`[uplink] proxy_url`), as the uploads.
    route: fgw_outbound::proxy::HubRoute,
    /// The box's WireGuard public key, sent when enrolling (`[vpn] mode = "wireguard"`).
    wireguard: Option<fgw_vpn::WgPublicKey>,
}

impl std::fmt::Debug for BoxIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxIdentity({}, {})", self.cfg.key_store.as_str(), self.dir.display())
    }
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let text = std::fs::read(path)
        .map_err(|source| IdentityError::Io { path: path.to_path_buf(), source })?;
    let certs = certs_of(&text);
    if certs.is_empty() {
        return Err(IdentityError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The PEM certificates in `pem` (none if it holds none, or is not PEM).
fn certs_of(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `<state_dir>/identity`: the box's certificates and its enrollment record.
pub fn identity_dir(gw: &GatewayConfig) -> PathBuf {
    gw.state_dir.join("identity")
}

/// The enrollment record kept in `dir` ([`identity_dir`]), read without opening the key
/// store (the heartbeat reads its expiry); `None` before the first enrollment.
pub fn stored_enrollment(dir: &Path) -> Result<Option<Enrollment>, IdentityError> {
    let p = dir.join(ENROLLMENT_FILE);
    match std::fs::read(&p) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io { path: p, source }),
    }
}

/// The enrollment record's file name in [`identity_dir`].
const ENROLLMENT_FILE: &str = "enrollment.json";

impl BoxIdentity {
    /// Opens the store `cfg` names (connects to the TPM) for the box configured by `gw`.
    pub fn open(gw: &GatewayConfig, cfg: &IdentityConfig) -> Result<BoxIdentity, IdentityError> {
        let dir = identity_dir(gw);
        std::fs::create_dir_all(&dir)
            .map_err(|source| IdentityError::Io { path: dir.clone(), source })?;
        let store = match (cfg.key_store, &cfg.tpm_tcti) {
            (KeyStoreKind::Tpm, Some(tcti)) => KeyStore::Tpm(Arc::new(TpmKeyStore::connect(tcti)?)),
            (KeyStoreKind::Tpm, None) => {
                return Err(IdentityError::Missing { key: "identity.tpm_tcti" })
            }
            (KeyStoreKind::InsecureFile, _) => {
                tracing::warn!(dir = %dir.display(), "identity keys are in files (key_store = \"insecure-file\"): development only, never on a shipped box");
                KeyStore::insecure_file(&dir)
            }
        };
        let route = gw.uplink.hub_route()?;
        Ok(BoxIdentity {
            cfg: cfg.clone(),
            facility: gw.facility_id.clone(),
            store,
            dir,
            route,
            wireguard: None,
        })
    }

    /// Sends `key` as the box's WireGuard key when enrolling: the hub answers with the
    /// tunnel's peer data.
    pub fn with_wireguard_key(mut self, key: fgw_vpn::WgPublicKey) -> BoxIdentity {
        self.wireguard = Some(key);
        self
    }

    fn operational_cert_path(&self) -> PathBuf {
        self.dir.join("operational.crt")
    }

    fn enrollment_path(&self) -> PathBuf {
        self.dir.join(ENROLLMENT_FILE)
    }

    /// The CSR `identity init` writes unless told otherwise.
    pub fn default_csr_path(&self) -> PathBuf {
        self.dir.join("idevid.csr")
    }

    /// `gateway identity init`: the device identity key (created in the store if absent;
    /// the same key, serial and CSR subject on a second run) and its CSR at `csr_path`.
    pub fn init(&self, csr_path: &Path) -> Result<InitReport, IdentityError> {
        let key = self.store.ensure(KeyRole::DeviceIdentity)?;
        let serial = DeviceSerial::of(key.public_key());
        let pem = csr_pem(key, &serial)?;
        write_csr(csr_path, &pem)?;
        Ok(InitReport { serial: serial.as_str().to_string(), csr: csr_path.to_path_buf() })
    }

    /// The serial, if the device identity key exists.
    pub fn serial(&self) -> Result<DeviceSerial, IdentityError> {
        let key = self.store.open(KeyRole::DeviceIdentity)?;
        Ok(DeviceSerial::of(key.public_key()))
    }

    /// The last enrollment's record, if any.
    pub fn enrollment(&self) -> Result<Option<Enrollment>, IdentityError> {
        stored_enrollment(&self.dir)
    }

    /// `gateway identity show`.
    pub fn show(&self) -> ShowReport {
        let serial = self.serial().ok().map(|s| s.as_str().to_string());
        let operational = self.enrollment().ok().flatten().map(|e| OperationalReport {
            facility_id: e.facility_id,
            not_before: e.not_before,
            not_after: e.not_after,
            renew_after: e.renew_after,
            enrolled_at: e.enrolled_at,
        });
        ShowReport {
            key_store: self.store.kind(),
            tpm_tcti: self.cfg.tpm_tcti.as_ref().map(|t| t.as_str().to_string()),
            serial,
            idevid_cert: self.cfg.idevid_cert.is_file(),
            operational,
        }
    }

    /// The operational certificate on disk with the operational key, if both are there and
    /// belong together.
    fn current(&self) -> Result<Option<CertifiedKey>, IdentityError> {
        let path = self.operational_cert_path();
        if !path.exists() {
            return Ok(None);
        }
        let chain = pem_certs(&path)?;
        let key = self.store.open(KeyRole::OperationalTls)?;
        certified_key(chain, key).map(Some).map_err(|e| IdentityError::NotThisKey {
            what: "operational certificate",
            role: "operational TLS",
            detail: e.to_string(),
        })
    }

    /// A client for one enrollment request, authenticated with `chain` and `key`.
    fn est_client(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn IdentityKey>,
        connect_timeout: Duration,
    ) -> Result<reqwest::Client, IdentityError> {
        let tls = client_config_with_key(&self.cfg.ca_cert, chain, key)
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        self.route
            .apply(reqwest::Client::builder())?
            .use_preconfigured_tls(tls)
            .https_only(true)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(connect_timeout * 6)
            .user_agent(concat!("fgw-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdentityError::Tls(e.to_string()))
    }

    /// Enrolls or renews if needed: no operational certificate (or one not for this box's
    /// key, or expired) → `simpleenroll` with the IDevID; one due for renewal (or `force`)
    /// → `simplereenroll` with it. Returns the enrollment in force.
    pub async fn ensure_enrolled(
        &self,
        hub_url: &str,
        connect_timeout: Duration,
        force_renewal: bool,
    ) -> Result<Enrollment, IdentityError> {
        let now = chrono::Utc::now();
        let current = match self.current() {
            Ok(c) => c,
            Err(e @ IdentityError::NotThisKey { .. }) => {
                tracing::warn!(error = %e, "operational certificate does not belong to this box's key; enrolling again with the IDevID");
                None
            }
            Err(e) => return Err(e),
        };
        let record = self.enrollment()?;
        match (current, record) {
            (Some(ck), Some(rec)) if !rec.expired(now) => {
                if !force_renewal && !rec.renewal_due(now) {
                    return Ok(rec);
                }
                let key = self.store.open(KeyRole::OperationalTls)?;
                let client = self.est_client(ck.cert.clone(), key, connect_timeout)?;
                self.request(&client, hub_url, PATH_REENROLL, ROUTE_REENROLL).await
            }
            _ => {
                let chain = pem_certs(&self.cfg.idevid_cert)?;
                let idevid = self.store.open(KeyRole::DeviceIdentity)?;
                certified_key(chain.clone(), idevid.clone()).map_err(|e| {
                    IdentityError::NotThisKey {
                        what: "IDevID certificate",
                        role: "device identity",
                        detail: e.to_string(),
                    }
                })?;
                let client = self.est_client(chain, idevid, connect_timeout)?;
                self.request(&client, hub_url, PATH_ENROLL, ROUTE_ENROLL).await
            }
        }
    }

    async fn request(
        &self,
        client: &reqwest::Client,
        hub_url: &str,
        path: &str,
        route: &'static str,
    ) -> Result<Enrollment, IdentityError> {
        let op_key = self.store.ensure(KeyRole::OperationalTls)?;
        let serial = self.serial()?;
        let csr = csr_pem(op_key.clone(), &serial)?;
        // Through a proxy, a refused tunnel (407, or the proxy cannot reach the hub) reads
        // only "tunnel error": say which proxy.
        let via = match &self.route {
            fgw_outbound::proxy::HubRoute::Direct => String::new(),
            proxied => format!(" (through {})", proxied.describe()),
        };
        let unreachable = |e: reqwest::Error| IdentityError::Unreachable {
            route,
            reason: format!("{}{via}", fgw_outbound::uplink::describe(e)),
        };
        let mut req = client
            .post(format!("{}{path}", hub_url.trim_end_matches('/')))
            .header(reqwest::header::CONTENT_TYPE, "application/pkcs10");
        if let Some(key) = self.wireguard {
            req = req.header(fgw_format::package::protocol::WIREGUARD_KEY_HEADER, key.to_string());
        }
        let resp = req.body(csr).send().await.map_err(unreachable)?;
        let status = resp.status();
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(IdentityError::Unreachable {
                route,
                reason: format!("hub answered {status}"),
            });
        }
        if !status.is_success() {
            let message = resp
                .json::<fgw_format::package::protocol::ApiError>()
                .await
                .map(|e| e.error)
                .unwrap_or_else(|_| status.to_string());
            return Err(IdentityError::Refused { route, status: status.as_u16(), message });
        }
        let answer: EnrollResponse = resp.json().await.map_err(|e| IdentityError::Answer {
            route,
            what: format!("answer is not enrollment JSON ({})", fgw_outbound::uplink::describe(e)),
        })?;
        self.accept(answer, op_key, &serial, route)
    }

    /// Checks the hub's answer against this box and keeps it.
    fn accept(
        &self,
        answer: EnrollResponse,
        op_key: Arc<dyn IdentityKey>,
        serial: &DeviceSerial,
        route: &'static str,
    ) -> Result<Enrollment, IdentityError> {
        let wrong = |what: String| IdentityError::Answer { route, what };
        if answer.serial.as_str() != serial.as_str() {
            return Err(wrong(format!(
                "the certificate is for serial {}, this box is {serial}",
                answer.serial
            )));
        }
        if answer.facility_id != self.facility {
            return Err(wrong(format!(
                "the registry assigns this box to facility {}, its configuration says {}",
                answer.facility_id, self.facility
            )));
        }
        let chain = certs_of(answer.certificate.as_bytes());
        if chain.is_empty() {
            return Err(wrong("the certificate is not PEM".into()));
        }
        certified_key(chain, op_key).map_err(|e| IdentityError::NotThisKey {
            what: "certificate from the hub",
            role: "operational TLS",
            detail: e.to_string(),
        })?;
        let record = Enrollment {
            serial: answer.serial.as_str().to_string(),
            facility_id: answer.facility_id,
            not_before: answer.not_before,
            not_after: answer.not_after,
            renew_after: answer.renew_after,
            enrolled_at: now_rfc3339(),
            config: serde_json::to_value(&answer.config).unwrap_or_default(),
        };
        // The certificate first: a record names a certificate that is there.
        let cert_path = self.operational_cert_path();
        write_atomic(&cert_path, answer.certificate.as_bytes())
            .map_err(|source| IdentityError::Io { path: cert_path, source })?;
        let rec_path = self.enrollment_path();
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        write_atomic(&rec_path, &json)
            .map_err(|source| IdentityError::Io { path: rec_path, source })?;
        tracing::info!(serial = %record.serial, not_after = %record.not_after, renew_after = %record.renew_after, route, "operational certificate received");
        Ok(record)
    }

    /// The credential for the uplink: the operational certificate with the operational key.
    /// Call after [`BoxIdentity::ensure_enrolled`].
    pub fn client_certificate(&self) -> Result<Arc<CurrentCertificate>, IdentityError> {
        let ck = self
            .current()?
            .ok_or_else(|| IdentityError::NoCertificate { path: self.operational_cert_path() })?;
        Ok(Arc::new(CurrentCertificate { current: RwLock::new(Arc::new(ck)) }))
    }

    /// Reloads the operational certificate into `cert` (after a renewal).
    pub fn refresh(&self, cert: &CurrentCertificate) -> Result<(), IdentityError> {
        if let Some(ck) = self.current()? {
            cert.replace(ck);
        }
        Ok(())
    }

    /// The society CA file.
    pub fn ca_cert(&self) -> &Path {
        &self.cfg.ca_cert
    }

    /// The public key of a role, if the store has it (for tests and `show`).
    pub fn public_key(&self, role: KeyRole) -> Result<P256PublicKey, IdentityError> {
        Ok(self.store.open(role)?.public_key().clone())
    }
}
