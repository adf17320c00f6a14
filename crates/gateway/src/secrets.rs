//! The box's secret store: one 256-bit root secret from which purpose keys are derived
//! (HKDF-SHA-256, ring). Keys are never logged, serialized or uploaded. Where the root lives
//! follows `[identity] key_store` ([`RootLocation`]):
//! - `"tpm"`: sealed in the box's TPM at [`PersistentHandle::ROOT_SECRET`], readable only
//!   through that TPM; a copy of the disk holds nothing of it. A root file left from a box
//!   that kept it in a file is sealed into the TPM at the next start, then deleted.
//! - `"insecure-file"` or no `[identity]` (development): a 0600 file, `secrets/root.key`.
//!
//! The root is created only on a fresh box. Pseudonyms, date shifts, the spool's encryption
//! and the outbox seals all derive from it: if it is missing while the state directory holds
//! data made with it, a new one would silently break linkage at the hub and strand the spool,
//! so opening refuses instead ([`SecretsError::RootMissing`]).

use crate::config::GatewayConfig;
use crate::state::Db;
use fgw_identity::{KeyStoreKind, PersistentHandle, Tcti, TpmError, TpmKeyStore};
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
    /// The root secret is missing, but the state directory holds data made with it.
    #[error(
        "secret store {path}: the root secret is missing, but the state directory still holds \
         data made with it ({evidence}). A new secret would change every pseudonym and date \
         shift (the hub could no longer link this box's exams) and leave the spool and \
         quarantine undecryptable, so the gateway does not create one. Restore {path} from \
         its backup (owner-only, mode 0600). To start over on purpose, move {state_dir} \
         aside first."
    )]
    RootMissing {
        /// The root secret file.
        path: PathBuf,
        /// What was found (a path and what it holds; no values).
        evidence: String,
        /// The state directory.
        state_dir: PathBuf,
    },
    /// The state database could not be checked for existing data.
    #[error("secret store: checking the state directory: {0}")]
    State(#[from] crate::state::StateError),
    /// The box already has a root secret, and it is not the one being installed.
    #[error(
        "secret store {at}: this box already has a different root secret; it was left as \
         it is. Importing a recovery kit is for a replacement box (or one whose root secret \
         is lost): move the state directory aside first if this box is to take over the kit's \
         facility keys"
    )]
    RootDiffers {
        /// Where the existing root secret is.
        at: RootLocation,
    },
    /// The root secret is not sealed in this TPM, but the state directory holds data made
    /// with it.
    #[error(
        "secret store: no root secret is sealed in the TPM at {handle}, but the state \
         directory still holds data made with one ({evidence}). This is another TPM than the \
         one the data was made with (a disk moved into another box, or a replaced board). A \
         new secret would change every pseudonym and date shift and leave the spool \
         undecryptable, so the gateway does not create one. Import the facility's recovery kit \
         (gateway secrets import-recovery), or move {state_dir} aside to start over on purpose."
    )]
    TpmRootMissing {
        /// The handle the root is sealed at.
        handle: PersistentHandle,
        /// What was found (a path and what it holds; no values).
        evidence: String,
        /// The state directory.
        state_dir: PathBuf,
    },
    /// The TPM holds a sealed object at the root's handle that is not 32 bytes.
    #[error("secret store: the sealed root at {handle} has {len} bytes, expected 32")]
    SealedLength {
        /// The handle.
        handle: PersistentHandle,
        /// Its length.
        len: usize,
    },
    /// `key_store = "tpm"` without `tpm_tcti`.
    #[error("secret store: [identity] key_store = \"tpm\" needs identity.tpm_tcti")]
    NoTcti,
    /// The TPM failed.
    #[error("secret store: {0}")]
    Tpm(#[from] TpmError),
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
    /// HMAC key sealing the outbox's manifests (only sealed packages go out).
    OutboxSeal,
    /// HMAC key of the labels naming export batch folders in state and logs.
    BatchLabel,
    /// The box's WireGuard private key (with its serial: two boxes restored from one
    /// recovery kit still have two keys).
    Wireguard,
    /// HMAC key of the recovery kit's check value (`crate::recovery`): a share sheet shows
    /// a value of this key only, never one of the keys above.
    RecoveryCheck,
}

impl KeyPurpose {
    fn info(self) -> &'static [u8] {
        match self {
            KeyPurpose::Pseudonym => b"fgw/v1/pseudonym-hmac",
            KeyPurpose::SpoolEncryption => b"fgw/v1/spool-aes256gcm",
            KeyPurpose::OutboxSeal => b"fgw/v1/outbox-seal-hmac",
            KeyPurpose::BatchLabel => b"fgw/v1/batch-label-hmac",
            KeyPurpose::RecoveryCheck => b"fgw/v1/recovery-check-hmac",
            KeyPurpose::Wireguard => b"fgw/v1/wireguard-x25519",
        }
    }
}

/// What the state directory holds besides the secret store, checked before a missing root
/// secret may be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingState {
    /// Nothing made with a root secret: a fresh box (or a state directory moved aside).
    Fresh,
    /// Data made with the root secret, described (path and what it holds).
    Found(String),
}

impl ExistingState {
    /// Looks at the state database (items, DICOM instance keys, pulled studies), the spool,
    /// the quarantine and the outbox of `cfg`. Creates nothing.
    pub fn probe(cfg: &GatewayConfig) -> Result<ExistingState, SecretsError> {
        let db = cfg.db_path();
        if let Some(table) = Db::holds_keyed_data(&db)? {
            return Ok(ExistingState::Found(format!(
                "state database {} has rows in `{table}`",
                db.display()
            )));
        }
        for (dir, suffix) in [
            (cfg.spool_dir(), ".fgws"),
            (cfg.quarantine_dir(), ".fgws"),
            (cfg.outbox_dir().join("packages"), ".json"),
        ] {
            let n = count_files(&dir, suffix)
                .map_err(|source| SecretsError::Io { path: dir.clone(), source })?;
            if n > 0 {
                return Ok(ExistingState::Found(format!("{} holds {n} file(s)", dir.display())));
            }
        }
        Ok(ExistingState::Fresh)
    }
}

fn count_files(dir: &Path, suffix: &str) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for e in entries {
        if e?.file_name().to_string_lossy().ends_with(suffix) {
            n += 1;
        }
    }
    Ok(n)
}

/// Reads the root secret at `path`: `None` if there is none; refused if readable by others
/// or of the wrong length.
fn read_root(path: &Path) -> Result<Option<[u8; 32]>, SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| SecretsError::Io { path: path.to_path_buf(), source };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Permissions { path: path.to_path_buf(), mode });
    }
    let root: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SecretsError::Length { path: path.to_path_buf(), len: bytes.len() })?;
    Ok(Some(root))
}

/// Where the box's root secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootLocation {
    /// A 0600 file (development: `key_store = "insecure-file"` or no `[identity]`).
    File(PathBuf),
    /// Sealed in the TPM at a persistent handle (`key_store = "tpm"`).
    Tpm(PersistentHandle),
}

impl std::fmt::Display for RootLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootLocation::File(path) => write!(f, "{}", path.display()),
            RootLocation::Tpm(handle) => write!(f, "TPM handle {handle}"),
        }
    }
}

/// What [`Secrets::install_root`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootInstall {
    /// The root secret was written (to a file or sealed in the TPM).
    Written(RootLocation),
    /// The box already had this very root secret; nothing was written.
    AlreadyPresent(RootLocation),
}

/// Constant-time equality of two roots: compares secrets.
fn same_root(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TPM `cfg` keeps its root secret in, if its key store is the TPM.
fn tpm_of(cfg: &GatewayConfig) -> Result<Option<&Tcti>, SecretsError> {
    match &cfg.identity {
        Some(id) if id.key_store == KeyStoreKind::Tpm => {
            id.tpm_tcti.as_ref().map(Some).ok_or(SecretsError::NoTcti)
        }
        _ => Ok(None),
    }
}

/// The root sealed at [`PersistentHandle::ROOT_SECRET`], if any.
fn unseal_root(tpm: &TpmKeyStore) -> Result<Option<[u8; 32]>, SecretsError> {
    let handle = PersistentHandle::ROOT_SECRET;
    match tpm.unseal_secret(handle)? {
        None => Ok(None),
        Some(bytes) => {
            let root: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretsError::SealedLength { handle, len: bytes.len() })?;
            Ok(Some(root))
        }
    }
}

/// Removes a root file once the TPM holds the same root (a box moved from a file root to
/// the TPM, or a kill between sealing and deleting). A file with another root is refused:
/// which of the two made the box's data cannot be told here.
fn retire_root_file(dir: &Path, sealed: &[u8; 32]) -> Result<(), SecretsError> {
    let path = dir.join("root.key");
    match read_root(&path)? {
        None => Ok(()),
        Some(file) if same_root(&file, sealed) => {
            let io = |source| SecretsError::Io { path: path.clone(), source };
            std::fs::remove_file(&path).map_err(io)?;
            fgw_format::durable::fsync_dir(dir).map_err(io)?;
            tracing::info!(file = %path.display(), "root secret file deleted: the TPM holds the root");
            Ok(())
        }
        Some(_) => Err(SecretsError::RootDiffers { at: RootLocation::File(path) }),
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
    /// The box's secret store for `cfg`: [`Secrets::open_or_create`] in its secrets
    /// directory, with what its state directory holds.
    pub fn open_for(cfg: &GatewayConfig) -> Result<Secrets, SecretsError> {
        if let Some(tcti) = tpm_of(cfg)? {
            return Secrets::open_sealed(cfg, tcti);
        }
        // The state only matters when the root is missing.
        let existing = if cfg.secrets_dir().join("root.key").exists() {
            ExistingState::Fresh
        } else {
            ExistingState::probe(cfg)?
        };
        Secrets::open_or_create(&cfg.secrets_dir(), &existing).map_err(|e| match e {
            SecretsError::RootMissing { path, evidence, .. } => {
                SecretsError::RootMissing { path, evidence, state_dir: cfg.state_dir.clone() }
            }
            other => other,
        })
    }

    /// The root sealed in the TPM behind `tcti`: unsealed; or sealed from a root file left
    /// from before (then the file is deleted); or, on a fresh box only, created and sealed.
    /// The TPM connection is closed on return (swtpm and a TPM without a resource manager
    /// serve one client at a time; the identity opens its own).
    fn open_sealed(cfg: &GatewayConfig, tcti: &Tcti) -> Result<Secrets, SecretsError> {
        let dir = cfg.secrets_dir();
        let tpm = TpmKeyStore::connect(tcti)?;
        if let Some(root) = unseal_root(&tpm)? {
            retire_root_file(&dir, &root)?;
            return Ok(Secrets { root });
        }
        let handle = PersistentHandle::ROOT_SECRET;
        let root = match read_root(&dir.join("root.key"))? {
            Some(root) => root,
            None => {
                if let ExistingState::Found(evidence) = ExistingState::probe(cfg)? {
                    return Err(SecretsError::TpmRootMissing {
                        handle,
                        evidence,
                        state_dir: cfg.state_dir.clone(),
                    });
                }
                let mut root = [0u8; 32];
                ring::rand::SystemRandom::new().fill(&mut root).expect("system RNG");
                root
            }
        };
        tpm.seal_secret(handle, &root)?;
        // Read back before anything relies on it (and before a root file is deleted).
        match unseal_root(&tpm)? {
            Some(sealed) if same_root(&sealed, &root) => {}
            _ => return Err(SecretsError::RootDiffers { at: RootLocation::Tpm(handle) }),
        }
        retire_root_file(&dir, &root)?;
        tracing::info!(handle = %handle, "root secret sealed in the TPM");
        Ok(Secrets { root })
    }

    /// Installs `root` (recovered from a recovery kit) where `cfg` keeps its root secret:
    /// sealed in the TPM, or as a file ([`Secrets::install_root`]). Never over a different
    /// root ([`SecretsError::RootDiffers`]).
    pub(crate) fn install_root_for(
        cfg: &GatewayConfig,
        root: &[u8; 32],
    ) -> Result<RootInstall, SecretsError> {
        let Some(tcti) = tpm_of(cfg)? else {
            return Secrets::install_root(&cfg.secrets_dir(), root);
        };
        let handle = PersistentHandle::ROOT_SECRET;
        let at = RootLocation::Tpm(handle);
        let tpm = TpmKeyStore::connect(tcti)?;
        if let Some(existing) = unseal_root(&tpm)? {
            return if same_root(&existing, root) {
                Ok(RootInstall::AlreadyPresent(at))
            } else {
                Err(SecretsError::RootDiffers { at })
            };
        }
        // A root file of another root would be sealed over at the next start otherwise.
        if let Some(file) = read_root(&cfg.secrets_dir().join("root.key"))? {
            if !same_root(&file, root) {
                let path = cfg.secrets_dir().join("root.key");
                return Err(SecretsError::RootDiffers { at: RootLocation::File(path) });
            }
        }
        match tpm.seal_secret(handle, root) {
            Ok(()) => {}
            // Sealed meanwhile (a daemon starting): judge that one.
            Err(TpmError::Occupied { .. }) => {
                return match unseal_root(&tpm)? {
                    Some(existing) if same_root(&existing, root) => {
                        Ok(RootInstall::AlreadyPresent(at))
                    }
                    _ => Err(SecretsError::RootDiffers { at }),
                };
            }
            Err(e) => return Err(e.into()),
        }
        retire_root_file(&cfg.secrets_dir(), root)?;
        Ok(RootInstall::Written(at))
    }

    /// A root secret for one process only, never written: `gateway deid` without a box
    /// configuration. Its pseudonyms and date shifts match no other run.
    pub fn ephemeral() -> Secrets {
        let mut root = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut root).expect("system RNG");
        Secrets { root }
    }

    /// Open the root secret under `dir`, creating it (random, 0600, fsynced) only when
    /// `existing` is [`ExistingState::Fresh`]; otherwise a missing root is
    /// [`SecretsError::RootMissing`].
    pub fn open_or_create(dir: &Path, existing: &ExistingState) -> Result<Secrets, SecretsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join("root.key");
        let io = |source| SecretsError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        match read_root(&path)? {
            Some(root) => Ok(Secrets { root }),
            None => {
                if let ExistingState::Found(evidence) = existing {
                    let state_dir = dir.parent().unwrap_or(dir).to_path_buf();
                    return Err(SecretsError::RootMissing {
                        path,
                        evidence: evidence.clone(),
                        state_dir,
                    });
                }
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
        }
    }

    /// Writes `root` (recovered from a recovery kit) as the root secret under `dir`, with the
    /// same steps as [`Secrets::open_or_create`] (0600, written and fsynced beside it, then
    /// put in place, then the folder fsynced), but never over an existing root: it is put in
    /// place by `link`, which fails if a root appeared meanwhile (a daemon started during the
    /// import). An existing root equal to `root` is [`RootInstall::AlreadyPresent`]; a
    /// different one is [`SecretsError::RootDiffers`], and is left as it is.
    pub(crate) fn install_root(dir: &Path, root: &[u8; 32]) -> Result<RootInstall, SecretsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join("root.key");
        let io = |source| SecretsError::Io { path: path.clone(), source };
        let same = |existing: &[u8; 32]| same_root(existing, root);
        let at = RootLocation::File(path.clone());
        std::fs::create_dir_all(dir).map_err(io)?;
        if let Some(existing) = read_root(&path)? {
            return if same(&existing) {
                Ok(RootInstall::AlreadyPresent(at))
            } else {
                Err(SecretsError::RootDiffers { at })
            };
        }
        // Its own temporary name: never the one a concurrent `open_or_create` writes. Made
        // anew (a leftover could have other permissions, which truncating would keep).
        let tmp = dir.join("root.key.recovered.tmp");
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(root)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A root appeared between the read and the link: judge that one.
                return match read_root(&path)? {
                    Some(existing) if same(&existing) => Ok(RootInstall::AlreadyPresent(at)),
                    _ => Err(SecretsError::RootDiffers { at }),
                };
            }
            Err(e) => return Err(io(e)),
        }
        fgw_format::durable::fsync_dir(dir).map_err(io)?;
        Ok(RootInstall::Written(at))
    }

    /// A given root secret: for tests and benchmarks, and for checking a recovery kit's
    /// combined shares against its check value (`crate::recovery`).
    pub fn from_bytes(root: [u8; 32]) -> Secrets {
        Secrets { root }
    }

    fn derive(&self, purpose: KeyPurpose) -> [u8; 32] {
        self.derive_for(purpose, b"")
    }

    /// A key of `purpose` bound to `context` as well (HKDF info = purpose, context).
    fn derive_for(&self, purpose: KeyPurpose, context: &[u8]) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"facility-gateway");
        let prk = salt.extract(&self.root);
        let info = [purpose.info(), context];
        let okm = prk.expand(&info, Len32).expect("hkdf length");
        let mut out = [0u8; 32];
        okm.fill(&mut out).expect("hkdf fill");
        out
    }

    /// The HMAC-SHA-256 key of the keyed pseudonyms.
    pub fn pseudonym_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.derive(KeyPurpose::Pseudonym))
    }

    /// The HMAC-SHA-256 key the outbox seals its manifests with.
    pub fn outbox_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.derive(KeyPurpose::OutboxSeal))
    }

    /// The HMAC-SHA-256 key of the batch labels (`crate::state::BatchLabel`): the box names
    /// an export batch folder by it, never by the folder's own name.
    pub fn batch_label_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.derive(KeyPurpose::BatchLabel))
    }

    /// The box's WireGuard private key: derived from the sealed root and the box's serial,
    /// so it is never stored, and a replacement box (same root, other serial) has its own.
    pub fn wireguard_key(&self, serial: &str) -> fgw_vpn::WgPrivateKey {
        fgw_vpn::WgPrivateKey::from_bytes(self.derive_for(KeyPurpose::Wireguard, serial.as_bytes()))
    }

    /// The recovery kit's key check value: the first 8 bytes of HMAC-SHA-256 over
    /// `fgw recovery check`, under a key of its own purpose. It tells whether shares combine
    /// to this root, and says nothing about the other purpose keys.
    pub fn recovery_check(&self) -> [u8; 8] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.derive(KeyPurpose::RecoveryCheck));
        let tag = hmac::sign(&key, b"fgw recovery check");
        let mut out = [0u8; 8];
        out.copy_from_slice(&tag.as_ref()[..8]);
        out
    }

    /// The root itself, for the recovery kit's export only (`crate::recovery`).
    pub(crate) fn root_bytes(&self) -> &[u8; 32] {
        &self.root
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
        let a = Secrets::open_or_create(d.path(), &ExistingState::Fresh).unwrap();
        let b = Secrets::open_or_create(d.path(), &ExistingState::Fresh).unwrap();
        assert_eq!(a.root, b.root);
        assert_ne!(a.derive(KeyPurpose::Pseudonym), a.derive(KeyPurpose::SpoolEncryption));
        assert_ne!(a.derive(KeyPurpose::OutboxSeal), a.derive(KeyPurpose::Pseudonym));
        assert_ne!(a.derive(KeyPurpose::BatchLabel), a.derive(KeyPurpose::Pseudonym));
        assert_ne!(a.derive(KeyPurpose::RecoveryCheck), a.derive(KeyPurpose::Pseudonym));
        assert_ne!(a.derive(KeyPurpose::Wireguard), a.derive(KeyPurpose::Pseudonym));
        // Per serial, and stable.
        let k1 = a.wireguard_key("fgw-1").public_key();
        assert_ne!(k1, a.wireguard_key("fgw-2").public_key());
        assert_eq!(k1, b.wireguard_key("fgw-1").public_key());
        assert_ne!(Secrets::ephemeral().root, Secrets::ephemeral().root);
    }

    fn config(state: &Path) -> GatewayConfig {
        let text = format!("facility_id = \"F1\"\nstate_dir = \"{}\"\n", state.display());
        GatewayConfig::from_toml(Path::new("/etc/g.toml"), &text).unwrap()
    }

    #[test]
    fn a_missing_root_with_existing_state_is_refused_not_regenerated() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        let first = Secrets::open_for(&cfg).unwrap();
        // State made with that secret: a recorded item.
        let db = Db::open(&cfg.db_path()).unwrap();
        let item = crate::state::NewItem::new(
            crate::state::ItemKind::Report,
            crate::state::Origin::Daemon,
            "hl7 msg 1",
        );
        db.insert(&item).unwrap();
        drop(db);
        std::fs::remove_file(cfg.secrets_dir().join("root.key")).unwrap();
        let e = Secrets::open_for(&cfg).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, SecretsError::RootMissing { .. }), "{msg}");
        assert!(msg.contains("root.key") && msg.contains("state.sqlite"), "{msg}");
        assert!(msg.contains("Restore") && msg.contains(&d.path().display().to_string()), "{msg}");
        assert!(!cfg.secrets_dir().join("root.key").exists(), "no new secret was written");
        // Restoring the file is the fix.
        std::fs::create_dir_all(cfg.secrets_dir()).unwrap();
        std::fs::write(cfg.secrets_dir().join("root.key"), first.root).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let perm = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(cfg.secrets_dir().join("root.key"), perm).unwrap();
        assert_eq!(Secrets::open_for(&cfg).unwrap().root, first.root);
    }

    #[test]
    fn spool_files_alone_count_as_state_and_an_empty_database_does_not() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        // `gateway status` before the first run creates an empty database: still fresh.
        drop(Db::open(&cfg.db_path()).unwrap());
        assert_eq!(ExistingState::probe(&cfg).unwrap(), ExistingState::Fresh);
        std::fs::create_dir_all(cfg.quarantine_dir()).unwrap();
        std::fs::write(cfg.quarantine_dir().join("q-1.fgws"), b"sealed").unwrap();
        match ExistingState::probe(&cfg).unwrap() {
            ExistingState::Found(what) => assert!(what.contains("quarantine"), "{what}"),
            ExistingState::Fresh => panic!("quarantine files are state"),
        }
    }
}
