//! HL7 v2 report results (ORU^R01) over MLLP (identifiable side).
//!
//! - `charset`, `delimiters`, `message`: bytes → text (charset from MSH-18, decoded after
//!   framing and before any splitting, because Shift_JIS and JIS bytes can equal the
//!   delimiters), segments, fields, escape sequences;
//! - `ack`: the ACK/NAK we send back;
//! - `oru`: an ORU^R01 → one [`RawReport`] per OBR (PID/OBR identifiers keyed like export
//!   columns, OBX text);
//! - `mllp`: the TCP listener, MLLP framing, peer policy, ACK only after the sink accepted.
//!
//! Errors, logs and NAK texts name segment/field positions (`PID-5`) and fixed descriptions,
//! never a value; the only message-derived text they may carry is the message type code.

mod ack;
mod charset;
mod delimiters;
mod message;
mod mllp;
mod oru;

pub use mllp::{serve, Hl7Listener, MllpError};

use fgw_records::RawReport;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Largest message (bytes inside one MLLP frame) we process; a larger one gets an AR NAK.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest frame we read through at all; beyond it the connection is closed, since a sender
/// that never ends its frame would otherwise keep us reading forever.
pub const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;
/// Concurrent MLLP connections; more are closed at once (senders keep one or two open).
pub const MAX_CONNECTIONS: usize = 32;

/// Where accepted reports go. `accept` must make the report durable before it returns `Ok`:
/// the sender gets its AA right after, and never sends the message again.
///
/// Called on a blocking thread (it may write files and a database).
pub trait ReportSink: Send + Sync + 'static {
    /// Store one report durably, or say why not.
    fn accept(&self, report: RawReport) -> Result<(), SinkError>;
}

/// Why a sink did not take a report. Carries fixed reasons only (no values, no paths).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Temporary: the sender gets AE and retries later.
    #[error("report store unavailable: {0}")]
    Unavailable(&'static str),
    /// Permanent: the sender gets AR and should not send this message again.
    #[error("report rejected: {0}")]
    Rejected(&'static str),
}

/// Which peers may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPolicy {
    /// Every peer may connect.
    AnyPeer,
    /// Only these addresses (IPv4-mapped IPv6 peers compare as IPv4).
    Allowlist(Vec<IpAddr>),
}

impl PeerPolicy {
    /// Whether `peer` may connect.
    pub fn allows(&self, peer: IpAddr) -> bool {
        match self {
            PeerPolicy::AnyPeer => true,
            PeerPolicy::Allowlist(list) => {
                let peer = peer.to_canonical();
                list.iter().any(|a| a.to_canonical() == peer)
            }
        }
    }
}

/// Whether the daemon runs the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hl7Mode {
    /// Default: most sites deliver reports through the export; an open port must be asked for.
    #[default]
    Disabled,
    /// Listen on `hl7.listen`.
    Enabled,
}

/// `[hl7]` in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hl7Config {
    /// Address and port to listen on (default `0.0.0.0:2575`).
    pub listen: String,
    /// Whether the listener runs.
    pub mode: Hl7Mode,
    /// Peer IP addresses allowed to connect; empty = any peer.
    pub allow: Vec<IpAddr>,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config { listen: "0.0.0.0:2575".into(), mode: Hl7Mode::Disabled, allow: Vec::new() }
    }
}

impl Hl7Config {
    /// `Err((key, allowed values))`, like the other config sections.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_addr()?;
        if self.allow.iter().any(|a| a.is_unspecified() || a.is_multicast()) {
            return Err(("hl7.allow", "unicast peer IP addresses (not 0.0.0.0, ::)".into()));
        }
        Ok(())
    }

    /// `listen` parsed; `Err` like [`Hl7Config::validate`].
    pub fn listen_addr(&self) -> Result<SocketAddr, (&'static str, String)> {
        crate::listener::listen_addr(&self.listen, "hl7.listen", "0.0.0.0:2575")
    }

    /// The peer policy `allow` describes.
    pub fn peer_policy(&self) -> PeerPolicy {
        if self.allow.is_empty() {
            PeerPolicy::AnyPeer
        } else {
            PeerPolicy::Allowlist(self.allow.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_kebab_case() {
        let c: Hl7Config = toml::from_str("").unwrap();
        assert_eq!(c, Hl7Config::default());
        assert_eq!(c.mode, Hl7Mode::Disabled);
        assert_eq!(c.peer_policy(), PeerPolicy::AnyPeer);
        c.validate().unwrap();
        let c: Hl7Config = toml::from_str(
            "mode = \"enabled\"\nlisten = \"127.0.0.1:2575\"\nallow = [\"10.0.0.5\"]",
        )
        .unwrap();
        assert_eq!(c.mode, Hl7Mode::Enabled);
        assert_eq!(c.peer_policy(), PeerPolicy::Allowlist(vec!["10.0.0.5".parse().unwrap()]));
        assert!(toml::from_str::<Hl7Config>("mode = \"Enabled\"").is_err());
        assert!(toml::from_str::<Hl7Config>("port = 1").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        let c = Hl7Config { listen: "2575".into(), ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.listen");
        let c = Hl7Config { listen: "0.0.0.0:0".into(), ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.listen");
        let c = Hl7Config { allow: vec!["0.0.0.0".parse().unwrap()], ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.allow");
    }

    #[test]
    fn allowlist_compares_mapped_addresses() {
        let p = PeerPolicy::Allowlist(vec!["10.0.0.5".parse().unwrap()]);
        assert!(p.allows("10.0.0.5".parse().unwrap()));
        assert!(p.allows("::ffff:10.0.0.5".parse().unwrap()));
        assert!(!p.allows("10.0.0.6".parse().unwrap()));
        assert!(PeerPolicy::AnyPeer.allows("192.0.2.1".parse().unwrap()));
    }
}
