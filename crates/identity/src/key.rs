//! What every box key can do, whichever store holds it: tell its public key and sign.
//! rustls ([`crate::signer`]) and rcgen ([`crate::csr`]) see keys only through this trait.

use crate::file_key::FileKeyError;
use crate::kind::KeyStoreKind;
use crate::public_key::P256PublicKey;
use crate::serial::DeviceSerial;
use crate::tpm::TpmError;
use std::fmt;

/// A P-256 signing key held by a key store. The private half is not reachable through it.
pub trait IdentityKey: fmt::Debug + Send + Sync {
    /// Which store holds the private key.
    fn store(&self) -> KeyStoreKind;

    /// The public key.
    fn public_key(&self) -> &P256PublicKey;

    /// ECDSA P-256 with SHA-256 over `message`; the signature in ASN.1 DER (as TLS, X.509 and
    /// PKCS#10 carry it). The message is hashed here, in the box; only the digest goes to the
    /// store when the store is a TPM.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;

    /// The serial this key names when it is the device identity key.
    fn serial(&self) -> DeviceSerial {
        DeviceSerial::of(self.public_key())
    }
}

/// A signature the store could not make.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The TPM refused or could not be reached.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The file key failed (ring).
    #[error(transparent)]
    File(#[from] FileKeyError),
}
