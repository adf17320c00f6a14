//! DICOM C-STORE SCP (identifiable side): modalities and archives push images to the box.
//!
//! - `dimse`: command sets (parsed and written by hand: group 0000, Implicit VR Little
//!   Endian), the data set check, and the Part-10 file built around a received data set;
//! - `scp`: the TCP listener, association policy (allow list, called AE title), C-ECHO and
//!   C-STORE, and the response only after the sink accepted.
//!
//! Errors, logs and `Debug` name the peer IP, AE titles, SOP class and transfer syntax UIDs,
//! message ids and fixed reasons; never an attribute value or a SOP instance UID.

pub(crate) mod dimse;
mod scp;

pub use dimse::{check_received, Status};
pub(crate) use scp::ul_reason;
pub use scp::{serve, DicomScp, ScpError};

use dicom_dictionary_std::uids;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Associations served at once; more are refused with A-ASSOCIATE-RJ (transient, local
/// limit exceeded) so the sender retries. Each one holds at most one data set in memory.
pub const MAX_ASSOCIATIONS: usize = 8;

// SOP classes and transfer syntaxes under the names the SCP's configuration and tests use,
// from the standard dictionary.
/// Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = uids::VERIFICATION;
/// VL Endoscopic Image Storage.
pub const VL_ENDOSCOPIC_IMAGE: &str = uids::VL_ENDOSCOPIC_IMAGE_STORAGE;
/// Video Endoscopic Image Storage.
pub const VIDEO_ENDOSCOPIC_IMAGE: &str = uids::VIDEO_ENDOSCOPIC_IMAGE_STORAGE;
/// VL Photographic Image Storage.
pub const VL_PHOTOGRAPHIC_IMAGE: &str = uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE;
/// Secondary Capture Image Storage.
pub const SECONDARY_CAPTURE_IMAGE: &str = uids::SECONDARY_CAPTURE_IMAGE_STORAGE;

/// Implicit VR Little Endian (the default transfer syntax every SCP must accept).
pub const IMPLICIT_VR_LE: &str = uids::IMPLICIT_VR_LITTLE_ENDIAN;
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = uids::EXPLICIT_VR_LITTLE_ENDIAN;
/// JPEG Baseline (Process 1).
pub const JPEG_BASELINE: &str = uids::JPEG_BASELINE8_BIT;
/// JPEG Extended (Process 2 & 4).
pub const JPEG_EXTENDED: &str = uids::JPEG_EXTENDED12_BIT;
/// JPEG Lossless, first-order prediction (Process 14, selection value 1).
pub const JPEG_LOSSLESS_SV1: &str = uids::JPEG_LOSSLESS_SV1;
/// RLE Lossless.
pub const RLE_LOSSLESS: &str = uids::RLE_LOSSLESS;

/// Error of the two validating newtypes below: shape only, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be {rule} (got {len} characters)")]
pub struct ShapeError {
    /// Which newtype.
    pub kind: &'static str,
    /// Its shape, in words.
    pub rule: &'static str,
    /// Length of the refused value, in characters.
    pub len: usize,
}

/// An application entity title: 1–16 ASCII printable characters without backslash, not all
/// spaces. Leading and trailing spaces are dropped: they are padding on the wire, and
/// dicom-ul trims both ends of the titles it reads, so a configured " X" could never match.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AeTitle(String);

impl AeTitle {
    /// Checks the shape; drops leading and trailing spaces.
    pub fn new(s: impl Into<String>) -> Result<AeTitle, ShapeError> {
        let s = s.into();
        let t = s.trim_matches(' ');
        let ok = !t.is_empty()
            && t.len() <= 16
            && t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
        if ok {
            Ok(AeTitle(t.to_string()))
        } else {
            Err(ShapeError {
                kind: "AE title",
                rule: "1-16 ASCII printable characters without backslash, not all spaces",
                len: s.chars().count(),
            })
        }
    }

    /// The checked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DICOM UID: 1–64 characters of digits and dots, no empty component. Trailing NUL and
/// space padding (the value is padded to even length on the wire) is dropped.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uid(String);

impl Uid {
    /// Checks the shape; drops trailing NUL and space padding.
    pub fn new(s: impl Into<String>) -> Result<Uid, ShapeError> {
        let s = s.into();
        let t = s.trim_end_matches(['\0', ' ']);
        if fgw_format::ids::is_dicom_uid(t) {
            Ok(Uid(t.to_string()))
        } else {
            Err(ShapeError {
                kind: "UID",
                rule: "1-64 characters of digits and dots",
                len: s.chars().count(),
            })
        }
    }

    /// The checked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = ShapeError;
            fn try_from(s: String) -> Result<Self, ShapeError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = ShapeError;
            fn from_str(s: &str) -> Result<Self, ShapeError> {
                Self::new(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}
string_newtype_impls!(AeTitle);
string_newtype_impls!(Uid);

/// A stored object, as handed to the sink.
pub struct ReceivedObject {
    /// The sender's IP address.
    pub peer: IpAddr,
    /// The sender's AE title.
    pub calling_ae: AeTitle,
    /// SOP Class UID of the command (checked equal to the data set's).
    pub sop_class_uid: Uid,
    /// Identifies the image (and through it the study): never logged.
    pub sop_instance_uid: Uid,
    /// The transfer syntax of the presentation context the data set came in.
    pub transfer_syntax: Uid,
    /// A complete Part-10 file: 128-byte preamble, `DICM`, file meta group (0002) written by
    /// us, then the data set exactly as received.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for ReceivedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedObject")
            .field("peer", &self.peer)
            .field("calling_ae", &self.calling_ae)
            .field("sop_class_uid", &self.sop_class_uid)
            .field("sop_instance_uid", &"<redacted>")
            .field("transfer_syntax", &self.transfer_syntax)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A C-STORE we answered with a failure status before the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The sender's IP address.
    pub peer: IpAddr,
    /// The sender's AE title.
    pub calling_ae: AeTitle,
    /// Per-process message number (the same one the log line carries).
    pub message: u64,
    /// The failure status the sender got.
    pub status: Status,
    /// A fixed description; never a value from the data set.
    pub reason: &'static str,
}

/// Where received objects go. `accept` must make the object durable before it returns `Ok`:
/// the sender gets Success right after, and may delete its copy.
///
/// Called on a blocking thread (it may write files and a database).
pub trait DicomSink: Send + Sync + 'static {
    /// Store one object durably, or say why not.
    fn accept(&self, object: ReceivedObject) -> Result<(), SinkError>;

    /// A data set we refused (unparseable, too large, not matching its command). The sender
    /// has the failure status; this lets the pipeline record the refusal per file.
    fn refused(&self, _refusal: &Refusal) {}
}

/// Why a sink did not take an object. Carries fixed reasons only (no values, no paths).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Temporary: the sender gets 0xA700 (out of resources) and retries later.
    #[error("image store unavailable: {0}")]
    Unavailable(&'static str),
    /// Permanent: the sender gets 0x0110 (processing failure).
    #[error("image rejected: {0}")]
    Rejected(&'static str),
}

/// Whether the daemon runs the SCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScpMode {
    /// Default: an open DICOM port must be asked for.
    #[default]
    Disabled,
    /// Listen on `dicom_scp.listen`.
    Enabled,
}

/// What the called AE title of an association request must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalledAePolicy {
    /// Default: equal to `ae_title`, so a sender configured for another node is refused
    /// instead of silently delivering to us.
    #[default]
    MustMatch,
    /// Any called AE title is accepted.
    Any,
}

/// One allow-list entry: the calling AE title, the peer address, or both must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// The calling AE title, if the rule names one.
    #[serde(default)]
    pub ae: Option<AeTitle>,
    /// IPv4-mapped IPv6 peers compare as IPv4.
    #[serde(default)]
    pub ip: Option<IpAddr>,
}

impl AllowRule {
    /// Whether an association from `calling` at `peer` matches every field the rule sets.
    pub fn matches(&self, calling: &AeTitle, peer: IpAddr) -> bool {
        // `match` rather than `Option::is_none_or`: that needs Rust 1.82, our MSRV is 1.80.
        let ae_ok = match &self.ae {
            Some(a) => a == calling,
            None => true,
        };
        let ip_ok = match self.ip {
            Some(ip) => ip.to_canonical() == peer.to_canonical(),
            None => true,
        };
        // A rule with neither field would allow everyone; validate() refuses it, and it
        // matches nothing here in case validation was skipped.
        (self.ae.is_some() || self.ip.is_some()) && ae_ok && ip_ok
    }
}

/// `[dicom_scp]` in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomScpConfig {
    /// Whether the SCP runs.
    pub mode: ScpMode,
    /// Address and port to listen on (default `0.0.0.0:11112`).
    pub listen: String,
    /// Our AE title (default `FGW`).
    pub ae_title: AeTitle,
    /// What the called AE title must be.
    pub called_ae: CalledAePolicy,
    /// Who may associate; empty = any calling AE from the allowed peers. Otherwise one
    /// matching rule admits the association.
    pub allow: Vec<AllowRule>,
    /// Peers allowed to connect at all: addresses or CIDR networks, checked at accept (before
    /// `allow`). Required when enabled.
    pub allowed_peers: Vec<crate::listener::PeerNet>,
    /// A peer silent this long (while associating, or between PDUs) is dropped (default 60).
    pub idle_timeout_secs: u64,
    /// An association is aborted after this long in all (default 3600).
    pub max_association_secs: u64,
    /// Largest P-DATA PDU we accept (bytes of PDU body), advertised in the association.
    pub max_pdu: u32,
    /// Largest data set kept in memory; a larger one gets 0xA700 and is dropped.
    pub max_object_bytes: u64,
    /// Abstract syntaxes accepted: the storage SOP classes, and Verification for C-ECHO.
    pub sop_classes: Vec<Uid>,
    /// Transfer syntaxes accepted (the first of the sender's proposals that is listed wins).
    pub transfer_syntaxes: Vec<Uid>,
}

fn uids(list: &[&str]) -> Vec<Uid> {
    list.iter().map(|u| Uid::new(*u).expect("built-in UID")).collect()
}

impl Default for DicomScpConfig {
    fn default() -> Self {
        DicomScpConfig {
            mode: ScpMode::Disabled,
            listen: "0.0.0.0:11112".into(),
            ae_title: AeTitle::new("FGW").expect("built-in AE title"),
            called_ae: CalledAePolicy::MustMatch,
            allow: Vec::new(),
            allowed_peers: Vec::new(),
            idle_timeout_secs: 60,
            max_association_secs: 3600,
            max_pdu: 65_536,
            max_object_bytes: 256 * 1024 * 1024,
            sop_classes: uids(&[
                VL_ENDOSCOPIC_IMAGE,
                VIDEO_ENDOSCOPIC_IMAGE,
                VL_PHOTOGRAPHIC_IMAGE,
                SECONDARY_CAPTURE_IMAGE,
                VERIFICATION,
            ]),
            transfer_syntaxes: uids(&[
                EXPLICIT_VR_LE,
                IMPLICIT_VR_LE,
                JPEG_BASELINE,
                JPEG_EXTENDED,
                JPEG_LOSSLESS_SV1,
                RLE_LOSSLESS,
            ]),
        }
    }
}

/// PDU body limits: PS3.8 requires at least 4096 from an SCP; above 16 MiB one PDU would
/// pin that much memory per association for nothing.
const MIN_PDU: u32 = 4096;
const MAX_PDU: u32 = 16 * 1024 * 1024;

impl DicomScpConfig {
    /// `Err((key, allowed values))`, like the other config sections.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_addr()?;
        crate::listener::require_allowed_peers(
            self.mode == ScpMode::Enabled,
            &self.allowed_peers,
            "dicom_scp.allowed_peers",
        )?;
        crate::listener::check_secs(self.idle_timeout_secs, "dicom_scp.idle_timeout_secs")?;
        crate::listener::check_secs(self.max_association_secs, "dicom_scp.max_association_secs")?;
        for rule in &self.allow {
            if rule.ae.is_none() && rule.ip.is_none() {
                return Err(("dicom_scp.allow", "each rule names `ae`, `ip` or both".into()));
            }
            if rule.ip.is_some_and(|a| a.is_unspecified() || a.is_multicast()) {
                return Err((
                    "dicom_scp.allow",
                    "unicast peer IP addresses (not 0.0.0.0, ::)".into(),
                ));
            }
        }
        if !(MIN_PDU..=MAX_PDU).contains(&self.max_pdu) {
            return Err(("dicom_scp.max_pdu", format!("{MIN_PDU}..={MAX_PDU}")));
        }
        if self.max_object_bytes < 1024 * 1024 {
            return Err(("dicom_scp.max_object_bytes", "at least 1048576".into()));
        }
        if self.sop_classes.is_empty() {
            return Err(("dicom_scp.sop_classes", "at least one SOP class UID".into()));
        }
        if self.transfer_syntaxes.iter().any(|ts| !dimse::can_read(ts.as_str())) {
            return Err((
                "dicom_scp.transfer_syntaxes",
                format!(
                    "transfer syntaxes whose data sets we can read, e.g. {EXPLICIT_VR_LE}, \
                     {JPEG_BASELINE} (not deflated ones)"
                ),
            ));
        }
        // PS3.5 10.1: every node supports Implicit VR Little Endian; C-ECHO needs it.
        if !self.transfer_syntaxes.iter().any(|ts| ts.as_str() == IMPLICIT_VR_LE) {
            return Err((
                "dicom_scp.transfer_syntaxes",
                format!("a list including {IMPLICIT_VR_LE}"),
            ));
        }
        Ok(())
    }

    /// `listen` parsed; `Err` like [`DicomScpConfig::validate`].
    pub fn listen_addr(&self) -> Result<SocketAddr, (&'static str, String)> {
        crate::listener::listen_addr(&self.listen, "dicom_scp.listen", "0.0.0.0:11112")
    }

    /// Whether `peer` may connect at all (`allowed_peers`).
    pub fn admits_peer(&self, peer: IpAddr) -> bool {
        self.allowed_peers.iter().any(|n| n.contains(peer))
    }

    /// Whether an association from `calling` at `peer` may proceed.
    pub fn allows(&self, calling: &AeTitle, peer: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|r| r.matches(calling, peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_title_shape() {
        assert_eq!(AeTitle::new("FGW").unwrap().as_str(), "FGW");
        assert_eq!(AeTitle::new(" ENDO 1  ").unwrap().as_str(), "ENDO 1");
        assert_eq!(AeTitle::new("A".repeat(16)).unwrap().as_str().len(), 16);
        assert!(AeTitle::new("A".repeat(17)).is_err());
        assert!(AeTitle::new("").is_err());
        assert!(AeTitle::new("    ").is_err());
        assert!(AeTitle::new("A\\B").is_err());
        assert!(AeTitle::new("A\tB").is_err());
        assert!(AeTitle::new("内視鏡").is_err());
        let e = AeTitle::new("X\u{7f}").unwrap_err();
        assert!(!e.to_string().contains('X'), "shape errors carry no value");
    }

    #[test]
    fn uid_shape() {
        assert_eq!(Uid::new("1.2.840.10008.1.2\0").unwrap().as_str(), "1.2.840.10008.1.2");
        assert!(Uid::new("1.2.").is_err());
        assert!(Uid::new("1..2").is_err());
        assert!(Uid::new("1.2a").is_err());
        assert!(Uid::new("").is_err());
        assert!(Uid::new(format!("1.{}", "2".repeat(63))).is_err());
    }

    #[test]
    fn config_defaults_and_kebab_case() {
        let c: DicomScpConfig = toml::from_str("").unwrap();
        assert_eq!(c, DicomScpConfig::default());
        assert_eq!(c.mode, ScpMode::Disabled);
        assert_eq!(c.ae_title.as_str(), "FGW");
        c.validate().unwrap();
        let c: DicomScpConfig = toml::from_str(
            "mode = \"enabled\"\nlisten = \"127.0.0.1:104\"\nae_title = \"GW1\"\n\
             called_ae = \"any\"\nallowed_peers = [\"10.0.0.0/24\"]\n\
             allow = [{ ae = \"ENDO1\" }, { ip = \"10.0.0.5\" },\n\
             { ae = \"X\", ip = \"10.0.0.6\" }]",
        )
        .unwrap();
        assert_eq!(c.mode, ScpMode::Enabled);
        assert_eq!(c.called_ae, CalledAePolicy::Any);
        c.validate().unwrap();
        assert!(toml::from_str::<DicomScpConfig>("mode = \"Enabled\"").is_err());
        assert!(toml::from_str::<DicomScpConfig>("port = 1").is_err());
        assert!(toml::from_str::<DicomScpConfig>("ae_title = \"A\\\\B\"").is_err());
        assert!(toml::from_str::<DicomScpConfig>("allow = [{ ae = \"A\", port = 1 }]").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        let key = |c: DicomScpConfig| c.validate().unwrap_err().0;
        let d = DicomScpConfig::default;
        assert_eq!(key(DicomScpConfig { listen: "11112".into(), ..d() }), "dicom_scp.listen");
        let open = DicomScpConfig { mode: ScpMode::Enabled, ..d() };
        assert_eq!(key(open), "dicom_scp.allowed_peers", "enabled without an allow list");
        assert_eq!(
            key(DicomScpConfig { idle_timeout_secs: 0, ..d() }),
            "dicom_scp.idle_timeout_secs"
        );
        let empty_rule = AllowRule { ae: None, ip: None };
        assert_eq!(key(DicomScpConfig { allow: vec![empty_rule], ..d() }), "dicom_scp.allow");
        let any_ip = AllowRule { ae: None, ip: Some("0.0.0.0".parse().unwrap()) };
        assert_eq!(key(DicomScpConfig { allow: vec![any_ip], ..d() }), "dicom_scp.allow");
        assert_eq!(key(DicomScpConfig { max_pdu: 100, ..d() }), "dicom_scp.max_pdu");
        assert_eq!(key(DicomScpConfig { sop_classes: vec![], ..d() }), "dicom_scp.sop_classes");
        let deflate = uids(&[IMPLICIT_VR_LE, "1.2.840.10008.1.2.1.99"]);
        assert_eq!(
            key(DicomScpConfig { transfer_syntaxes: deflate, ..d() }),
            "dicom_scp.transfer_syntaxes"
        );
        let no_implicit = uids(&[EXPLICIT_VR_LE]);
        assert_eq!(
            key(DicomScpConfig { transfer_syntaxes: no_implicit, ..d() }),
            "dicom_scp.transfer_syntaxes"
        );
        let unknown = uids(&[IMPLICIT_VR_LE, "1.2.3.4"]);
        assert_eq!(
            key(DicomScpConfig { transfer_syntaxes: unknown, ..d() }),
            "dicom_scp.transfer_syntaxes"
        );
    }

    #[test]
    fn allow_rules() {
        let ae = |s: &str| AeTitle::new(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = DicomScpConfig::default();
        assert!(c.allows(&ae("ANY"), ip("192.0.2.1")), "empty list admits anyone");
        let c = DicomScpConfig {
            allow: vec![
                AllowRule { ae: Some(ae("ENDO1")), ip: None },
                AllowRule { ae: None, ip: Some(ip("10.0.0.5")) },
                AllowRule { ae: Some(ae("ENDO2")), ip: Some(ip("10.0.0.6")) },
            ],
            ..DicomScpConfig::default()
        };
        assert!(c.allows(&ae("ENDO1"), ip("192.0.2.1")));
        assert!(c.allows(&ae("OTHER"), ip("::ffff:10.0.0.5")));
        assert!(c.allows(&ae("ENDO2"), ip("10.0.0.6")));
        assert!(!c.allows(&ae("ENDO2"), ip("10.0.0.7")));
        assert!(!c.allows(&ae("OTHER"), ip("10.0.0.6")));
        assert!(!AllowRule { ae: None, ip: None }.matches(&ae("A"), ip("10.0.0.1")));
    }

    #[test]
    fn received_object_debug_hides_instance_and_bytes() {
        let o = ReceivedObject {
            peer: "10.0.0.5".parse().unwrap(),
            calling_ae: AeTitle::new("ENDO1").unwrap(),
            sop_class_uid: Uid::new(SECONDARY_CAPTURE_IMAGE).unwrap(),
            sop_instance_uid: Uid::new("1.2.392.99999.4242").unwrap(),
            transfer_syntax: Uid::new(EXPLICIT_VR_LE).unwrap(),
            bytes: b"PATIENTNAME".to_vec(),
        };
        let d = format!("{o:?}");
        assert!(!d.contains("4242") && !d.contains("PATIENT"), "{d}");
        assert!(d.contains("ENDO1") && d.contains(SECONDARY_CAPTURE_IMAGE), "{d}");
    }
}
