//! The TPM objects this crate makes and accepts, and their outputs turned into the encodings
//! the rest of the system reads (uncompressed points, DER signatures). No TPM I/O here.

use super::{PersistentHandle, TpmError};
use crate::public_key::P256PublicKey;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, KeyedHashScheme, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyedHashParameters, Signature, SymmetricDefinitionObject,
};

/// The owner-hierarchy storage primary the signing keys are created under: the TCG
/// provisioning guidance's ECC P-256 SRK template (restricted decryption, AES-128-CFB).
/// A primary is derived from the owner seed and its template, so the same template gives the
/// same key every time: it is created when needed and never persisted.
pub(super) fn storage_primary_template() -> Result<Public, TpmError> {
    let template = || {
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_no_da(true)
            .with_restricted(true)
            .with_decrypt(true)
            .build()?;
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    EccCurve::NistP256,
                )
                .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
    };
    template().map_err(|source| TpmError::Command {
        op: "storage primary template",
        handle: None,
        source,
    })
}

/// The box's signing keys: ECC P-256, ECDSA with SHA-256 only, generated inside the TPM
/// (`sensitiveDataOrigin`) and bound to it (`fixedTPM`, `fixedParent`: never duplicated out).
/// Empty authorization: whoever can talk to the TPM on the box may sign, as whoever can read
/// a key file could; what the TPM adds is that the key cannot be taken away.
pub(super) fn signing_key_template() -> Result<Public, TpmError> {
    let template = || {
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .build()?;
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_unrestricted_signing_key(
                    EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                    EccCurve::NistP256,
                )
                .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
    };
    template().map_err(|source| TpmError::Command {
        op: "signing key template",
        handle: None,
        source,
    })
}

/// A sealed data object (TPM 2.0 Part 1, "Sealed Data"): a keyed-hash object with no scheme
/// and no sign or decrypt use, whose only operation is `TPM2_Unseal`. `fixedTPM` and
/// `fixedParent`: it cannot be duplicated to another TPM, so the secret it holds is readable
/// only through this TPM. Not `sensitiveDataOrigin`: the secret comes from outside (created on
/// the box, or imported from a recovery kit). Empty authorization, no PCR policy: see
/// `TpmKeyStore::seal_secret`.
pub(super) fn sealed_secret_template() -> Result<Public, TpmError> {
    let template = || {
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_user_with_auth(true)
            .with_no_da(true)
            .build()?;
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
    };
    template().map_err(|source| TpmError::Command {
        op: "sealed object template",
        handle: None,
        source,
    })
}

/// Whether the object at `handle` is a sealed data object of ours (see
/// [`sealed_secret_template`]): anything else there is refused rather than unsealed.
pub(super) fn check_sealed_public(
    handle: PersistentHandle,
    public: &Public,
) -> Result<(), TpmError> {
    let wrong = |reason| TpmError::WrongObject { handle, reason };
    let Public::KeyedHash { object_attributes: a, .. } = public else {
        return Err(wrong("not a sealed data object"));
    };
    if !(a.fixed_tpm() && a.fixed_parent()) {
        return Err(wrong("sealed object is not bound to this TPM"));
    }
    if a.sign_encrypt() || a.decrypt() || a.restricted() {
        return Err(wrong("keyed-hash object is a key, not sealed data"));
    }
    Ok(())
}

/// The public key of the object at `handle`, once it is shown to be one of ours: a P-256
/// ECDSA-SHA256 signing key that was generated in this TPM and cannot leave it. Anything else
/// at the handle (an imported key, a duplicable one, an encryption key) is refused: using it
/// would give an identity that may exist outside the TPM.
pub(super) fn checked_signing_public(
    handle: PersistentHandle,
    public: &Public,
) -> Result<P256PublicKey, TpmError> {
    let wrong = |reason| TpmError::WrongObject { handle, reason };
    let Public::Ecc { object_attributes: a, parameters, unique, .. } = public else {
        return Err(wrong("not an ECC key"));
    };
    if parameters.ecc_curve() != EccCurve::NistP256 {
        return Err(wrong("not on curve P-256"));
    }
    if !(a.fixed_tpm() && a.fixed_parent() && a.sensitive_data_origin()) {
        return Err(wrong("not generated in this TPM and bound to it"));
    }
    if !a.sign_encrypt() || a.decrypt() || a.restricted() {
        return Err(wrong("not an unrestricted signing-only key"));
    }
    match parameters.ecc_scheme() {
        EccScheme::EcDsa(h) if h.hashing_algorithm() == HashingAlgorithm::Sha256 => {}
        _ => return Err(wrong("scheme is not ECDSA with SHA-256")),
    }
    P256PublicKey::from_coordinates(unique.x().value(), unique.y().value())
        .map_err(|_| wrong("public point is not a P-256 point"))
}

/// A TPM ECDSA signature as ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub(super) fn der_signature(
    handle: PersistentHandle,
    signature: &Signature,
) -> Result<Vec<u8>, TpmError> {
    let Signature::EcDsa(ecc) = signature else {
        return Err(TpmError::WrongObject { handle, reason: "TPM returned a non-ECDSA signature" });
    };
    der_ecdsa(ecc.signature_r().value(), ecc.signature_s().value()).ok_or(TpmError::WrongObject {
        handle,
        reason: "TPM returned an ECDSA signature out of range",
    })
}

/// DER of `(r, s)` given as big-endian unsigned integers of at most 32 bytes, neither zero.
fn der_ecdsa(r: &[u8], s: &[u8]) -> Option<Vec<u8>> {
    let r = der_integer(r)?;
    let s = der_integer(s)?;
    // At most 2 * (2 + 33) = 70 bytes of content: the short length form always fits.
    let mut out = Vec::with_capacity(2 + r.len() + s.len());
    out.push(0x30);
    out.push(u8::try_from(r.len() + s.len()).ok()?);
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    Some(out)
}

fn der_integer(be: &[u8]) -> Option<Vec<u8>> {
    let first = be.iter().position(|&b| b != 0)?;
    let digits = &be[first..];
    if digits.len() > 32 {
        return None;
    }
    // A leading 0x00 keeps a high first bit from reading as a negative number.
    let pad = usize::from(digits[0] & 0x80 != 0);
    let mut out = Vec::with_capacity(2 + pad + digits.len());
    out.push(0x02);
    out.push(u8::try_from(pad + digits.len()).ok()?);
    if pad == 1 {
        out.push(0x00);
    }
    out.extend_from_slice(digits);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0x00, 0x00, 0x01]).unwrap(), vec![0x02, 0x01, 0x01]);
        assert_eq!(der_integer(&[0x80]).unwrap(), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_integer(&[0x7f, 0xff]).unwrap(), vec![0x02, 0x02, 0x7f, 0xff]);
        assert!(der_integer(&[0x00, 0x00]).is_none());
        assert!(der_integer(&[]).is_none());
        assert!(der_integer(&[0x01; 33]).is_none());
        // 32 bytes with leading zeros beyond 32 are fine once stripped.
        let mut long = vec![0u8; 2];
        long.extend_from_slice(&[0xff; 32]);
        assert_eq!(der_integer(&long).unwrap().len(), 2 + 33);
    }

    /// A ring signature re-encoded from its raw (r, s) verifies: the DER matches ring's parser.
    #[test]
    fn der_signature_round_trips_through_ring() {
        use ring::rand::SystemRandom;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = P256PublicKey::from_uncompressed(pair.public_key().as_ref()).unwrap();
        // Enough signatures that some r or s have a high bit or a leading zero byte.
        for i in 0..64u8 {
            let msg = [i; 8];
            let fixed = pair.sign(&rng, &msg).unwrap();
            let (r, s) = fixed.as_ref().split_at(32);
            let der = der_ecdsa(r, s).unwrap();
            assert!(public.verify(&msg, &der), "signature {i}");
        }
    }
}
