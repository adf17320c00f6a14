//! The box's key store: where its private keys live and how they are used without being read.
//!
//! - [`kind`]: the settings (`key_store = "tpm" | "insecure-file"`, `tpm_tcti`).
//! - [`tpm`]: keys created inside the TPM 2.0 (tss-esapi), persisted at fixed handles
//!   ([`PersistentHandle::IDEVID`], [`PersistentHandle::OPERATIONAL_TLS`]), never exported.
//! - [`file_key`]: the development store, a 0600 PKCS#8 file; insecure, and named so.
//! - [`key`]: [`IdentityKey`], what both stores offer: a public key and signatures.
//! - [`signer`]: a rustls signing key and client configuration over an [`IdentityKey`].
//! - [`csr`]: PKCS#10 requests signed by the store (rcgen remote keys), `CN=<serial>`.
//! - [`serial`]: the box serial, derived from the device identity public key.
//! - [`store`]: the opened store of either kind, keys by [`KeyRole`].
//! - `swtpm` (feature `swtpm-harness`): a software TPM for tests.

pub mod csr;
pub mod file_key;
pub mod key;
pub mod kind;
pub mod public_key;
pub mod serial;
pub mod signer;
pub mod store;
#[cfg(feature = "swtpm-harness")]
pub mod swtpm;
pub mod tpm;

pub use csr::{csr_pem, write_csr, CsrError};
pub use file_key::{FileKey, FileKeyError};
pub use key::{IdentityKey, KeyError};
pub use kind::{KeyStoreKind, KindError, Tcti};
pub use public_key::{P256PublicKey, PublicKeyError};
pub use serial::{DeviceSerial, SerialError};
pub use signer::{
    certified_key, client_cert_resolver, client_config_with_key, BoxSigningKey, SignerError,
};
pub use store::{KeyRole, KeyStore};
pub use tpm::{PersistentHandle, TpmError, TpmKey, TpmKeyStore};
