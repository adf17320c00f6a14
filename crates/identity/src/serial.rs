//! The box's serial: a name derived from its device identity key, so that it cannot be chosen,
//! needs no counter at the factory, and is the same every time the key is read.
//!
//! `serial = "fgw-" + the first 16 hex digits (lowercase) of SHA-256(SPKI DER of the IDevID key)`.
//!
//! 64 bits of the hash: collisions among the few thousand boxes the society will ever ship
//! are negligible (birthday bound ~2^32), and the hub registers serials, so a collision would
//! be refused at `hub device add`, not silently merged. The serial names the key; it proves
//! nothing by itself: the certificate, signed by the manufacturing CA, is what binds them.

use crate::public_key::P256PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Prefix of every serial: says what the string is when seen out of context.
const PREFIX: &str = "fgw-";
/// Hex digits of the hash kept.
const HEX_DIGITS: usize = 16;

/// A box serial, `fgw-` + 16 lowercase hex digits. Validated when parsed (a hub reads it from
/// command lines and certificate subjects).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceSerial(String);

/// A string that is not a serial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// Not `fgw-` followed by 16 lowercase hex digits.
    #[error("serial: expected \"fgw-\" followed by 16 lowercase hex digits")]
    Malformed,
}

impl DeviceSerial {
    /// The serial of the box whose device identity key is `identity`.
    pub fn of(identity: &P256PublicKey) -> DeviceSerial {
        let digest = ring::digest::digest(&ring::digest::SHA256, &identity.spki_der());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        DeviceSerial(format!("{PREFIX}{}", &hex[..HEX_DIGITS]))
    }

    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceSerial {
    type Err = SerialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PREFIX).ok_or(SerialError::Malformed)?;
        let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if hex.len() == HEX_DIGITS && hex.chars().all(lower_hex) {
            Ok(DeviceSerial(s.to_string()))
        } else {
            Err(SerialError::Malformed)
        }
    }
}

impl TryFrom<String> for DeviceSerial {
    type Error = SerialError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSerial> for String {
    fn from(s: DeviceSerial) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_the_hash_of_the_spki_and_parses_back() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public = P256PublicKey::from_uncompressed(key.public_key_raw()).unwrap();
        let serial = DeviceSerial::of(&public);
        let digest = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
        let expected: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(serial.as_str(), format!("fgw-{expected}"));
        assert_eq!(serial.as_str().parse::<DeviceSerial>().unwrap(), serial);
        // Stable: the same key gives the same serial.
        assert_eq!(DeviceSerial::of(&public), serial);
    }

    #[test]
    fn malformed_serials_are_refused() {
        for bad in [
            "",
            "fgw-",
            "fgw-0123456789abcde",
            "fgw-0123456789abcdef0",
            "fgw-0123456789ABCDEF",
            "FGW-0123456789abcdef",
            "fgw-0123456789abcdeg",
            "box-0123456789abcdef",
        ] {
            assert_eq!(bad.parse::<DeviceSerial>(), Err(SerialError::Malformed), "{bad}");
        }
        assert!("fgw-0123456789abcdef".parse::<DeviceSerial>().is_ok());
    }
}
