//! The hub's side: a TUF repository in a folder (`metadata/`, `targets/`), made and signed
//! with tough's schema and `SignedRole`.
//!
//! Every publication writes targets, then snapshot, then timestamp, each by rename: a box
//! that reads in between sees an older timestamp (consistent) or a snapshot that does not
//! match it (refused, tried again at its next check), never a mix it would accept.

use crate::keys::{self, KeyError, KeySet};
use crate::target::{ReleaseKind, ReleaseTarget, ReleaseVersion};
use crate::{METADATA_DIR, TARGETS_DIR};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::editor::signed::SignedRole;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{
    Hashes, KeyHolder, Metafile, Role, RoleKeys, RoleType, Root, Signed, Snapshot, Target, Targets,
    Timestamp,
};
use tough::TargetName;

/// The TUF specification version written into every role.
const SPEC_VERSION: &str = "1.0.0";

/// Why the repository could not be made, published to or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Reading or writing a repository file failed.
    #[error("release repository {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The repository folder already holds a root.
    #[error("release repository {path}: already initialized")]
    Exists {
        /// The root file.
        path: PathBuf,
    },
    /// A metadata file of the repository is not what this module wrote.
    #[error("release repository {path}: unreadable metadata")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The release is published already with other bytes (a version is never reused).
    #[error("release {name}: already published with other content")]
    Conflict {
        /// The target name.
        name: String,
    },
    /// A threshold of 0, or above the number of keys of its role.
    #[error("release repository: threshold of {role} must be 1 to {keys}")]
    Threshold {
        /// The role.
        role: &'static str,
        /// How many keys it has.
        keys: usize,
    },
    /// Signing failed (no key of the role, or tough refused the role).
    #[error("release repository: signing {role} failed: {reason}")]
    Sign {
        /// The role.
        role: &'static str,
        /// tough's reason (names roles and key ids, no data).
        reason: String,
    },
}

/// Signatures each role needs. Default 1 each; the society's production root uses 2 of 3
/// root keys (`provisioning/release-keys.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Root.
    pub root: u64,
    /// Targets.
    pub targets: u64,
    /// Snapshot.
    pub snapshot: u64,
    /// Timestamp.
    pub timestamp: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { root: 1, targets: 1, snapshot: 1, timestamp: 1 }
    }
}

/// How long each role's signature stays valid. Defaults: root 365 days, targets 180 days,
/// snapshot 7 days, timestamp 1 day (the hub re-signs snapshot and timestamp when half of
/// the timestamp's life is gone, so a box that is cut off from the hub stops trusting
/// metadata after a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// Root.
    pub root: std::time::Duration,
    /// Targets.
    pub targets: std::time::Duration,
    /// Snapshot.
    pub snapshot: std::time::Duration,
    /// Timestamp.
    pub timestamp: std::time::Duration,
}

impl Default for Expiry {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        let days = |d: u64| std::time::Duration::from_secs(d * DAY);
        Expiry { root: days(365), targets: days(180), snapshot: days(7), timestamp: days(1) }
    }
}

fn at(after: std::time::Duration) -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    let span = jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::MAX);
    now.checked_add(span).unwrap_or(jiff::Timestamp::MAX)
}

/// A TUF repository in a folder.
#[derive(Debug, Clone)]
pub struct Repository {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` durably and atomically (the project's one helper for it).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    fgw_format::durable::write_atomic(path, bytes).map_err(io(path))
}

async fn sign<T: Role + serde::Serialize>(
    role: T,
    root: &Root,
    key_files: &[&Path],
    name: &'static str,
) -> Result<SignedRole<T>, PublishError> {
    let sources: Vec<_> = key_files.iter().map(|p| keys::source(p)).collect();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    SignedRole::new(role, &KeyHolder::Root(root.clone()), &sources, &rng)
        .await
        .map_err(|e| PublishError::Sign { role: name, reason: e.to_string() })
}

fn version_after(previous: Option<u64>) -> NonZeroU64 {
    NonZeroU64::new(previous.unwrap_or(0).saturating_add(1)).unwrap_or(NonZeroU64::MIN)
}

impl Repository {
    /// The repository in `dir` (not checked: [`Repository::init`] makes one).
    pub fn open(dir: &Path) -> Repository {
        Repository { dir: dir.to_path_buf() }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `metadata/`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join(METADATA_DIR)
    }

    /// `targets/`.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join(TARGETS_DIR)
    }

    /// The newest root, `metadata/root.json`: what boxes bake into their image.
    pub fn root_path(&self) -> PathBuf {
        self.metadata_dir().join("root.json")
    }

    /// Whether the folder holds a root.
    pub fn is_initialized(&self) -> bool {
        self.root_path().exists()
    }

    /// Makes a new repository in `dir`: root version 1 listing the public keys of `keys`
    /// with `thresholds`, then empty targets, snapshot and timestamp.
    pub async fn init(
        dir: &Path,
        keys: &KeySet,
        thresholds: Thresholds,
        expiry: Expiry,
    ) -> Result<Repository, PublishError> {
        let repo = Repository::open(dir);
        if repo.is_initialized() {
            return Err(PublishError::Exists { path: repo.root_path() });
        }
        for d in [repo.metadata_dir(), repo.targets_dir()] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let mut root = Root {
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: false,
            version: NonZeroU64::MIN,
            expires: at(expiry.root),
            keys: HashMap::new(),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        let roles: [(RoleType, &'static str, Vec<&PathBuf>, u64); 4] = [
            (RoleType::Root, "root", keys.root.iter().collect(), thresholds.root),
            (RoleType::Targets, "targets", keys.targets.iter().collect(), thresholds.targets),
            (RoleType::Snapshot, "snapshot", vec![&keys.snapshot], thresholds.snapshot),
            (RoleType::Timestamp, "timestamp", vec![&keys.timestamp], thresholds.timestamp),
        ];
        for (role, name, files, threshold) in roles {
            if threshold == 0 || threshold > files.len() as u64 {
                return Err(PublishError::Threshold { role: name, keys: files.len() });
            }
            let mut keyids = Vec::new();
            for path in files {
                let key = keys::public_key(path)?;
                let id = key
                    .key_id()
                    .map_err(|e| PublishError::Sign { role: name, reason: e.to_string() })?;
                root.keys.insert(id.clone(), key);
                keyids.push(id);
            }
            let threshold = NonZeroU64::new(threshold).unwrap_or(NonZeroU64::MIN);
            root.roles.insert(role, RoleKeys { keyids, threshold, _extra: HashMap::new() });
        }
        // A root is signed by the root keys it lists itself.
        let root_files: Vec<&Path> = keys.root.iter().map(PathBuf::as_path).collect();
        let signed = sign(root.clone(), &root, &root_files, "root").await?;
        write_atomic(&repo.metadata_dir().join("1.root.json"), signed.buffer())?;
        write_atomic(&repo.root_path(), signed.buffer())?;
        repo.sign_targets(keys, expiry).await?;
        Ok(repo)
    }

    /// The trusted root as this repository holds it.
    fn root(&self) -> Result<Root, PublishError> {
        let path = self.root_path();
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let signed: Signed<Root> =
            serde_json::from_slice(&bytes).map_err(|_| PublishError::Corrupt { path })?;
        Ok(signed.signed)
    }

    /// The version of the role file `name` (`targets.json`, …), if it exists.
    fn current_version(&self, name: &str) -> Result<Option<u64>, PublishError> {
        let path = self.metadata_dir().join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|_| PublishError::Corrupt { path: path.clone() })?;
                v["signed"]["version"].as_u64().map(Some).ok_or(PublishError::Corrupt { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PublishError::Io { path, source }),
        }
    }

    /// Copies `source` into the repository as release `version` of `kind` and signs new
    /// targets, snapshot and timestamp. Publishing the same bytes again changes nothing;
    /// other bytes under a published version are refused.
    pub async fn publish(
        &self,
        keys: &KeySet,
        kind: ReleaseKind,
        version: &ReleaseVersion,
        source: &Path,
        expiry: Expiry,
    ) -> Result<ReleaseTarget, PublishError> {
        let bytes = std::fs::read(source).map_err(io(source))?;
        self.publish_bytes(keys, kind, version, &bytes, expiry).await
    }

    /// [`Repository::publish`] of bytes already in memory (a packed policy bundle).
    pub async fn publish_bytes(
        &self,
        keys: &KeySet,
        kind: ReleaseKind,
        version: &ReleaseVersion,
        bytes: &[u8],
        expiry: Expiry,
    ) -> Result<ReleaseTarget, PublishError> {
        let name = ReleaseTarget::file_name(kind, version);
        let dest = self.targets_dir().join(&name);
        if dest.exists() {
            let held = std::fs::read(&dest).map_err(io(&dest))?;
            if held != bytes {
                return Err(PublishError::Conflict { name });
            }
        } else {
            write_atomic(&dest, bytes)?;
        }
        self.sign_targets(keys, expiry).await?;
        self.releases()?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or(PublishError::Corrupt { path: dest })
    }

    /// Signs targets (every file of `targets/`), then snapshot and timestamp.
    async fn sign_targets(&self, keys: &KeySet, expiry: Expiry) -> Result<(), PublishError> {
        let root = self.root()?;
        let version = version_after(self.current_version("targets.json")?);
        let mut targets = Targets::new(SPEC_VERSION.into(), version, at(expiry.targets));
        targets.delegations = None;
        let dir = self.targets_dir();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .collect::<Result<_, _>>()
            .map_err(io(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let file = entry.file_name();
            let Some(name) = file.to_str() else { continue };
            let Ok((kind, version)) = ReleaseTarget::parse_name(name) else { continue };
            let path = entry.path();
            let mut target = Target::from_path(&path)
                .await
                .map_err(|e| PublishError::Sign { role: "targets", reason: e.to_string() })?;
            target.custom.insert("kind".into(), kind.as_str().into());
            target.custom.insert("version".into(), version.as_str().into());
            let tname = TargetName::new(name)
                .map_err(|e| PublishError::Sign { role: "targets", reason: e.to_string() })?;
            targets.targets.insert(tname, target);
        }
        let files: Vec<&Path> = keys.targets.iter().map(PathBuf::as_path).collect();
        let signed = sign(targets, &root, &files, "targets").await?;
        write_atomic(&self.metadata_dir().join("targets.json"), signed.buffer())?;
        self.sign_snapshot_and_timestamp(&root, keys, expiry, &signed).await
    }

    /// Re-signs snapshot and timestamp over the current targets with fresh expiries (the
    /// online keys only: the hub does this by itself).
    pub async fn refresh(&self, keys: &KeySet, expiry: Expiry) -> Result<(), PublishError> {
        let root = self.root()?;
        let path = self.metadata_dir().join("targets.json");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let targets: Signed<Targets> =
            serde_json::from_slice(&bytes).map_err(|_| PublishError::Corrupt { path })?;
        let version = targets.signed.version;
        self.write_snapshot_and_timestamp(&root, keys, expiry, &bytes, version).await
    }

    async fn sign_snapshot_and_timestamp(
        &self,
        root: &Root,
        keys: &KeySet,
        expiry: Expiry,
        targets: &SignedRole<Targets>,
    ) -> Result<(), PublishError> {
        let version = targets.signed().signed.version;
        self.write_snapshot_and_timestamp(root, keys, expiry, targets.buffer(), version).await
    }

    async fn write_snapshot_and_timestamp(
        &self,
        root: &Root,
        keys: &KeySet,
        expiry: Expiry,
        targets_bytes: &[u8],
        targets_version: NonZeroU64,
    ) -> Result<(), PublishError> {
        let meta = |bytes: &[u8], version| Metafile {
            length: Some(bytes.len() as u64),
            hashes: Some(Hashes {
                sha256: Decoded::<Hex>::from(
                    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec(),
                ),
                _extra: HashMap::new(),
            }),
            version,
            _extra: HashMap::new(),
        };
        let version = version_after(self.current_version("snapshot.json")?);
        let mut snapshot = Snapshot::new(SPEC_VERSION.into(), version, at(expiry.snapshot));
        snapshot.meta.insert("targets.json".into(), meta(targets_bytes, targets_version));
        let snapshot = sign(snapshot, root, &[&keys.snapshot], "snapshot").await?;
        write_atomic(&self.metadata_dir().join("snapshot.json"), snapshot.buffer())?;

        let version = version_after(self.current_version("timestamp.json")?);
        let mut timestamp = Timestamp::new(SPEC_VERSION.into(), version, at(expiry.timestamp));
        timestamp.meta.insert(
            "snapshot.json".into(),
            meta(snapshot.buffer(), snapshot.signed().signed.version),
        );
        let timestamp = sign(timestamp, root, &[&keys.timestamp], "timestamp").await?;
        write_atomic(&self.metadata_dir().join("timestamp.json"), timestamp.buffer())
    }

    /// When the current timestamp expires.
    pub fn timestamp_expires(&self) -> Result<jiff::Timestamp, PublishError> {
        let path = self.metadata_dir().join("timestamp.json");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let signed: Signed<Timestamp> =
            serde_json::from_slice(&bytes).map_err(|_| PublishError::Corrupt { path })?;
        Ok(signed.signed.expires)
    }

    /// The releases the current targets metadata lists (the hub's own view; boxes verify).
    pub fn releases(&self) -> Result<Vec<ReleaseTarget>, PublishError> {
        let path = self.metadata_dir().join("targets.json");
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let signed: Signed<Targets> = serde_json::from_slice(&bytes)
            .map_err(|_| PublishError::Corrupt { path: path.clone() })?;
        let mut out = Vec::new();
        for (name, target) in &signed.signed.targets {
            let Ok((kind, version)) = ReleaseTarget::parse_name(name.raw()) else { continue };
            out.push(ReleaseTarget {
                kind,
                version,
                name: name.raw().to_string(),
                sha256: hex::encode(&target.hashes.sha256),
                length: target.length,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
