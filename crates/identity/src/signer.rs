//! rustls signing with a box key: TLS client authentication where the private key stays in
//! its store (for the TPM: rustls hands over the handshake transcript to sign, it is hashed
//! here with SHA-256 and only the digest goes to the TPM).
//!
//! Only `ECDSA_NISTP256_SHA256` is offered: it is the one scheme a P-256 key with SHA-256
//! makes, and TLS 1.3 and 1.2 peers built on rustls, OpenSSL or Go all accept it.

use crate::key::IdentityKey;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{ClientConfig, SignatureAlgorithm, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN the uplink speaks (as `fgw_tls::client_config`): HTTP/1.1 only.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A client configuration that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The CA file could not be used.
    #[error(transparent)]
    Ca(#[from] fgw_tls::TlsError),
    /// The certificate chain is empty.
    #[error("identity: empty certificate chain for the client key")]
    EmptyChain,
    /// The certificate does not certify this key (or cannot be parsed).
    #[error("identity: the client certificate does not match the key: {source}")]
    KeyMismatch {
        /// rustls' finding.
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("identity: client TLS configuration with CA {ca}: {source}")]
    Config {
        /// The CA file.
        ca: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// A box key as a rustls [`SigningKey`].
#[derive(Debug, Clone)]
pub struct BoxSigningKey {
    key: Arc<dyn IdentityKey>,
}

impl BoxSigningKey {
    /// Wrap a key of either store.
    pub fn new(key: Arc<dyn IdentityKey>) -> BoxSigningKey {
        BoxSigningKey { key }
    }
}

impl SigningKey for BoxSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(BoxSigner { key: self.key.clone() }) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.key.public_key().spki_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// One handshake's signer.
#[derive(Debug)]
struct BoxSigner {
    key: Arc<dyn IdentityKey>,
}

impl Signer for BoxSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        // rustls logs and aborts the handshake on this error; the text names the store and
        // handle, never what was signed.
        self.key.sign(message).map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The certified key rustls presents: `cert_chain` (leaf first) for `key`, checked to match.
pub fn certified_key(
    cert_chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn IdentityKey>,
) -> Result<CertifiedKey, SignerError> {
    if cert_chain.is_empty() {
        return Err(SignerError::EmptyChain);
    }
    let certified = CertifiedKey::new(cert_chain, Arc::new(BoxSigningKey::new(key)));
    certified.keys_match().map_err(|source| SignerError::KeyMismatch { source })?;
    Ok(certified)
}

/// A client-certificate resolver that always presents `cert_chain` with `key`.
pub fn client_cert_resolver(
    cert_chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn IdentityKey>,
) -> Result<Arc<dyn ResolvesClientCert>, SignerError> {
    Ok(Arc::new(SingleCertAndKey::from(certified_key(cert_chain, key)?)))
}

/// The uplink's client configuration with a box key: trusts only the CA in `ca_pem` (as
/// `fgw_tls::client_config`, the ring provider, HTTP/1.1 ALPN) and authenticates with
/// `cert_chain` and `key`, whose private half is never in this process when the key is a
/// TPM key.
pub fn client_config_with_key(
    ca_pem: &Path,
    cert_chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn IdentityKey>,
) -> Result<ClientConfig, SignerError> {
    let roots = fgw_tls::ca_roots(ca_pem)?;
    let resolver = client_cert_resolver(cert_chain, key)?;
    let mut config = ClientConfig::builder_with_provider(fgw_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| SignerError::Config { ca: ca_pem.to_path_buf(), source })?
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}
