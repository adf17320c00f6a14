//! The public half of a box key: a NIST P-256 point, in the two encodings the rest of the
//! system needs (the uncompressed point for rcgen and ring, SubjectPublicKeyInfo DER for
//! rustls and certificates).

use std::fmt;

/// Length of an uncompressed P-256 point: `04 || x || y`.
pub const P256_POINT_LEN: usize = 65;

/// DER of `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) }` up to
/// the point itself (RFC 5480). Every P-256 SPKI starts with these 26 bytes.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A P-256 public key that was checked to be an uncompressed point of the right length.
/// (Whether it lies on the curve is checked by whoever verifies with it: ring refuses a point
/// off the curve.)
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct P256PublicKey([u8; P256_POINT_LEN]);

/// A public key that is not an uncompressed P-256 point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    /// Wrong length or not uncompressed (`04 …`).
    #[error("public key: not an uncompressed P-256 point ({len} bytes)")]
    NotUncompressedP256 {
        /// Length that was given.
        len: usize,
    },
    /// A coordinate longer than 32 bytes.
    #[error("public key: P-256 coordinate of {len} bytes")]
    Coordinate {
        /// Length that was given.
        len: usize,
    },
    /// Not a P-256 SubjectPublicKeyInfo.
    #[error("public key: not a P-256 SubjectPublicKeyInfo ({len} bytes)")]
    NotP256Spki {
        /// Length that was given.
        len: usize,
    },
}

impl P256PublicKey {
    /// From an uncompressed point `04 || x || y` (65 bytes).
    pub fn from_uncompressed(point: &[u8]) -> Result<Self, PublicKeyError> {
        let arr: [u8; P256_POINT_LEN] = point
            .try_into()
            .map_err(|_| PublicKeyError::NotUncompressedP256 { len: point.len() })?;
        if arr[0] != 0x04 {
            return Err(PublicKeyError::NotUncompressedP256 { len: point.len() });
        }
        Ok(P256PublicKey(arr))
    }

    /// From big-endian coordinates, as a TPM returns them: a coordinate may come without its
    /// leading zero bytes, so each is left-padded to 32 bytes.
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<Self, PublicKeyError> {
        let mut point = [0u8; P256_POINT_LEN];
        point[0] = 0x04;
        let (x_slot, y_slot) = point[1..].split_at_mut(32);
        for (coord, slot) in [(x, x_slot), (y, y_slot)] {
            if coord.len() > 32 {
                return Err(PublicKeyError::Coordinate { len: coord.len() });
            }
            slot[32 - coord.len()..].copy_from_slice(coord);
        }
        Ok(P256PublicKey(point))
    }

    /// From a P-256 SubjectPublicKeyInfo (DER), e.g. a certificate's or a CSR's.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, PublicKeyError> {
        let err = PublicKeyError::NotP256Spki { len: spki.len() };
        match spki.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) => P256PublicKey::from_uncompressed(point).map_err(|_| err),
            None => Err(err),
        }
    }

    /// The uncompressed point `04 || x || y`.
    pub fn uncompressed(&self) -> &[u8; P256_POINT_LEN] {
        &self.0
    }

    /// SubjectPublicKeyInfo DER (RFC 5480), as in a certificate.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + P256_POINT_LEN);
        der.extend_from_slice(&P256_SPKI_PREFIX);
        der.extend_from_slice(&self.0);
        der
    }

    /// Verify an ASN.1 DER ECDSA P-256 SHA-256 signature over `message` (ring).
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(message, der_signature)
            .is_ok()
    }
}

impl fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public, so printable; the hex of x is enough to tell keys apart in a log.
        write!(f, "P256PublicKey(x={}…)", hex_prefix(&self.0[1..9]))
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    #[test]
    fn spki_matches_what_rcgen_writes() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ours = P256PublicKey::from_uncompressed(key.public_key_raw()).unwrap();
        assert_eq!(ours.spki_der(), key.public_key_der());
        assert_eq!(P256PublicKey::from_spki_der(&key.public_key_der()).unwrap(), ours);
    }

    #[test]
    fn short_coordinates_are_left_padded() {
        let x = [0x11u8; 31];
        let y = [0x22u8; 32];
        let key = P256PublicKey::from_coordinates(&x, &y).unwrap();
        assert_eq!(key.uncompressed()[0], 0x04);
        assert_eq!(key.uncompressed()[1], 0x00);
        assert_eq!(&key.uncompressed()[2..33], &x[..]);
        assert_eq!(&key.uncompressed()[33..], &y[..]);
        assert_eq!(
            P256PublicKey::from_coordinates(&[0u8; 33], &y).unwrap_err(),
            PublicKeyError::Coordinate { len: 33 }
        );
    }

    #[test]
    fn rejects_compressed_and_wrong_lengths() {
        assert!(P256PublicKey::from_uncompressed(&[0x02; 33]).is_err());
        let mut p = [0u8; 65];
        p[0] = 0x03;
        assert!(P256PublicKey::from_uncompressed(&p).is_err());
        assert!(P256PublicKey::from_spki_der(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn verify_accepts_a_real_signature_and_refuses_a_changed_message() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = P256PublicKey::from_uncompressed(pair.public_key().as_ref()).unwrap();
        let sig = pair.sign(&rng, b"message").unwrap();
        assert!(public.verify(b"message", sig.as_ref()));
        assert!(!public.verify(b"messagE", sig.as_ref()));
    }
}
