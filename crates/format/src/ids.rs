//! Validating newtypes used at trust boundaries. Each constructor checks the shape, so a value
//! of these types can be put into paths, URLs and log lines without further escaping.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A value that does not have an id's shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Wrong length or characters; only the length of the value is kept.
    #[error("{kind} must be {rule} (got {len} characters)")]
    Shape {
        /// Which id.
        kind: &'static str,
        /// Its shape, in words.
        rule: &'static str,
        /// Length of the refused value, in characters.
        len: usize,
    },
}

/// A DICOM UID's shape: 1–64 characters of digits and dots, no empty component. The one
/// definition for the SCP's `Uid` and the check of a DICOM package's record.
pub fn is_dicom_uid(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks the shape.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok(Self(s))
                } else {
                    Err(IdError::Shape { kind: $kind, rule: $rule, len: s.chars().count() })
                }
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
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
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

id_type!(
    /// A facility (hospital department) registered with the society.
    FacilityId, "facility id", "1-32 of [A-Za-z0-9_-]", |s| is_slug(s, 32));
id_type!(
    /// A gateway or operator certificate's registered name.
    DeviceId, "device id", "1-64 of [A-Za-z0-9_-]", |s| is_slug(s, 64));
id_type!(
    /// A SHA-256 digest in lowercase hex: names objects and packages.
    Sha256Hex, "sha-256", "64 lowercase hex digits", |s| is_hex(s, 64));
id_type!(
    /// A work item on the box (spool file names).
    QueueId, "queue id", "'q' + 16 lowercase hex digits", |s| s.len() == 17
    && s.starts_with('q')
    && is_hex(&s[1..], 16));

id_type!(
    /// An upload session at the hub: 32 lowercase hex digits, derived by the hub from the
    /// facility and the object (`docs/package-format.md#chunked-uploads`).
    UploadId, "upload id", "32 lowercase hex digits", |s| is_hex(s, 32));

impl UploadId {
    /// The session id of object `sha` for `facility`: the first 128 bits of
    /// SHA-256("fgw-upload\0" facility "\0" sha). Derived, not random, so a device that
    /// lost its own record of the session (or talks to another hub node) finds it again.
    pub fn derive(facility: &FacilityId, sha: &Sha256Hex) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in
            [b"fgw-upload".as_slice(), facility.as_str().as_bytes(), sha.as_str().as_bytes()]
        {
            ctx.update(part);
            ctx.update(&[0]);
        }
        Self(hex::encode(&ctx.finish().as_ref()[..16]))
    }
}

impl Sha256Hex {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes)))
    }

    /// The digest of everything `r` yields, read in 64 KiB pieces (objects may be GBs), and
    /// how many bytes that was.
    pub fn of_reader(mut r: impl std::io::Read) -> std::io::Result<(Self, u64)> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => {
                    ctx.update(&buf[..k]);
                    n += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Self(hex::encode(ctx.finish())), n))
    }
}

impl QueueId {
    /// A fresh random queue id. Queue ids name spool files: random, so no path ever
    /// carries anything from the department system.
    pub fn random() -> Self {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut b).expect("system RNG");
        Self(format!("q{}", hex::encode(b)))
    }
}

/// A package is named by the SHA-256 of its manifest bytes.
pub type PackageId = Sha256Hex;

/// A box serial: 1–64 of `[A-Za-z0-9-]`, not starting with `-` (X.520 serialNumber is a PrintableString, and the
/// serial is also the box's device id on the hub). `gateway identity init` makes them as
/// `fgw-` + 16 hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

/// A string that is not a serial (only its length is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("serial must be 1-64 of [A-Za-z0-9-], not starting with '-' (got {len} characters)")]
pub struct BadSerial {
    /// Length of the refused value, in characters.
    pub len: usize,
}

impl Serial {
    /// Checks the shape.
    pub fn new(s: impl Into<String>) -> Result<Serial, BadSerial> {
        let s = s.into();
        // Not starting with '-': a serial is also a device id (and never read as an option).
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Serial(s))
        } else {
            Err(BadSerial { len: s.chars().count() })
        }
    }

    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The box's device id on the hub (uploads, logs, upload slots): its serial.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::new(self.0.as_str()).expect("a serial's shape is a subset of a device id's")
    }
}

impl TryFrom<String> for Serial {
    type Error = BadSerial;
    fn try_from(s: String) -> Result<Serial, BadSerial> {
        Serial::new(s)
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> String {
        s.0
    }
}

impl std::str::FromStr for Serial {
    type Err = BadSerial;
    fn from_str(s: &str) -> Result<Serial, BadSerial> {
        Serial::new(s)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_streamed_digest_equals_the_whole_one() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (sha, n) = Sha256Hex::of_reader(&bytes[..]).unwrap();
        assert_eq!((sha, n), (Sha256Hex::of(&bytes), bytes.len() as u64));
    }

    #[test]
    fn rejects_path_tricks() {
        assert!(FacilityId::new("../etc").is_err());
        assert!(FacilityId::new("").is_err());
        assert!(FacilityId::new("F0001").is_ok());
        assert!(Sha256Hex::new("AB".repeat(32)).is_err());
        assert!(QueueId::new("q0123456789abcdef").is_ok());
        assert!(QueueId::new("q0123456789abcdeg").is_err());
        let f = FacilityId::new("F0001").unwrap();
        let sha = Sha256Hex::of(b"x");
        let u = UploadId::derive(&f, &sha);
        assert_eq!(u, UploadId::derive(&f, &sha));
        assert_ne!(u, UploadId::derive(&FacilityId::new("F0002").unwrap(), &sha));
        assert!(UploadId::new(u.as_str()).is_ok());
        assert!(UploadId::new("../0123456789abcdef0123456789ab").is_err());
        let q = QueueId::random();
        assert!(QueueId::new(q.as_str()).is_ok());
    }
}
