//! WireGuard keys: Curve25519 (X25519) pairs, written as base64 of 32 bytes (44 characters)
//! as `wg(8)` prints them. The private key has no `Debug` or `Display` of its bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use boringtun::x25519::{PublicKey, StaticSecret};
use std::fmt;

/// A key that is not base64 of 32 bytes. Carries no key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a WireGuard key: expected base64 of 32 bytes (44 characters)")]
pub struct KeyError;

/// A WireGuard public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WgPublicKey([u8; 32]);

impl WgPublicKey {
    /// Parses base64 of 32 bytes.
    pub fn parse(s: &str) -> Result<WgPublicKey, KeyError> {
        decode32(s).map(WgPublicKey)
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPublicKey({self})")
    }
}

/// A WireGuard private key. Made from 32 secret bytes (the box derives them from its sealed
/// root secret; the hub reads them from a 0600 file); clamped by X25519 itself.
#[derive(Clone)]
pub struct WgPrivateKey([u8; 32]);

impl WgPrivateKey {
    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> WgPrivateKey {
        WgPrivateKey(bytes)
    }

    /// Parses base64 of 32 bytes (the form of `wg genkey`).
    pub fn parse(s: &str) -> Result<WgPrivateKey, KeyError> {
        decode32(s.trim()).map(WgPrivateKey)
    }

    /// Its public key.
    pub fn public_key(&self) -> WgPublicKey {
        WgPublicKey(PublicKey::from(&StaticSecret::from(self.0)).to_bytes())
    }

    /// base64, for `wg set ... private-key` on its standard input only.
    pub(crate) fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for WgPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPrivateKey(public {})", self.public_key())
    }
}

fn decode32(s: &str) -> Result<[u8; 32], KeyError> {
    if s.len() != 44 {
        return Err(KeyError);
    }
    let bytes = STANDARD.decode(s).map_err(|_| KeyError)?;
    bytes.try_into().map_err(|_| KeyError)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 §6.1: Alice's private key and public key.
    #[test]
    fn public_key_is_x25519_of_the_private_key() {
        let hex = |s: &str| -> [u8; 32] {
            let v: Vec<u8> =
                (0..32).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
            v.try_into().unwrap()
        };
        let private = WgPrivateKey::from_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(private.public_key().as_bytes(), &public);
    }

    #[test]
    fn keys_parse_as_base64_of_32_bytes_and_the_private_one_never_prints() {
        let private = WgPrivateKey::from_bytes([7u8; 32]);
        let text = private.to_base64();
        assert_eq!(text.len(), 44);
        let again = WgPrivateKey::parse(&format!("{text}\n")).unwrap();
        assert_eq!(again.public_key(), private.public_key());
        assert!(!format!("{private:?}").contains(&text));
        let public = private.public_key().to_string();
        assert_eq!(WgPublicKey::parse(&public).unwrap(), private.public_key());
        for bad in [
            "",
            "abc",
            &public[..43],
            &format!("{public}A"),
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=",
        ] {
            assert_eq!(WgPublicKey::parse(bad), Err(KeyError), "{bad:?}");
        }
    }
}
