//! The box's secret store: one 256-bit root secret from which purpose keys are derived
//! (HKDF-SHA-256, ring). Today the root lives in a 0600 file in the state directory; the
//! identity issue seals it with the TPM. Keys are never logged, serialized or uploaded.

use ring::{aead, hkdf, hmac, rand::SecureRandom};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the secret store could not be opened or created.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading or writing the root secret failed.
    #[error("secret store {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The root secret file has the wrong length.
    #[error("secret store {path}: root secret has {len} bytes, expected 32")]
    Length {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The root secret file is readable by others.
    #[error("secret store {path}: permissions {mode:o} are too open (expected 0600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// What a derived key is for. Separate keys, so one leaking does not reveal the others.
#[derive(Debug, Clone, Copy)]
enum KeyPurpose {
    /// HMAC key of the keyed pseudonyms.
    Pseudonym,
    /// AES-256-GCM key of the spool and quarantine files.
    SpoolEncryption,
}

impl KeyPurpose {
    fn info(self) -> &'static [u8] {
        match self {
            KeyPurpose::Pseudonym => b"fgw/v1/pseudonym-hmac",
            KeyPurpose::SpoolEncryption => b"fgw/v1/spool-aes256gcm",
        }
    }
}

/// The box's root secret; derives the purpose keys.
pub struct Secrets {
    root: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Secrets {
    /// Open the root secret under `dir`, creating it (random, 0600, fsynced) on first start.
    pub fn open_or_create(dir: &Path) -> Result<Secrets, SecretsError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = dir.join("root.key");
        let io = |source| SecretsError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretsError::Permissions { path, mode });
                }
                let root: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| SecretsError::Length { path: path.clone(), len: bytes.len() })?;
                Ok(Secrets { root })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut root = [0u8; 32];
                ring::rand::SystemRandom::new().fill(&mut root).expect("system RNG");
                let tmp = dir.join("root.key.tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                f.write_all(&root).map_err(io)?;
                f.sync_all().map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(io)?;
                fgw_format::durable::fsync_dir(dir).map_err(io)?;
                Ok(Secrets { root })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// For tests and benchmarks only: a fixed root secret.
    pub fn from_bytes(root: [u8; 32]) -> Secrets {
        Secrets { root }
    }

    fn derive(&self, purpose: KeyPurpose) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"facility-gateway");
        let prk = salt.extract(&self.root);
        let info = [purpose.info()];
        let okm = prk.expand(&info, Len32).expect("hkdf length");
        let mut out = [0u8; 32];
        okm.fill(&mut out).expect("hkdf fill");
        out
    }

    /// The HMAC-SHA-256 key of the keyed pseudonyms.
    pub fn pseudonym_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.derive(KeyPurpose::Pseudonym))
    }

    /// The AES-256-GCM key of the spool and quarantine files.
    pub fn spool_key(&self) -> aead::LessSafeKey {
        let k =
            aead::UnboundKey::new(&aead::AES_256_GCM, &self.derive(KeyPurpose::SpoolEncryption))
                .expect("aes key");
        aead::LessSafeKey::new(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn created_once_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let a = Secrets::open_or_create(d.path()).unwrap();
        let b = Secrets::open_or_create(d.path()).unwrap();
        assert_eq!(a.root, b.root);
        assert_ne!(a.derive(KeyPurpose::Pseudonym), a.derive(KeyPurpose::SpoolEncryption));
    }
}
