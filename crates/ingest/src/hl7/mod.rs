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
mod bytes;
mod charset;
mod delimiters;
mod message;
mod mllp;
mod oru;

pub use crate::listener::{PeerNet, PeerNetError};
pub use bytes::{deframe, parse_message, Deframed};
pub use mllp::{serve, Hl7Listener, MllpError};

use fgw_records::RawReport;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Largest message (bytes inside one MLLP frame) we process; a larger one gets an AR NAK.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest frame we read through at all; beyond it the connection is closed, since a sender
/// that never ends its frame would otherwise keep us reading forever.
pub const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;
/// Concurrent MLLP connections (senders keep one or two open). When all are taken, the one
/// idle longest (of the peer holding the most) is closed for the new one; only when none is
/// idle is the new one closed at once.
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
    /// Every peer may connect. For tests and embedding only: the gateway's `[hl7]` always
    /// gives an allow list (an enabled listener without one refuses to start).
    AnyPeer,
    /// Only peers in these networks (IPv4-mapped IPv6 peers compare as IPv4); an empty list
    /// admits nobody.
    Allowlist(Vec<PeerNet>),
}

impl PeerPolicy {
    /// Whether `peer` may connect.
    pub fn allows(&self, peer: IpAddr) -> bool {
        match self {
            PeerPolicy::AnyPeer => true,
            PeerPolicy::Allowlist(list) => list.iter().any(|n| n.contains(peer)),
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

/// Default of `hl7.idle_timeout_secs`: a sender's connection with nothing to say for five
/// minutes is closed (senders reconnect for their next message).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// Default of `hl7.max_connection_secs`: no connection lives longer than an hour.
pub const DEFAULT_MAX_CONNECTION_SECS: u64 = 3600;

/// `[hl7]` in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hl7Config {
    /// Address and port to listen on (default `0.0.0.0:2575`).
    pub listen: String,
    /// Whether the listener runs.
    pub mode: Hl7Mode,
    /// Peers allowed to connect: addresses or CIDR networks. Required when enabled; others
    /// are closed at accept. (`allow` is its former name, kept for old configurations.)
    #[serde(alias = "allow")]
    pub allowed_peers: Vec<PeerNet>,
    /// A connection silent this long is closed (default 300).
    pub idle_timeout_secs: u64,
    /// A connection is closed after this long in all, between messages (default 3600).
    pub max_connection_secs: u64,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config {
            listen: "0.0.0.0:2575".into(),
            mode: Hl7Mode::Disabled,
            allowed_peers: Vec::new(),
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            max_connection_secs: DEFAULT_MAX_CONNECTION_SECS,
        }
    }
}

impl Hl7Config {
    /// `Err((key, allowed values))`, like the other config sections.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_addr()?;
        crate::listener::require_allowed_peers(
            self.mode == Hl7Mode::Enabled,
            &self.allowed_peers,
            "hl7.allowed_peers",
        )?;
        crate::listener::check_secs(self.idle_timeout_secs, "hl7.idle_timeout_secs")?;
        crate::listener::check_secs(self.max_connection_secs, "hl7.max_connection_secs")?;
        Ok(())
    }

    /// `listen` parsed; `Err` like [`Hl7Config::validate`].
    pub fn listen_addr(&self) -> Result<SocketAddr, (&'static str, String)> {
        crate::listener::listen_addr(&self.listen, "hl7.listen", "0.0.0.0:2575")
    }

    /// The peer policy `allowed_peers` describes (empty: nobody).
    pub fn peer_policy(&self) -> PeerPolicy {
        PeerPolicy::Allowlist(self.allowed_peers.clone())
    }

    /// The per-connection limits.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(self.idle_timeout_secs),
            total: Duration::from_secs(self.max_connection_secs),
        }
    }
}

/// How long an MLLP connection may stay silent, and last in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence (no bytes) after which the connection is closed.
    pub idle: Duration,
    /// Time after which the connection is closed once its message in hand is answered.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Hl7Config::default().timeouts()
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
        assert_eq!(c.peer_policy(), PeerPolicy::Allowlist(vec![]));
        assert_eq!(c.timeouts().idle, Duration::from_secs(300));
        assert_eq!(c.timeouts().total, Duration::from_secs(3600));
        c.validate().unwrap();
        let c: Hl7Config = toml::from_str(
            "mode = \"enabled\"\nlisten = \"127.0.0.1:2575\"\n\
             allowed_peers = [\"10.0.0.5\", \"10.1.0.0/16\"]\nidle_timeout_secs = 5",
        )
        .unwrap();
        assert_eq!(c.mode, Hl7Mode::Enabled);
        c.validate().unwrap();
        let p = c.peer_policy();
        assert!(p.allows("10.0.0.5".parse().unwrap()) && p.allows("10.1.200.3".parse().unwrap()));
        assert!(!p.allows("10.0.0.6".parse().unwrap()));
        // The former key still reads (as single hosts).
        let old: Hl7Config = toml::from_str("allow = [\"10.0.0.5\"]").unwrap();
        assert_eq!(old.allowed_peers, vec!["10.0.0.5/32".parse().unwrap()]);
        assert!(toml::from_str::<Hl7Config>("mode = \"Enabled\"").is_err());
        assert!(toml::from_str::<Hl7Config>("port = 1").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        let c = Hl7Config { listen: "2575".into(), ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.listen");
        let c = Hl7Config { listen: "0.0.0.0:0".into(), ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.listen");
        assert!(toml::from_str::<Hl7Config>("allowed_peers = [\"0.0.0.0\"]").is_err());
        let c = Hl7Config { idle_timeout_secs: 0, ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.idle_timeout_secs");
        let c = Hl7Config { max_connection_secs: 0, ..Hl7Config::default() };
        assert_eq!(c.validate().unwrap_err().0, "hl7.max_connection_secs");
    }

    #[test]
    fn enabled_without_allowed_peers_refuses_to_start() {
        let c = Hl7Config { mode: Hl7Mode::Enabled, ..Hl7Config::default() };
        let (key, allowed) = c.validate().unwrap_err();
        assert_eq!(key, "hl7.allowed_peers");
        assert!(allowed.contains("refuses to start"), "{allowed}");
        // The same list disabled is fine: nothing listens.
        Hl7Config::default().validate().unwrap();
    }

    #[test]
    fn allowlist_compares_mapped_addresses() {
        let p = PeerPolicy::Allowlist(vec!["10.0.0.5".parse().unwrap()]);
        assert!(p.allows("10.0.0.5".parse().unwrap()));
        assert!(p.allows("::ffff:10.0.0.5".parse().unwrap()));
        assert!(!p.allows("10.0.0.6".parse().unwrap()));
        assert!(!PeerPolicy::Allowlist(vec![]).allows("10.0.0.5".parse().unwrap()));
        assert!(PeerPolicy::AnyPeer.allows("192.0.2.1".parse().unwrap()));
    }
}
