//! Mutual-TLS plumbing shared by the gateway uplink and the hub.
//!
//! Both sides trust exactly one root: the society CA. There is no fallback to system roots,
//! so a compromised public CA cannot impersonate the hub, and only certificates the society
//! issued can reach the hub's API. Only the `ring` provider is used (never aws-lc-rs).

use crate::ids::Sha256Hex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN we speak on both sides: HTTP/1.1 only (uploads are few and large; no need for h2).
const ALPN_HTTP1: &[u8] = b"http/1.1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tls: {path} contains no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("tls: {path} contains no PEM private key (PKCS#8, SEC1 or PKCS#1)")]
    NoKey { path: PathBuf },
    #[error("tls: CA certificate {path} was rejected: {source}")]
    BadCa { path: PathBuf, source: rustls::Error },
    #[error("tls: building the client-certificate verifier from {path}: {source}")]
    Verifier { path: PathBuf, source: rustls::server::VerifierBuilderError },
    #[error("tls: certificate {cert} / key {key} rejected: {source}")]
    Config { cert: PathBuf, key: PathBuf, source: rustls::Error },
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

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

/// All certificates in a PEM file, in file order (leaf first for a chain file).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Io { path: path.to_path_buf(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Io { path: path.to_path_buf(), source })?
        .ok_or_else(|| TlsError::NoKey { path: path.to_path_buf() })
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
}
