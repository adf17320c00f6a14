//! `hub.toml`. Every key is optional; the defaults below are what an absent key means.
//!
//! ```toml
//! listen = "127.0.0.1:8443"          # default
//! data_dir = "/var/lib/fgw-hub"      # default
//! server_names = ["localhost", "127.0.0.1"]
//! max_object_bytes = 268435456       # 256 MiB
//! max_manifest_bytes = 4194304       # 4 MiB
//! max_connections = 256              # open TLS connections; more wait in the listen backlog
//! max_uploads_per_device = 4         # concurrent PUTs of one device; more get 429
//! header_timeout_secs = 30           # to send a request's headers (also idle keep-alive)
//! body_timeout_secs = 60             # a body's grace before min_body_bytes_per_sec applies
//! min_body_bytes_per_sec = 32768     # slower bodies are cut (408)
//! facility_quota_bytes = 1099511627776  # 1 TiB of objects per facility; more get 507
//! gc_grace_secs = 86400              # unreferenced objects are kept this long
//! gc_interval_secs = 3600            # how often `hub serve` collects
//! min_chunk_bytes = 1048576          # 1 MiB: smallest chunk size of an upload session
//! max_chunk_bytes = 67108864         # 64 MiB: largest chunk size (requests are clamped)
//! max_upload_bytes = 68719476736     # 64 GiB: largest object sent through a session
//! max_open_uploads_per_facility = 64 # open upload sessions of one facility; more get 429
//! upload_session_ttl_secs = 604800   # 7 days: an untouched session is collected
//! operational_cert_days = 30         # lifetime of an enrolled box's certificate (1 ..= 365)
//!
//! [tls]                              # each defaults to <data_dir>/pki/<file>
//! ca_cert = "pki/ca.crt"
//! ca_key = "pki/ca.key"
//! server_cert = "pki/server.crt"
//! server_key = "pki/server.key"
//! manufacturing_ca_cert = "pki/manufacturing-ca.crt"
//! manufacturing_ca_key = "pki/manufacturing-ca.key"
//!
//! [dashboard]                        # the operators' web page at /dashboard (docs/dashboard.md)
//! enabled = true                     # default
//! session_idle_secs = 1800           # 30 min unused: the login session ends
//! session_max_secs = 43200           # 12 h after login: the session ends whatever its use
//! online_secs = 900                  # a box is "online" with a heartbeat this recent (3 x 300 s)
//!
//! [facility_config.F0001]            # handed to F0001's boxes as they enroll (free-form)
//! note = "anything the gateway reads"
//!
//! [vpn]                              # WireGuard: the API only inside the tunnel
//! address = "10.88.0.1/16"           # the hub's tunnel address; boxes get the rest of it
//! endpoint = "hub.example.org:51820" # where boxes reach the hub's WireGuard
//! listen_port = 51820                # default
//! api_listen = "10.88.0.1:8443"      # default: the tunnel address, port 8443
//! interface = "fgwhub0"              # default
//! implementation = "auto"            # "auto" | "kernel" | "userspace" (boringtun)
//! ```
//!
//! `docs/enrollment.md` describes the enrollment keys and the manufacturing CA.
//!
//! Relative paths (including `data_dir`) are relative to the directory of the config file.

pub use crate::store_settings::{
    MetaBackend, ObjectBackend, PostgresUrl, S3Settings, StoreSettings,
};
use fgw_format::ids::FacilityId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Upper bound for `max_object_bytes`. Objects are streamed to disk, so this is not a memory
/// bound; it keeps one upload within what a gateway can send in a working day.
pub(crate) const MAX_OBJECT_BYTES_LIMIT: u64 = 4 << 30;
/// Upper bound for `max_manifest_bytes`: a manifest is JSON text, never media.
pub(crate) const MAX_MANIFEST_BYTES_LIMIT: u64 = 64 << 20;
/// Upper bound for `facility_quota_bytes` (sizes are summed in SQLite's signed 64 bits).
const MAX_QUOTA_BYTES: u64 = 1 << 62;
/// Upper bound for the GC periods: a year.
const MAX_SECS: u64 = 365 * 24 * 3600;
/// Upper bound for the chunk sizes. Chunks are streamed to disk, so this is not a memory
/// bound; it keeps what one cut costs within a few minutes of a slow line.
const MAX_CHUNK_BYTES_LIMIT: u64 = 1 << 30;
/// Upper bound for `max_upload_bytes` (sizes are summed in SQLite's signed 64 bits).
const MAX_UPLOAD_BYTES_LIMIT: u64 = 1 << 46;
/// Upper bound for `operational_cert_days`: an operational certificate is meant to be short
/// lived; revocation is by registry, so a long one only widens what a stolen key buys.
const MAX_OPERATIONAL_CERT_DAYS: u32 = 365;
/// Most chunks one session may have (`max_upload_bytes / min_chunk_bytes`): the session's
/// answer lists every chunk received.
const MAX_CHUNKS_PER_UPLOAD: u64 = 1 << 20;

/// A config file that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("hub config {path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("hub config {path}: {source}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A setting is out of range.
    #[error("hub config: {key}: expected {expected}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What it must be.
        expected: String,
    },
}

/// `hub.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address the API listens on, `ip:port`. Default `127.0.0.1:8443` (loopback: exposing the
    /// hub is a deliberate change).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Root of the hub's state: `hub.sqlite` (metadata), `objects/` (files), `pki/`.
    /// Default `/var/lib/fgw-hub`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// DNS names / IP addresses put in the server certificate by `hub init`; gateways must use
    /// one of them in `hub_url`. Default `["localhost", "127.0.0.1"]`.
    #[serde(default = "default_server_names")]
    pub server_names: Vec<String>,
    /// Largest accepted object (one file of a package). Default 256 MiB.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: u64,
    /// Largest accepted manifest. Default 4 MiB. A manifest is parsed in memory, so this
    /// times the concurrent uploads bounds the memory manifests can take.
    #[serde(default = "default_max_manifest_bytes")]
    pub max_manifest_bytes: u64,
    /// Open connections served at once. Default 256. Further connections wait in the
    /// kernel's listen backlog until one closes (idle ones close after
    /// `header_timeout_secs`).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Object and manifest PUTs one device may have in progress. Default 4 (the gateway
    /// sends one at a time). Above it: 429 with `Retry-After`.
    #[serde(default = "default_max_uploads_per_device")]
    pub max_uploads_per_device: u32,
    /// Seconds a client has to send a request's headers, and an idle keep-alive connection
    /// is kept. Default 30.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Seconds of grace for a request body: after it, the body must keep up an average of
    /// `min_body_bytes_per_sec` since its start or it is cut (408, connection closed).
    /// Default 60.
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Slowest body still served, bytes/s. Default 32768: half the gateway's
    /// `uplink.min_upload_bytes_per_sec`, so the gateway gives up before the hub does.
    #[serde(default = "default_min_body_bytes_per_sec")]
    pub min_body_bytes_per_sec: u64,
    /// Bytes of objects one facility may hold. Default 1 TiB. An upload above it: 507.
    #[serde(default = "default_facility_quota_bytes")]
    pub facility_quota_bytes: u64,
    /// Seconds an object no manifest of its facility references is kept before garbage
    /// collection deletes it. Default 86400 (24 h): a gateway uploads a package's objects
    /// before its manifest, and may be cut off in between.
    #[serde(default = "default_gc_grace_secs")]
    pub gc_grace_secs: u64,
    /// Seconds between garbage collections in `hub serve` (the first runs this long after
    /// start). Default 3600.
    #[serde(default = "default_gc_interval_secs")]
    pub gc_interval_secs: u64,
    /// Smallest chunk size of an upload session: a smaller size asked for is raised to it.
    /// Default 1 MiB (1 ..= 1 GiB, at most `max_chunk_bytes`).
    #[serde(default = "default_min_chunk_bytes")]
    pub min_chunk_bytes: u64,
    /// Largest chunk size of an upload session: a larger size asked for is lowered to it.
    /// Default 64 MiB (1 ..= 1 GiB).
    #[serde(default = "default_max_chunk_bytes")]
    pub max_chunk_bytes: u64,
    /// Largest object sent through an upload session (413 above it). Default 64 GiB; at most
    /// 1048576 chunks of `min_chunk_bytes`. Chunks and objects are streamed to disk.
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// Upload sessions one facility may have open at once (429 above it). Default 64
    /// (1 ..= 65536).
    #[serde(default = "default_max_open_uploads_per_facility")]
    pub max_open_uploads_per_facility: u32,
    /// Seconds an upload session may go untouched (opened, re-opened, or sent a chunk)
    /// before garbage collection deletes it with its chunks. Default 604800 (7 days).
    #[serde(default = "default_upload_session_ttl_secs")]
    pub upload_session_ttl_secs: u64,
    /// Days an operational certificate issued at enrollment (`/.well-known/est/simpleenroll`,
    /// `simplereenroll`) is valid. Default 30 (1 ..= 365); the box is told to renew after two
    /// thirds of it.
    #[serde(default = "default_operational_cert_days")]
    pub operational_cert_days: u32,
    /// Per facility, the settings handed to its boxes at enrollment and by
    /// `GET /v1/device/config`, as a JSON object. Free-form: the gateway gives them their
    /// meaning. Default: none (an empty object).
    #[serde(default)]
    pub facility_config: BTreeMap<FacilityId, serde_json::Map<String, serde_json::Value>>,
    /// The WireGuard tunnel to the boxes. When set, `listen` serves enrollment only and
    /// the API is served inside the tunnel (`vpn.api_listen`). Default: none.
    #[serde(default)]
    pub vpn: Option<HubVpn>,
    /// Certificate and key files. Default: all under `<data_dir>/pki/`.
    #[serde(default)]
    pub tls: HubTlsPaths,
    /// `[releases]`: the TUF repository of OS and policy releases, and its keys.
    #[serde(default)]
    pub releases: ReleaseSettings,
    /// The operators' dashboard (`/dashboard`). Default: enabled, with the session and
    /// online defaults of [`HubDashboard`].
    #[serde(default)]
    pub dashboard: HubDashboard,
    /// `[store]`: the metadata and object engines. Default: SQLite and files under
    /// `data_dir` (one node).
    #[serde(default)]
    pub store: StoreSettings,
}

/// `[releases]`: where the TUF repository and its keys live. Defaults under
/// `<data_dir>/tuf/`. Root and targets keys belong offline in production
/// (`provisioning/release-keys.md`): `hub release publish --keys-dir` points at the targets
/// key on its medium; the hub itself keeps only the snapshot and timestamp keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSettings {
    /// The repository (`metadata/`, `targets/`). Default `<data_dir>/tuf/repo`.
    pub repo_dir: Option<PathBuf>,
    /// The role keys (`root.pk8`, `targets.pk8`, `snapshot.pk8`, `timestamp.pk8`). Default
    /// `<data_dir>/tuf/keys`.
    pub keys_dir: Option<PathBuf>,
}

/// `[dashboard]`: the operators' web page on the API's address (`docs/dashboard.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubDashboard {
    /// Serve `/dashboard`. Default `true`. Disabled, the paths answer 404 and a connection
    /// without a client certificate reaches nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds a login session may go unused before it ends. Default 1800 (30 min;
    /// 60 ..= 86400, at most `session_max_secs`).
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// Seconds after login a session ends however much it is used. Default 43200 (12 h;
    /// 60 ..= 604800).
    #[serde(default = "default_session_max_secs")]
    pub session_max_secs: u64,
    /// A box counts as online with a heartbeat at most this old, seconds. Default 900
    /// (15 min: three of the gateway's default 300 s heartbeats; 60 ..= 86400).
    #[serde(default = "default_online_secs")]
    pub online_secs: u64,
}

impl Default for HubDashboard {
    fn default() -> Self {
        HubDashboard {
            enabled: true,
            session_idle_secs: default_session_idle_secs(),
            session_max_secs: default_session_max_secs(),
            online_secs: default_online_secs(),
        }
    }
}

impl HubDashboard {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, expected: &str| ConfigError::Invalid { key, expected: expected.into() };
        if !(60..=7 * 86_400).contains(&self.session_max_secs) {
            return Err(invalid("dashboard.session_max_secs", "60 ..= 604800 (7 days)"));
        }
        if !(60..=86_400).contains(&self.session_idle_secs)
            || self.session_idle_secs > self.session_max_secs
        {
            return Err(invalid(
                "dashboard.session_idle_secs",
                "60 ..= 86400, at most dashboard.session_max_secs",
            ));
        }
        if !(60..=86_400).contains(&self.online_secs) {
            return Err(invalid("dashboard.online_secs", "60 ..= 86400"));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
fn default_session_idle_secs() -> u64 {
    30 * 60
}
fn default_session_max_secs() -> u64 {
    12 * 3600
}
fn default_online_secs() -> u64 {
    15 * 60
}

/// Paths of the PKI files; `None` means the default under `<data_dir>/pki/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubTlsPaths {
    /// Society CA certificate (also handed to every device). Default `<data_dir>/pki/ca.crt`.
    pub ca_cert: Option<PathBuf>,
    /// Society CA private key (0600). Default `<data_dir>/pki/ca.key`.
    pub ca_key: Option<PathBuf>,
    /// Hub server certificate. Default `<data_dir>/pki/server.crt`.
    pub server_cert: Option<PathBuf>,
    /// Hub server private key (0600). Default `<data_dir>/pki/server.key`.
    pub server_key: Option<PathBuf>,
    /// Manufacturing CA certificate: signs IDevIDs (`hub device add`); the hub accepts
    /// client certificates chained to it for enrollment only. Default
    /// `<data_dir>/pki/manufacturing-ca.crt`.
    pub manufacturing_ca_cert: Option<PathBuf>,
    /// Manufacturing CA private key (0600); only `hub device add` reads it. Default
    /// `<data_dir>/pki/manufacturing-ca.key`.
    pub manufacturing_ca_key: Option<PathBuf>,
}

/// `[vpn]`: the hub's WireGuard interface and what boxes are told about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubVpn {
    /// The hub's tunnel address with the prefix boxes get addresses from, e.g.
    /// `10.88.0.1/16` (boxes: 10.88.0.2 upward, one per registered box). Required.
    pub address: String,
    /// `host:port` boxes dial to reach the hub's WireGuard. Required.
    pub endpoint: String,
    /// UDP port of the hub's WireGuard. Default 51820.
    #[serde(default = "default_vpn_port")]
    pub listen_port: u16,
    /// Where the API listens, inside the tunnel, `ip:port`. Default the tunnel address, port
    /// 8443. Its server certificate must name that address (`server_names`).
    #[serde(default)]
    pub api_listen: Option<String>,
    /// The interface's name. Default `fgwhub0`.
    #[serde(default = "default_vpn_interface")]
    pub interface: String,
    /// `auto` (kernel WireGuard where the kernel has it, else boringtun), `kernel` or
    /// `userspace`. Default `auto`.
    #[serde(default = "default_vpn_implementation")]
    pub implementation: String,
    /// The hub's WireGuard private key (base64, 0600); made at the first `hub serve` if
    /// missing. Default `<data_dir>/pki/wg.key`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Keepalive boxes send (seconds), so hospital NATs keep the mapping. Default 25.
    #[serde(default = "default_vpn_keepalive")]
    pub keepalive_secs: u16,
    /// How often the interface's peers are brought in line with the registry (enrolled,
    /// not revoked), seconds. Default 5: a revocation closes the tunnel within this.
    #[serde(default = "default_vpn_reconcile")]
    pub reconcile_secs: u64,
}

fn default_vpn_port() -> u16 {
    51820
}
fn default_vpn_interface() -> String {
    "fgwhub0".into()
}
fn default_vpn_implementation() -> String {
    "auto".into()
}
fn default_vpn_keepalive() -> u16 {
    25
}
fn default_vpn_reconcile() -> u64 {
    5
}

impl HubVpn {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, expected: &str| ConfigError::Invalid { key, expected: expected.into() };
        let address = self.address_cidr()?;
        if !address.addr.is_ipv4() || !(8..=30).contains(&address.prefix) {
            return Err(invalid("vpn.address", "an IPv4 ip/prefix with prefix 8 ..= 30"));
        }
        let ok = self.endpoint.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.chars().any(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !ok {
            return Err(invalid("vpn.endpoint", "host:port"));
        }
        if self.listen_port == 0 {
            return Err(invalid("vpn.listen_port", "1 ..= 65535"));
        }
        self.api_listen_addr()?;
        fgw_vpn::InterfaceName::new(&self.interface)
            .map_err(|_| invalid("vpn.interface", "1 to 15 characters of A-Z a-z 0-9 _ -"))?;
        fgw_vpn::Implementation::parse(&self.implementation)
            .map_err(|_| invalid("vpn.implementation", "\"auto\", \"kernel\" or \"userspace\""))?;
        if !(1..=3600).contains(&self.keepalive_secs) {
            return Err(invalid("vpn.keepalive_secs", "1 ..= 3600"));
        }
        if !(1..=3600).contains(&self.reconcile_secs) {
            return Err(invalid("vpn.reconcile_secs", "1 ..= 3600"));
        }
        Ok(())
    }

    /// `address` parsed.
    pub fn address_cidr(&self) -> Result<fgw_vpn::Cidr, ConfigError> {
        fgw_vpn::Cidr::parse(&self.address).map_err(|_| ConfigError::Invalid {
            key: "vpn.address",
            expected: "ip/prefix, e.g. 10.88.0.1/16".into(),
        })
    }

    /// Where the API listens inside the tunnel.
    pub fn api_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        let bad = || ConfigError::Invalid {
            key: "vpn.api_listen",
            expected: "ip:port inside the tunnel, e.g. 10.88.0.1:8443".into(),
        };
        match &self.api_listen {
            Some(a) => a.parse().map_err(|_| bad()),
            None => Ok(SocketAddr::new(self.address_cidr()?.addr, 8443)),
        }
    }

    /// The tunnel address of the box with registry index `index` (1, 2, …): the hub's
    /// address plus `index`, if still inside the prefix (and not its broadcast address).
    pub fn box_address(&self, index: u32) -> Option<fgw_vpn::Cidr> {
        let cidr = self.address_cidr().ok()?;
        let std::net::IpAddr::V4(hub) = cidr.addr else { return None };
        let hub = u32::from(hub);
        let mask = u32::MAX.checked_shl(32 - u32::from(cidr.prefix)).unwrap_or(0);
        let ip = hub.checked_add(index)?;
        let inside = ip & mask == hub & mask && ip | mask != u32::MAX;
        inside.then(|| fgw_vpn::Cidr::host(std::net::IpAddr::V4(ip.into())))
    }
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/fgw-hub")
}
fn default_server_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
fn default_max_object_bytes() -> u64 {
    256 << 20
}
fn default_max_manifest_bytes() -> u64 {
    4 << 20
}
fn default_max_connections() -> u32 {
    256
}
fn default_max_uploads_per_device() -> u32 {
    4
}
fn default_header_timeout_secs() -> u64 {
    30
}
fn default_body_timeout_secs() -> u64 {
    60
}
fn default_min_body_bytes_per_sec() -> u64 {
    32 * 1024
}
fn default_facility_quota_bytes() -> u64 {
    1 << 40
}
fn default_gc_grace_secs() -> u64 {
    24 * 3600
}
fn default_gc_interval_secs() -> u64 {
    3600
}
fn default_min_chunk_bytes() -> u64 {
    1 << 20
}
fn default_max_chunk_bytes() -> u64 {
    64 << 20
}
fn default_max_upload_bytes() -> u64 {
    64 << 30
}
fn default_max_open_uploads_per_facility() -> u32 {
    64
}
fn default_upload_session_ttl_secs() -> u64 {
    7 * 24 * 3600
}
fn default_operational_cert_days() -> u32 {
    30
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            server_names: default_server_names(),
            max_object_bytes: default_max_object_bytes(),
            max_manifest_bytes: default_max_manifest_bytes(),
            max_connections: default_max_connections(),
            max_uploads_per_device: default_max_uploads_per_device(),
            header_timeout_secs: default_header_timeout_secs(),
            body_timeout_secs: default_body_timeout_secs(),
            min_body_bytes_per_sec: default_min_body_bytes_per_sec(),
            facility_quota_bytes: default_facility_quota_bytes(),
            gc_grace_secs: default_gc_grace_secs(),
            gc_interval_secs: default_gc_interval_secs(),
            min_chunk_bytes: default_min_chunk_bytes(),
            max_chunk_bytes: default_max_chunk_bytes(),
            max_upload_bytes: default_max_upload_bytes(),
            max_open_uploads_per_facility: default_max_open_uploads_per_facility(),
            upload_session_ttl_secs: default_upload_session_ttl_secs(),
            operational_cert_days: default_operational_cert_days(),
            facility_config: BTreeMap::new(),
            vpn: None,
            tls: HubTlsPaths::default(),
            releases: ReleaseSettings::default(),
            dashboard: HubDashboard::default(),
            store: StoreSettings::default(),
        }
    }
}

impl HubConfig {
    /// Defaults with another data directory (tests, `hub --data-dir`).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        HubConfig { data_dir: data_dir.into(), ..HubConfig::default() }
    }

    /// Parse and validate a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        let mut cfg = Self::parse_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_relative_to(base);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse without validating or resolving paths.
    pub fn parse_str(text: &str) -> Result<HubConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Make relative paths relative to `base` (the config file's directory).
    pub fn resolve_relative_to(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        if let Some(p) = self.vpn.as_mut().and_then(|v| v.private_key_file.as_mut()) {
            fix(p);
        }
        for p in [
            &mut self.releases.repo_dir,
            &mut self.releases.keys_dir,
            &mut self.tls.ca_cert,
            &mut self.tls.ca_key,
            &mut self.tls.server_cert,
            &mut self.tls.server_key,
            &mut self.tls.manufacturing_ca_cert,
            &mut self.tls.manufacturing_ca_key,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    /// Checks every setting: listen address, data directory, server names, size limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, expected: &str| ConfigError::Invalid { key, expected: expected.into() };
        self.listen_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "a directory path"));
        }
        if self.server_names.is_empty() {
            return Err(invalid("server_names", "at least one DNS name or IP address"));
        }
        for name in &self.server_names {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(ConfigError::Invalid {
                    key: "server_names",
                    expected: format!("DNS names or IP addresses ('{name}' is neither)"),
                });
            }
        }
        if !(1..=MAX_OBJECT_BYTES_LIMIT).contains(&self.max_object_bytes) {
            return Err(invalid("max_object_bytes", "1 ..= 4294967296 (4 GiB)"));
        }
        if !(1..=MAX_MANIFEST_BYTES_LIMIT).contains(&self.max_manifest_bytes) {
            return Err(invalid("max_manifest_bytes", "1 ..= 67108864 (64 MiB)"));
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(invalid("max_connections", "1 ..= 65536"));
        }
        if !(1..=1024).contains(&self.max_uploads_per_device) {
            return Err(invalid("max_uploads_per_device", "1 ..= 1024"));
        }
        if !(1..=3600).contains(&self.header_timeout_secs) {
            return Err(invalid("header_timeout_secs", "1 ..= 3600"));
        }
        if !(1..=86_400).contains(&self.body_timeout_secs) {
            return Err(invalid("body_timeout_secs", "1 ..= 86400"));
        }
        if !(1..=1 << 30).contains(&self.min_body_bytes_per_sec) {
            return Err(invalid("min_body_bytes_per_sec", "1 ..= 1073741824"));
        }
        if !(1..=MAX_QUOTA_BYTES).contains(&self.facility_quota_bytes) {
            return Err(invalid("facility_quota_bytes", "1 ..= 2^62"));
        }
        // Zero would delete an object between its upload and its manifest.
        if !(1..=MAX_SECS).contains(&self.gc_grace_secs) {
            return Err(invalid("gc_grace_secs", "1 ..= 31536000 (a year)"));
        }
        if !(1..=MAX_SECS).contains(&self.gc_interval_secs) {
            return Err(invalid("gc_interval_secs", "1 ..= 31536000 (a year)"));
        }
        if !(1..=MAX_CHUNK_BYTES_LIMIT).contains(&self.max_chunk_bytes) {
            return Err(invalid("max_chunk_bytes", "1 ..= 1073741824 (1 GiB)"));
        }
        if !(1..=self.max_chunk_bytes).contains(&self.min_chunk_bytes) {
            return Err(invalid("min_chunk_bytes", "1 ..= max_chunk_bytes"));
        }
        if !(1..=MAX_UPLOAD_BYTES_LIMIT).contains(&self.max_upload_bytes) {
            return Err(invalid("max_upload_bytes", "1 ..= 2^46 (64 TiB)"));
        }
        if self.max_upload_bytes.div_ceil(self.min_chunk_bytes) > MAX_CHUNKS_PER_UPLOAD {
            return Err(invalid(
                "max_upload_bytes",
                "at most 1048576 chunks of min_chunk_bytes (raise min_chunk_bytes)",
            ));
        }
        if !(1..=65_536).contains(&self.max_open_uploads_per_facility) {
            return Err(invalid("max_open_uploads_per_facility", "1 ..= 65536"));
        }
        if !(1..=MAX_SECS).contains(&self.upload_session_ttl_secs) {
            return Err(invalid("upload_session_ttl_secs", "1 ..= 31536000 (a year)"));
        }
        if !(1..=MAX_OPERATIONAL_CERT_DAYS).contains(&self.operational_cert_days) {
            return Err(invalid("operational_cert_days", "1 ..= 365"));
        }
        self.dashboard.validate()?;
        self.store
            .check()
            .map_err(|(key, expected)| ConfigError::Invalid { key, expected: expected.into() })?;
        match &self.vpn {
            Some(vpn) => vpn.validate(),
            None => Ok(()),
        }
    }

    /// The settings handed to the boxes of `facility` (an empty object if none are set).
    pub fn facility_settings(
        &self,
        facility: &FacilityId,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.facility_config.get(facility).cloned().unwrap_or_default()
    }

    /// What garbage collection keeps, from `gc_grace_secs` and `upload_session_ttl_secs`.
    pub fn gc_policy(&self) -> crate::gc::GcPolicy {
        crate::gc::GcPolicy {
            grace: std::time::Duration::from_secs(self.gc_grace_secs),
            upload_ttl: std::time::Duration::from_secs(self.upload_session_ttl_secs),
        }
    }

    /// `listen` as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| ConfigError::Invalid {
            key: "listen",
            expected: "host:port with a numeric IP address, e.g. 127.0.0.1:8443".into(),
        })
    }

    /// The hub's WireGuard private key file (`vpn.private_key_file`, default
    /// `<data_dir>/pki/wg.key`).
    pub fn vpn_key_file(&self) -> PathBuf {
        self.vpn
            .as_ref()
            .and_then(|v| v.private_key_file.clone())
            .unwrap_or_else(|| self.pki_dir().join("wg.key"))
    }

    /// `<data_dir>/pki`, where the PKI files live unless `[tls]` names them.
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }
    /// The society CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.tls.ca_cert.clone().unwrap_or_else(|| self.pki_dir().join("ca.crt"))
    }
    /// The society CA private key.
    pub fn ca_key(&self) -> PathBuf {
        self.tls.ca_key.clone().unwrap_or_else(|| self.pki_dir().join("ca.key"))
    }
    /// The hub's server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.tls.server_cert.clone().unwrap_or_else(|| self.pki_dir().join("server.crt"))
    }
    /// The hub's server private key.
    pub fn server_key(&self) -> PathBuf {
        self.tls.server_key.clone().unwrap_or_else(|| self.pki_dir().join("server.key"))
    }
    /// The manufacturing CA certificate (signs IDevIDs).
    pub fn manufacturing_ca_cert(&self) -> PathBuf {
        self.tls
            .manufacturing_ca_cert
            .clone()
            .unwrap_or_else(|| self.pki_dir().join("manufacturing-ca.crt"))
    }
    /// The manufacturing CA private key.
    pub fn manufacturing_ca_key(&self) -> PathBuf {
        self.tls
            .manufacturing_ca_key
            .clone()
            .unwrap_or_else(|| self.pki_dir().join("manufacturing-ca.key"))
    }
    /// The TUF repository of releases.
    pub fn release_repo_dir(&self) -> PathBuf {
        self.releases.repo_dir.clone().unwrap_or_else(|| self.data_dir.join("tuf").join("repo"))
    }
    /// The release role keys.
    pub fn release_keys_dir(&self) -> PathBuf {
        self.releases.keys_dir.clone().unwrap_or_else(|| self.data_dir.join("tuf").join("keys"))
    }
    /// SQLite metadata store.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hub.sqlite")
    }
    /// Content-addressed object store.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let cfg = HubConfig::parse_str("").unwrap();
        assert_eq!(cfg, HubConfig::default());
        cfg.validate().unwrap();
        assert_eq!(cfg.ca_cert(), PathBuf::from("/var/lib/fgw-hub/pki/ca.crt"));
        assert_eq!(cfg.max_object_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn dashboard_defaults_and_limits() {
        let d = HubConfig::default().dashboard;
        assert!(d.enabled);
        assert_eq!((d.session_idle_secs, d.session_max_secs, d.online_secs), (1800, 43200, 900));
        let cfg = HubConfig::parse_str("[dashboard]\nenabled = false\n").unwrap();
        assert!(!cfg.dashboard.enabled);
        cfg.validate().unwrap();
        let bad = HubConfig::parse_str(
            "[dashboard]\nsession_idle_secs = 7200\nsession_max_secs = 3600\n",
        )
        .unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("dashboard.session_idle_secs"));
        assert!(HubConfig::parse_str("[dashboard]\npassword = \"x\"\n").is_err());
    }

    #[test]
    fn limits_have_documented_defaults_and_bounds() {
        let cfg = HubConfig::default();
        assert_eq!(
            (cfg.max_connections, cfg.max_uploads_per_device, cfg.header_timeout_secs),
            (256, 4, 30)
        );
        assert_eq!((cfg.body_timeout_secs, cfg.min_body_bytes_per_sec), (60, 32768));
        assert_eq!(cfg.facility_quota_bytes, 1 << 40);
        assert_eq!((cfg.gc_grace_secs, cfg.gc_interval_secs), (86400, 3600));
        assert_eq!((cfg.min_chunk_bytes, cfg.max_chunk_bytes), (1 << 20, 64 << 20));
        assert_eq!((cfg.max_upload_bytes, cfg.max_open_uploads_per_facility), (64 << 30, 64));
        assert_eq!(cfg.upload_session_ttl_secs, 604_800);
        assert_eq!(cfg.operational_cert_days, 30);
        let parsed = HubConfig::parse_str("max_connections = 2\ngc_grace_secs = 1\n").unwrap();
        assert_eq!((parsed.max_connections, parsed.gc_grace_secs), (2, 1));
        parsed.validate().unwrap();
        for (key, bad) in [
            ("max_connections", HubConfig { max_connections: 0, ..HubConfig::default() }),
            ("max_uploads_per_device", HubConfig { max_uploads_per_device: 0, ..cfg.clone() }),
            ("header_timeout_secs", HubConfig { header_timeout_secs: 0, ..cfg.clone() }),
            ("body_timeout_secs", HubConfig { body_timeout_secs: 0, ..cfg.clone() }),
            ("min_body_bytes_per_sec", HubConfig { min_body_bytes_per_sec: 0, ..cfg.clone() }),
            ("facility_quota_bytes", HubConfig { facility_quota_bytes: 0, ..cfg.clone() }),
            ("gc_grace_secs", HubConfig { gc_grace_secs: 0, ..cfg.clone() }),
            ("gc_interval_secs", HubConfig { gc_interval_secs: 0, ..cfg.clone() }),
            ("min_chunk_bytes", HubConfig { min_chunk_bytes: 0, ..cfg.clone() }),
            ("min_chunk_bytes", HubConfig { min_chunk_bytes: 128 << 20, ..cfg.clone() }),
            ("max_chunk_bytes", HubConfig { max_chunk_bytes: 2 << 30, ..cfg.clone() }),
            ("max_upload_bytes", HubConfig { max_upload_bytes: 0, ..cfg.clone() }),
            ("max_upload_bytes", HubConfig { min_chunk_bytes: 1, ..cfg.clone() }),
            (
                "max_open_uploads_per_facility",
                HubConfig { max_open_uploads_per_facility: 0, ..cfg.clone() },
            ),
            ("upload_session_ttl_secs", HubConfig { upload_session_ttl_secs: 0, ..cfg.clone() }),
            ("operational_cert_days", HubConfig { operational_cert_days: 0, ..cfg.clone() }),
            ("operational_cert_days", HubConfig { operational_cert_days: 366, ..cfg.clone() }),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn facility_settings_and_the_vpn() {
        let cfg = HubConfig::parse_str(
            "[facility_config.F0001]\nlane = \"x\"\nn = 2\n\
             [vpn]\naddress = \"10.88.0.1/16\"\nendpoint = \"hub.example.org:51820\"\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let f1 = FacilityId::new("F0001").unwrap();
        assert_eq!(cfg.facility_settings(&f1)["n"], 2);
        assert!(cfg.facility_settings(&FacilityId::new("F0002").unwrap()).is_empty());
        // A facility key is a facility id.
        assert!(HubConfig::parse_str("[facility_config.\"../x\"]\na = 1\n").is_err());
        let vpn = cfg.vpn.clone().unwrap();
        assert_eq!(vpn.api_listen_addr().unwrap().to_string(), "10.88.0.1:8443");
        assert_eq!(vpn.box_address(1).unwrap().to_string(), "10.88.0.2/32");
        assert_eq!(vpn.box_address(65_533).unwrap().to_string(), "10.88.255.254/32");
        assert!(vpn.box_address(65_534).is_none(), "the broadcast address is no box's");
        for (key, bad) in [
            ("vpn.address", HubVpn { address: "10.88.0.1".into(), ..vpn.clone() }),
            ("vpn.address", HubVpn { address: "10.88.0.1/31".into(), ..vpn.clone() }),
            ("vpn.endpoint", HubVpn { endpoint: "hub.example.org".into(), ..vpn.clone() }),
            ("vpn.api_listen", HubVpn { api_listen: Some("x".into()), ..vpn.clone() }),
            ("vpn.interface", HubVpn { interface: "much-too-long-name".into(), ..vpn.clone() }),
            ("vpn.implementation", HubVpn { implementation: "tun".into(), ..vpn.clone() }),
        ] {
            let cfg = HubConfig { vpn: Some(bad), ..HubConfig::default() };
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(HubConfig::parse_str("listen_addr = \"x\"").is_err());
        assert!(HubConfig::parse_str("[tls]\nclient_auth = false").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let mut cfg = HubConfig { listen: "localhost".into(), ..HubConfig::default() };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("listen: expected host:port"), "{e}");
        cfg.listen = "0.0.0.0:443".into();
        cfg.max_object_bytes = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("max_object_bytes"));
        cfg.max_object_bytes = 1;
        cfg.server_names = vec!["not a name!".into()];
        assert!(cfg.validate().unwrap_err().to_string().contains("server_names"));
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "data_dir = \"state\"\n[tls]\nca_cert = \"/etc/ca.crt\"\n").unwrap();
        let cfg = HubConfig::load(&path).unwrap();
        assert_eq!(cfg.data_dir, dir.path().join("state"));
        assert_eq!(cfg.ca_cert(), PathBuf::from("/etc/ca.crt"));
        assert_eq!(cfg.ca_key(), dir.path().join("state/pki/ca.key"));
    }
}
