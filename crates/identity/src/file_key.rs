//! The development key store (`key_store = "insecure-file"`): a P-256 PKCS#8 key in a PEM file
//! of mode 0600, used through ring.
//!
//! Insecure by design: anyone who copies the disk copies the identity, which is exactly what
//! the TPM store prevents. It exists so that a developer's laptop and CI without swtpm can
//! run the gateway; a box is configured with `"tpm"`.

use crate::key::{IdentityKey, KeyError};
use crate::kind::KeyStoreKind;
use crate::public_key::P256PublicKey;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the key file: owner read/write, nobody else.
const KEY_FILE_MODE: u32 = 0o600;

/// A file key that could not be created, read or used; named by its path.
#[derive(Debug, thiserror::Error)]
pub enum FileKeyError {
    /// Reading or writing the file failed.
    #[error("insecure-file key {path}: {source}")]
    Io {
        /// The key file (or its temporary sibling).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Group or others may read or write the file: refused rather than used.
    #[error("insecure-file key {path}: mode {mode:o} lets others in; expected 600")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no PKCS#8 PEM key.
    #[error("insecure-file key {path}: no PKCS#8 \"PRIVATE KEY\" PEM section")]
    NotPkcs8 {
        /// The key file.
        path: PathBuf,
    },
    /// ring refused the key (not P-256, or malformed).
    #[error("insecure-file key {path}: not a P-256 ECDSA key: {reason}")]
    Rejected {
        /// The key file.
        path: PathBuf,
        /// ring's reason.
        reason: String,
    },
    /// Generating a new key failed.
    #[error("insecure-file key {path}: generating a key failed: {reason}")]
    Generate {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// ring could not sign.
    #[error("insecure-file key {path}: signing failed")]
    Sign {
        /// The key file.
        path: PathBuf,
    },
}

/// A P-256 key read from a 0600 PKCS#8 PEM file.
pub struct FileKey {
    path: PathBuf,
    pair: EcdsaKeyPair,
    public: P256PublicKey,
    rng: SystemRandom,
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key: path and public key only.
        f.debug_struct("FileKey").field("path", &self.path).field("public", &self.public).finish()
    }
}

impl FileKey {
    /// Read the key at `path`, or create it (mode 0600) if there is no file there. The parent
    /// directory must exist.
    pub fn load_or_create(path: &Path) -> Result<FileKey, FileKeyError> {
        match fs::symlink_metadata(path) {
            Ok(_) => FileKey::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path)?;
                FileKey::load(path)
            }
            Err(source) => Err(FileKeyError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Read the key at `path`; refuse a file that group or others can open.
    pub fn load(path: &Path) -> Result<FileKey, FileKeyError> {
        let io = |source| FileKeyError::Io { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(FileKeyError::Permissions { path: path.to_path_buf(), mode });
        }
        let mut pem = Vec::new();
        file.read_to_end(&mut pem).map_err(io)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|_| FileKeyError::NotPkcs8 { path: path.to_path_buf() })?;
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_pkcs8_der(), &rng)
                .map_err(|e| FileKeyError::Rejected {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
        let public = P256PublicKey::from_uncompressed(pair.public_key().as_ref()).map_err(|e| {
            FileKeyError::Rejected { path: path.to_path_buf(), reason: e.to_string() }
        })?;
        Ok(FileKey { path: path.to_path_buf(), pair, public, rng })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl IdentityKey for FileKey {
    fn store(&self) -> KeyStoreKind {
        KeyStoreKind::InsecureFile
    }

    fn public_key(&self) -> &P256PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| FileKeyError::Sign { path: self.path.clone() })?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Write a new key: to a 0600 temporary sibling first, then renamed, so a crash leaves either
/// no key or a whole one.
fn create(path: &Path) -> Result<(), FileKeyError> {
    let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| FileKeyError::Generate { path: path.to_path_buf(), reason: e.to_string() })?;
    let pem = generated.serialize_pem();
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| FileKeyError::Io { path: p, source }
    };
    // A leftover from a crash may have any mode; `mode()` applies only to a new file.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(pem.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_mode_600_and_read_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let first = FileKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = FileKey::load_or_create(&path).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(first.store(), KeyStoreKind::InsecureFile);
        let sig = again.sign(b"hello").unwrap();
        assert!(first.public_key().verify(b"hello", &sig));
        assert!(!format!("{first:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        FileKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileKey::load(&path).unwrap_err();
        assert!(matches!(e, FileKeyError::Permissions { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("identity.key"), "{e}");
    }

    #[test]
    fn refuses_a_file_without_a_pkcs8_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let mut f =
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
        f.write_all(b"not a key\n").unwrap();
        let e = FileKey::load(&path).unwrap_err();
        assert!(matches!(e, FileKeyError::NotPkcs8 { .. }), "{e}");
    }

    #[test]
    fn a_leftover_temporary_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        fs::write(dir.path().join("identity.key.tmp"), "partial").unwrap();
        fs::set_permissions(dir.path().join("identity.key.tmp"), fs::Permissions::from_mode(0o666))
            .unwrap();
        let key = FileKey::load_or_create(&path).unwrap();
        assert!(key.public_key().verify(b"x", &key.sign(b"x").unwrap()));
        assert!(!dir.path().join("identity.key.tmp").exists());
    }
}
