//! The society hub: receives de-identified packages from facility gateways over mutual TLS.
//!
//! - [`config`] — `hub.toml`;
//! - [`ca`] — the society CA, the hub's server certificate and device certificates;
//! - [`store`] — narrow object/metadata traits with embedded defaults (filesystem + SQLite);
//! - [`api`] and [`server`] — the HTTP API behind the TLS acceptor that authenticates callers;
//! - [`cli`] — the `hub` binary.
//!
//! The hub stores only what manifests carry (already de-identified) plus device and facility
//! ids; it never sees anything from the identifiable side.

pub mod api;
pub mod ca;
pub mod cli;
pub mod config;
pub mod server;
pub mod store;

pub use config::HubConfig;
pub use server::{bind, serve, Hub, RunningHub};

use fgw_format::ids::{DeviceId, FacilityId};
use serde::{Deserialize, Serialize};

/// What a registered certificate may do. Kept in the hub's registry, not in the certificate,
/// so it can change without re-issuing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A facility gateway: uploads packages and lists its own facility only.
    Device,
    /// Society staff: read-only, may list any facility; cannot upload.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Device => "device",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "device" => Some(Role::Device),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// The authenticated caller of one connection, attached to every request as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub device: DeviceId,
    pub facility: FacilityId,
    pub role: Role,
}
