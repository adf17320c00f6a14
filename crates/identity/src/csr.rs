//! PKCS#10 certificate signing requests for a box key, made with rcgen's remote-key support:
//! rcgen builds the request and asks the key store to sign it, so a TPM key is certified
//! without ever leaving the TPM. The subject is `CN=<box serial>`, and nothing else: the
//! manufacturing CA (IDevID) and the hub (operational certificates) decide the rest.

use crate::key::{IdentityKey, KeyError};
use crate::serial::DeviceSerial;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, RemoteKeyPair, SignatureAlgorithm,
};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A request that could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The key store could not sign the request.
    #[error("csr: the key store could not sign: {source}")]
    Sign {
        /// The store's error.
        source: KeyError,
    },
    /// rcgen could not build or encode the request.
    #[error("csr: building the request: {source}")]
    Build {
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// The PEM file could not be written.
    #[error("csr: cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A box key as rcgen sees a remote key: public point, algorithm and a signing call. A
/// signing failure is kept aside, since rcgen only reports that the remote key failed.
struct RemoteBoxKey {
    key: Arc<dyn IdentityKey>,
    failure: Arc<Mutex<Option<KeyError>>>,
}

impl RemoteKeyPair for RemoteBoxKey {
    fn public_key(&self) -> &[u8] {
        self.key.public_key().uncompressed()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign(msg).map_err(|e| {
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A PEM CSR for `key` with subject `CN=<serial>`.
pub fn csr_pem(key: Arc<dyn IdentityKey>, serial: &DeviceSerial) -> Result<String, CsrError> {
    let failure = Arc::new(Mutex::new(None));
    let remote = RemoteBoxKey { key, failure: failure.clone() };
    let key_pair =
        KeyPair::from_remote(Box::new(remote)).map_err(|source| CsrError::Build { source })?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, serial.as_str());
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    let request = params.serialize_request(&key_pair).map_err(|source| {
        match failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(source) => CsrError::Sign { source },
            None => CsrError::Build { source },
        }
    })?;
    request.pem().map_err(|source| CsrError::Build { source })
}

/// Write a CSR (public data) to `path`: a temporary sibling, then renamed, so a reader never
/// sees half a request.
pub fn write_csr(path: &Path, pem: &str) -> Result<(), CsrError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CsrError::Io { path: p, source }
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(pem.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_key::FileKey;

    #[test]
    fn csr_of_a_file_key_names_the_serial_and_carries_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key: Arc<dyn IdentityKey> =
            Arc::new(FileKey::load_or_create(&dir.path().join("k.pem")).unwrap());
        let serial = key.serial();
        let pem = csr_pem(key.clone(), &serial).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{pem}");
        // from_pem verifies the request's signature.
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(parsed.public_key.der_bytes(), key.public_key().uncompressed());
        let cn = parsed.params.distinguished_name.get(&DnType::CommonName).unwrap();
        assert_eq!(cn, &rcgen::DnValue::Utf8String(serial.to_string()));
        let out = dir.path().join("box.csr");
        write_csr(&out, &pem).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), pem);
    }
}
