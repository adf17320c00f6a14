//! The repository's signing keys: one Ed25519 key file (PKCS#8 DER, mode 0600) per role.
//!
//! Root and targets keys belong offline (the society's release machine or an HSM); snapshot
//! and timestamp keys are online on the hub, which re-signs those two roles on its own
//! (`provisioning/release-keys.md`). A role may have several root keys: the root role's
//! threshold says how many must sign.

use std::path::{Path, PathBuf};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::key::Key;
use tough::sign::Sign;

/// A key file could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("release key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 or ECDSA P-256 PKCS#8 key.
    #[error("release key {path}: not a PKCS#8 Ed25519 or P-256 key")]
    Unrecognized {
        /// The key file.
        path: PathBuf,
    },
    /// The random source failed.
    #[error("release key {path}: key generation failed")]
    Generate {
        /// The key file.
        path: PathBuf,
    },
}

/// The key files of the four roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Root keys (offline). The root threshold counts these.
    pub root: Vec<PathBuf>,
    /// Targets keys (offline: they sign what boxes install). The targets threshold counts
    /// these.
    pub targets: Vec<PathBuf>,
    /// The snapshot key (online on the hub).
    pub snapshot: PathBuf,
    /// The timestamp key (online on the hub).
    pub timestamp: PathBuf,
}

impl KeySet {
    /// One key per role in `dir`: `root.pk8`, `targets.pk8`, `snapshot.pk8`, `timestamp.pk8`.
    pub fn in_dir(dir: &Path) -> KeySet {
        KeySet {
            root: vec![dir.join("root.pk8")],
            targets: vec![dir.join("targets.pk8")],
            snapshot: dir.join("snapshot.pk8"),
            timestamp: dir.join("timestamp.pk8"),
        }
    }

    /// Makes every key file that does not exist yet.
    pub fn generate_missing(&self) -> Result<(), KeyError> {
        let all = self.root.iter().chain(&self.targets).chain([&self.snapshot, &self.timestamp]);
        for path in all {
            if !path.exists() {
                generate(path)?;
            }
        }
        Ok(())
    }
}

/// Writes a new Ed25519 key to `path` (which must not exist), mode 0600.
pub fn generate(path: &Path) -> Result<(), KeyError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| KeyError::Generate { path: path.to_path_buf() })?;
    fgw_format::durable::create_private(path, pkcs8.as_ref())
        .map_err(|source| KeyError::Io { path: path.to_path_buf(), source })
}

/// The public half of the key in `path`, as TUF metadata lists it.
pub fn public_key(path: &Path) -> Result<Key, KeyError> {
    let bytes =
        std::fs::read(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
    let pair = tough::sign::parse_keypair(&bytes)
        .map_err(|_| KeyError::Unrecognized { path: path.to_path_buf() })?;
    Ok(pair.tuf_key())
}

/// `path` as a signing source for tough.
pub(crate) fn source(path: &Path) -> Box<dyn KeySource> {
    Box::new(LocalKeySource { path: path.to_path_buf() })
}
