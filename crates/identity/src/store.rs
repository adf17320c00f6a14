//! The configured key store, opened once: the box's keys by role, whichever store holds them,
//! so that `gateway identity init` and the uplink need not know which one it is.

use crate::file_key::FileKey;
use crate::key::{IdentityKey, KeyError};
use crate::kind::KeyStoreKind;
use crate::tpm::{PersistentHandle, TpmKey, TpmKeyStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// The device identity key (IDevID), made once at imaging; names the box's serial.
    DeviceIdentity,
    /// The operational TLS key, certified by the short-lived operational certificates.
    OperationalTls,
}

impl KeyRole {
    /// Its TPM persistent handle.
    pub fn tpm_handle(self) -> PersistentHandle {
        match self {
            KeyRole::DeviceIdentity => PersistentHandle::IDEVID,
            KeyRole::OperationalTls => PersistentHandle::OPERATIONAL_TLS,
        }
    }

    /// Its file name in the insecure-file store's directory. The names say what the files
    /// are, so nobody mistakes them for public material.
    pub fn file_name(self) -> &'static str {
        match self {
            KeyRole::DeviceIdentity => "idevid.insecure-key.pem",
            KeyRole::OperationalTls => "operational.insecure-key.pem",
        }
    }
}

/// An opened key store.
#[derive(Debug, Clone)]
pub enum KeyStore {
    /// Keys in the TPM.
    Tpm(Arc<TpmKeyStore>),
    /// Keys in 0600 files in this directory (development only).
    InsecureFile(PathBuf),
}

impl KeyStore {
    /// The insecure-file store in `dir` (which must exist).
    pub fn insecure_file(dir: &Path) -> KeyStore {
        KeyStore::InsecureFile(dir.to_path_buf())
    }

    /// Which store this is (what `gateway identity show` reports).
    pub fn kind(&self) -> KeyStoreKind {
        match self {
            KeyStore::Tpm(_) => KeyStoreKind::Tpm,
            KeyStore::InsecureFile(_) => KeyStoreKind::InsecureFile,
        }
    }

    /// The key for `role`, created first if the store has none.
    pub fn ensure(&self, role: KeyRole) -> Result<Arc<dyn IdentityKey>, KeyError> {
        Ok(match self {
            KeyStore::Tpm(store) => Arc::new(TpmKey::ensure(store.clone(), role.tpm_handle())?),
            KeyStore::InsecureFile(dir) => {
                Arc::new(FileKey::load_or_create(&dir.join(role.file_name()))?)
            }
        })
    }

    /// The existing key for `role`; an error if the store has none (for the TPM:
    /// [`crate::TpmError::NotProvisioned`]).
    pub fn open(&self, role: KeyRole) -> Result<Arc<dyn IdentityKey>, KeyError> {
        Ok(match self {
            KeyStore::Tpm(store) => Arc::new(TpmKey::open(store.clone(), role.tpm_handle())?),
            KeyStore::InsecureFile(dir) => Arc::new(FileKey::load(&dir.join(role.file_name()))?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_keeps_one_key_per_role() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::insecure_file(dir.path());
        assert_eq!(store.kind(), KeyStoreKind::InsecureFile);
        assert!(store.open(KeyRole::DeviceIdentity).is_err(), "nothing before ensure");
        let idevid = store.ensure(KeyRole::DeviceIdentity).unwrap();
        let tls = store.ensure(KeyRole::OperationalTls).unwrap();
        assert_ne!(idevid.public_key(), tls.public_key());
        assert_eq!(store.open(KeyRole::DeviceIdentity).unwrap().public_key(), idevid.public_key());
        assert!(dir.path().join("idevid.insecure-key.pem").exists());
    }
}
