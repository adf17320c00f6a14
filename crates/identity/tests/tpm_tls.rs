//! A real mutual-TLS handshake in-process where the client's private key is in a software
//! TPM: the server (rustls, client auth required, test CA made by rcgen) accepts the client
//! only if the TPM signed the handshake with the key its certificate names.

mod common;

use common::tpm;
use fgw_identity::{
    client_config_with_key, csr_pem, FileKey, IdentityKey, PersistentHandle, SignerError, TpmKey,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The society CA of the test, and a server certificate for "hub.test" it signed.
struct TestPki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    dir: tempfile::TempDir,
}

impl TestPki {
    fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "test society CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["hub.test".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("hub.crt"), server.pem()).unwrap();
        std::fs::write(dir.path().join("hub.key"), server_key.serialize_pem()).unwrap();
        TestPki { ca, ca_key, dir }
    }

    fn ca_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The CA signs a CSR made by the box key: the certificate the box will present.
    fn certify(&self, key: &Arc<dyn IdentityKey>) -> CertificateDer<'static> {
        let pem = csr_pem(key.clone(), &key.serial()).unwrap();
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        csr.signed_by(&self.ca, &self.ca_key).unwrap().der().clone()
    }

    /// The hub's server configuration (fgw-tls), client certificates required, restricted to
    /// `versions`.
    fn server_config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> rustls::ServerConfig {
        let d = self.dir.path();
        let base =
            fgw_tls::server_config(&d.join("ca.crt"), &d.join("hub.crt"), &d.join("hub.key"))
                .unwrap();
        let roots = Arc::new(fgw_tls::ca_roots(&d.join("ca.crt")).unwrap());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, fgw_tls::provider())
                .build()
                .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(fgw_tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(base.cert_resolver.clone());
        config.alpn_protocols = base.alpn_protocols.clone();
        config
    }
}

/// One connection: the client says ping, the server answers pong and reports the client
/// certificate it verified.
async fn handshake(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
) -> Result<CertificateDer<'static>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| format!("server: {e}"))?;
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await.map_err(|e| format!("server read: {e}"))?;
        assert_eq!(&ping, b"ping");
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.unwrap();
        let (_, conn) = tls.get_ref();
        Ok::<_, String>(conn.peer_certificates().unwrap()[0].clone().into_owned())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client_side = async {
        let mut tls = connector
            .connect(ServerName::try_from("hub.test").unwrap(), tcp)
            .await
            .map_err(|e| format!("client: {e}"))?;
        tls.write_all(b"ping").await.map_err(|e| format!("client write: {e}"))?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await.map_err(|e| format!("client read: {e}"))?;
        assert_eq!(&pong, b"pong");
        Ok::<_, String>(())
    };
    let client_result = client_side.await;
    let server_result = server_task.await.unwrap();
    client_result?;
    server_result
}

fn client(
    ca: &Path,
    cert: CertificateDer<'static>,
    key: Arc<dyn IdentityKey>,
) -> rustls::ClientConfig {
    client_config_with_key(ca, vec![cert], key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_where_the_tpm_signs_the_client_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let key: Arc<dyn IdentityKey> =
        Arc::new(TpmKey::ensure(store, PersistentHandle::OPERATIONAL_TLS).unwrap());
    let pki = TestPki::new();
    let cert = pki.certify(&key);

    // TLS 1.3 and TLS 1.2: the client signs the transcript (1.3) or the handshake messages
    // (1.2) with the TPM either way.
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let seen = handshake(
            pki.server_config(versions),
            client(&pki.ca_path(), cert.clone(), key.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{versions:?}: {e}"));
        assert_eq!(seen, cert, "the server verified the TPM key's certificate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_key_is_refused_before_and_during_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (_swtpm, store) = tpm(dir.path(), "tpm");
    let tpm_key: Arc<dyn IdentityKey> =
        Arc::new(TpmKey::ensure(store, PersistentHandle::OPERATIONAL_TLS).unwrap());
    let other: Arc<dyn IdentityKey> =
        Arc::new(FileKey::load_or_create(&dir.path().join("other.key")).unwrap());
    let pki = TestPki::new();
    let other_cert = pki.certify(&other);

    // The helper checks that the certificate names the key.
    let e = client_config_with_key(&pki.ca_path(), vec![other_cert.clone()], tpm_key.clone())
        .unwrap_err();
    assert!(matches!(e, SignerError::KeyMismatch { .. }), "{e}");

    // Bypassing that check, the server refuses the handshake: the TPM's signature does not
    // verify under the certificate's key. (So the success above means the TPM signed.)
    let mismatched = rustls::sign::CertifiedKey::new(
        vec![other_cert],
        Arc::new(fgw_identity::BoxSigningKey::new(tpm_key)),
    );
    let mut config = client(&pki.ca_path(), pki.certify(&other), other.clone());
    config.client_auth_cert_resolver = Arc::new(rustls::sign::SingleCertAndKey::from(mismatched));
    let result = handshake(pki.server_config(&[&TLS13]), config).await;
    assert!(result.is_err(), "a handshake signed by the wrong key must fail");

    // And the file key with its own certificate works (both stores go through one path).
    let other_cert = pki.certify(&other);
    let seen =
        handshake(pki.server_config(&[&TLS13]), client(&pki.ca_path(), other_cert.clone(), other))
            .await
            .unwrap();
    assert_eq!(seen, other_cert);
}
