//! The society hub: receives de-identified packages from facility gateways over mutual TLS.
//!
//! - [`config`] — `hub.toml`;
//! - [`ca`] — the society CA, the hub's server certificate and device certificates; the
//!   manufacturing CA and the IDevIDs it signs;
//! - [`enroll`] — device identity (issue 12): `hub device add` / `revoke`, CSRs, EST
//!   enrollment (`docs/enrollment.md`);
//! - [`store`] — narrow object/metadata traits with embedded defaults (filesystem + SQLite);
//! - [`intake`] — what uploads are checked against before storing (fuzzed without a network);
//! - [`fleet`] — the boxes' heartbeats (issue 13), for `hub fleet` and the operators;
//! - [`dashboard`] — the operators' web page at `/dashboard` (issue 13): login with
//!   username and password, fleet and facility pages rendered on the server
//!   (`docs/dashboard.md`);
//! - [`gc`] — collection of objects no manifest references, and of expired upload sessions;
//! - [`api`] and [`server`] — the HTTP API behind the TLS acceptor that authenticates callers;
//!   [`uploads`] — its chunked upload sessions (issue 11);
//! - [`vpn`] — the hub's end of the WireGuard tunnel: its key, the peer data enrollment hands
//!   out, the interface kept in line with the registry (issue 12).
//!
//! The `hub` command line lives in the binary (`src/main.rs`, `src/cli.rs`).
//!
//! The hub stores only what manifests carry (already de-identified) plus device and facility
//! ids; it never sees anything from the identifiable side.

mod api;
pub mod ca;
mod config;
pub mod dashboard;
pub mod enroll;
mod est;
pub mod export;
pub mod fleet;
pub mod gc;
pub mod intake;
mod release_api;
pub mod releases;
pub mod rollout;
mod server;
pub mod store;
mod store_settings;
mod uploads;
pub mod vpn;

pub use config::{
    ConfigError, HubConfig, HubDashboard, HubTlsPaths, HubVpn, MetaBackend, ObjectBackend,
    PostgresUrl, S3Settings, StoreSettings,
};
pub use server::{bind, serve, Hub, RunningHub, ServeError};

use fgw_format::ids::{DeviceId, FacilityId};
use serde::{Deserialize, Serialize};

/// What a registered certificate may do. Kept in the hub's registry, not in the certificate,
/// so it can change without re-issuing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A facility gateway: uploads packages and lists its own facility only.
    Device,
    /// Society staff: read-only, may list any facility; cannot upload.
    Operator,
}

/// A role name that is neither `device` nor `operator`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected device or operator)")]
pub struct UnknownRole;

impl Role {
    /// The name stored in the registry and accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "device" => Ok(Role::Device),
            "operator" => Ok(Role::Operator),
            _ => Err(UnknownRole),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of one connection, attached to every request as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The device named in the registry for the client certificate.
    pub device: DeviceId,
    /// The facility that device belongs to.
    pub facility: FacilityId,
    /// What the certificate may do.
    pub role: Role,
}
