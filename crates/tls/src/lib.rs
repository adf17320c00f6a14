//! Mutual-TLS plumbing shared by the gateway uplink and the hub.
//!
//! Both sides trust exactly one root: the society CA. There is no fallback to system roots,
//! so a compromised public CA cannot impersonate the hub, and only certificates the society
//! issued can reach the hub's API. Only the `ring` provider is used (never aws-lc-rs).

use fgw_format::ids::Sha256Hex;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN we speak on both sides: HTTP/1.1 only (uploads are few and large; no need for h2).
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A certificate, key or CA file that could not be used; named by its path.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("tls: cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The file holds no certificate.
    #[error("tls: {path} contains no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key.
    #[error("tls: {path} contains no PEM private key (PKCS#8, SEC1 or PKCS#1)")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is not PEM.
    #[error("tls: {path} is not valid PEM: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM error.
        source: pem::Error,
    },
    /// rustls refused the CA certificate.
    #[error("tls: CA certificate {path} was rejected: {source}")]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA.
    #[error("tls: building the client-certificate verifier from {path}: {source}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// Why.
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls refused the certificate and key pair.
    #[error("tls: certificate {cert} / key {key} rejected: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
}

/// The one crypto provider this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install `ring` as the process-wide rustls provider. Idempotent: a second call (or a
/// provider installed elsewhere first) is not an error. The configs below do not rely on
/// it (they name the provider explicitly); it is for any library that asks for the default.
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A PEM reading error, named by the file it came from.
fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    let path = path.to_path_buf();
    match error {
        pem::Error::Io(source) => TlsError::Io { path, source },
        source => TlsError::Pem { path, source },
    }
}

/// All certificates in a PEM file, in file order (leaf first for a chain file). Sections of
/// other kinds (a key kept in the same file) are skipped.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_path_buf() },
        e => pem_error(path, e),
    })
}

/// A root store holding only the certificates in `ca`.
pub fn ca_roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|source| TlsError::BadCa { path: ca.to_path_buf(), source })?;
    }
    Ok(roots)
}

/// Client side (gateway): trusts only the society CA and presents the device certificate.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<ClientConfig, TlsError> {
    let roots = ca_roots(ca)?;
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let config_err =
        |source| TlsError::Config { cert: cert.to_path_buf(), key: key.to_path_buf(), source };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, private)
        .map_err(config_err)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Client side with certificates from `resolver` (an enrolled box's operational certificate,
/// signed for by its key store): trusts only the society CA in `ca`.
pub fn client_config_with_resolver(
    ca: &Path,
    resolver: Arc<dyn rustls::client::ResolvesClientCert>,
) -> Result<ClientConfig, TlsError> {
    let roots = ca_roots(ca)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            cert: ca.to_path_buf(),
            key: PathBuf::from("(key store)"),
            source,
        })?
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// Server side (hub): presents the server certificate and requires a client certificate
/// chained to the society CA. Chaining is necessary but not sufficient: the hub also looks
/// the fingerprint up in its device registry (unregistered → 403).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let roots = Arc::new(ca_roots(ca)?);
    // Client auth is mandatory: no `allow_unauthenticated`, so a client without a
    // certificate fails the handshake and never reaches HTTP.
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|source| TlsError::Verifier { path: ca.to_path_buf(), source })?;
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let config_err =
        |source| TlsError::Config { cert: cert.to_path_buf(), key: key.to_path_buf(), source };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private)
        .map_err(config_err)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// SHA-256 over the DER certificate: the identity the hub's device registry is keyed on.
pub fn cert_fingerprint(cert: &CertificateDer<'_>) -> Sha256Hex {
    Sha256Hex::of(cert.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent() {
        install_ring_provider();
        install_ring_provider();
    }

    #[test]
    fn missing_and_empty_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = load_certs(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem"), "{e}");
        let e = load_key(&dir.path().join("absent.key")).unwrap_err().to_string();
        assert!(e.contains("absent.key"), "{e}");
    }

    #[test]
    fn loads_a_generated_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["hub.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        // Both in one file too: each loader takes only its own kind of section.
        let both = dir.path().join("both.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(&both, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();

        let certs = load_certs(&cert_path).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref(), cert.der().as_ref());
        assert_eq!(load_key(&key_path).unwrap().secret_der(), key.serialize_der());
        assert_eq!(load_certs(&both).unwrap(), certs);
        assert_eq!(load_key(&both).unwrap().secret_der(), key.serialize_der());

        assert!(matches!(load_key(&cert_path), Err(TlsError::NoKey { .. })));
        assert!(matches!(load_certs(&key_path), Err(TlsError::NoCertificate { .. })));
        // A truncated section is an error naming the file, not an empty result.
        let truncated = dir.path().join("truncated.pem");
        let pem = cert.pem();
        std::fs::write(&truncated, &pem[..pem.len() / 2]).unwrap();
        let e = load_certs(&truncated).unwrap_err();
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
        assert!(e.to_string().contains("truncated.pem"), "{e}");
    }
}
