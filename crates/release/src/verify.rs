//! The box's side: load the repository through a transport with tough, against the root
//! baked into the image, and fetch a target only as the signed metadata describes it.
//!
//! The datastore folder keeps the newest timestamp, snapshot and targets seen and the
//! latest known time, so older metadata (a replay) and a clock set back are refused across
//! restarts.

use crate::target::{ReleaseKind, ReleaseTarget, ReleaseVersion};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tough::error::Error as ToughError;
use tough::schema::RoleType;
use tough::{ExpirationEnforcement, Limits, Repository, RepositoryLoader, TargetName, Transport};
use url::Url;

/// Why the repository or a target was refused. Each attack TUF defends against has its own
/// class ([`VerifyError::class`]); the text names roles, limits and files, never content.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Signed metadata is past its expiry (a freeze, or an old copy replayed).
    #[error("release metadata: {role} is expired")]
    Expired {
        /// The role.
        role: String,
    },
    /// Metadata older than what the box has already trusted (a rollback).
    #[error("release metadata: {role} is older than the version already trusted")]
    Rollback {
        /// The role.
        role: String,
    },
    /// Metadata or a target that does not match what signed metadata says of it: a
    /// mix-and-match of files from different snapshots, or tampered bytes.
    #[error("release metadata: {what} does not match its signed hash, length or version")]
    Mismatch {
        /// What did not match (a role or target, as tough names it).
        what: String,
    },
    /// More bytes than the limit or the signed length allow (endless data).
    #[error("release metadata: more than {limit} bytes (limit from {by})")]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Where the limit comes from.
        by: String,
    },
    /// Not enough valid signatures from the keys the root names for the role.
    #[error("release metadata: {role} lacks the signatures its threshold requires")]
    Signature {
        /// The role.
        role: String,
    },
    /// The box's clock is behind a time it has already seen.
    #[error("release metadata: the system clock went backwards")]
    Clock,
    /// The repository could not be reached.
    #[error("release repository unreachable at {url}: {reason}")]
    Unavailable {
        /// The URL.
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// The signed targets do not list the release.
    #[error("release {name} is not in the signed targets")]
    NotListed {
        /// The target name.
        name: String,
    },
    /// A local file (trusted root, datastore, download) failed.
    #[error("release verification: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Anything else tough refused (malformed metadata).
    #[error("release metadata refused: {reason}")]
    Refused {
        /// tough's reason.
        reason: String,
    },
}

impl VerifyError {
    /// A short code for logs, status and the heartbeat's error class.
    pub fn class(&self) -> &'static str {
        match self {
            VerifyError::Expired { .. } => "tuf_expired",
            VerifyError::Rollback { .. } => "tuf_rollback",
            VerifyError::Mismatch { .. } => "tuf_mismatch",
            VerifyError::TooLarge { .. } => "tuf_too_large",
            VerifyError::Signature { .. } => "tuf_signature",
            VerifyError::Clock => "tuf_clock",
            VerifyError::Unavailable { .. } => "tuf_unavailable",
            VerifyError::NotListed { .. } => "tuf_not_listed",
            VerifyError::Io { .. } => "tuf_io",
            VerifyError::Refused { .. } => "tuf_refused",
        }
    }
}

fn role_name(role: RoleType) -> String {
    role.to_string()
}

impl From<ToughError> for VerifyError {
    fn from(e: ToughError) -> VerifyError {
        classify(&e)
    }
}

/// The class of a tough error. tough reports a check that failed while a file streamed in
/// (size, hash) as a transport error whose source is the check's error: look through it.
fn classify(e: &ToughError) -> VerifyError {
    use tough::schema::Error as SchemaError;
    match e {
        ToughError::ExpiredMetadata { role, .. } => VerifyError::Expired { role: role_name(*role) },
        ToughError::OlderMetadata { role, .. } => VerifyError::Rollback { role: role_name(*role) },
        ToughError::OlderSnapshotInTimestamp { .. } | ToughError::SnapshotRoleRollback { .. } => {
            VerifyError::Rollback { role: "snapshot".into() }
        }
        ToughError::HashMismatch { context, .. } => VerifyError::Mismatch { what: context.clone() },
        ToughError::VersionMismatch { role, .. } => {
            VerifyError::Mismatch { what: role_name(*role) }
        }
        ToughError::MetaMissing { file, .. } => VerifyError::Mismatch { what: (*file).into() },
        ToughError::SnapshotRoleMissing { .. } | ToughError::SnapshotTargetsMetaMissing { .. } => {
            VerifyError::Mismatch { what: "snapshot".into() }
        }
        ToughError::MaxSizeExceeded { max_size, specifier, .. } => {
            VerifyError::TooLarge { limit: *max_size, by: (*specifier).into() }
        }
        ToughError::VerifyMetadata { role, source, .. } => match source {
            SchemaError::SignatureThreshold { .. } => {
                VerifyError::Signature { role: role_name(*role) }
            }
            other => VerifyError::Refused { reason: format!("{role}: {other}") },
        },
        ToughError::VerifyTrustedMetadata { .. } => VerifyError::Signature { role: "root".into() },
        ToughError::SystemTimeSteppedBackward { .. } => VerifyError::Clock,
        ToughError::Transport { url, source, .. } => {
            let mut cause = std::error::Error::source(source);
            while let Some(c) = cause {
                if let Some(inner) = c.downcast_ref::<ToughError>() {
                    return classify(inner);
                }
                cause = c.source();
            }
            VerifyError::Unavailable { url: url.to_string(), reason: source.to_string() }
        }
        other => VerifyError::Refused { reason: other.to_string() },
    }
}

/// Size limits for metadata (endless-data defence): root and snapshot 1 MiB, timestamp
/// 64 KiB, targets 4 MiB (thousands of releases), 16 root rotations per check. Targets are
/// bounded by their signed length.
pub fn default_limits() -> Limits {
    Limits {
        max_root_size: 1 << 20,
        max_targets_size: 4 << 20,
        max_timestamp_size: 64 << 10,
        max_snapshot_size: 1 << 20,
        max_root_updates: 16,
    }
}

/// What the box trusts: the root from its image and its datastore of newest metadata.
#[derive(Debug, Clone)]
pub struct Verifier {
    root: Vec<u8>,
    datastore: PathBuf,
    limits: Limits,
}

/// A repository whose metadata passed every check.
#[derive(Debug)]
pub struct Trusted {
    repo: Repository,
}

impl Verifier {
    /// A verifier trusting `root_json` (the image's root), keeping state in `datastore`.
    pub fn new(root_json: Vec<u8>, datastore: &Path) -> Verifier {
        Verifier { root: root_json, datastore: datastore.to_path_buf(), limits: default_limits() }
    }

    /// Reads the trusted root from `path`.
    pub fn from_root_file(path: &Path, datastore: &Path) -> Result<Verifier, VerifyError> {
        let root = std::fs::read(path)
            .map_err(|source| VerifyError::Io { path: path.to_path_buf(), source })?;
        Ok(Verifier::new(root, datastore))
    }

    /// Other limits (tests of the endless-data defence).
    pub fn with_limits(mut self, limits: Limits) -> Verifier {
        self.limits = limits;
        self
    }

    /// Loads and verifies timestamp, snapshot, targets (and newer roots) through
    /// `transport`: metadata under `metadata_url`, targets under `targets_url` (both ending
    /// in `/`).
    pub async fn load<T: Transport + Send + Sync + 'static>(
        &self,
        transport: T,
        metadata_url: Url,
        targets_url: Url,
    ) -> Result<Trusted, VerifyError> {
        std::fs::create_dir_all(&self.datastore)
            .map_err(|source| VerifyError::Io { path: self.datastore.clone(), source })?;
        let repo = RepositoryLoader::new(&self.root, metadata_url, targets_url)
            .transport(transport)
            .limits(self.limits)
            .datastore(self.datastore.clone())
            .expiration_enforcement(ExpirationEnforcement::Safe)
            .load()
            .await?;
        Ok(Trusted { repo })
    }
}

impl Trusted {
    /// Every release the signed targets list.
    pub fn releases(&self) -> Vec<ReleaseTarget> {
        let mut out: Vec<ReleaseTarget> = self
            .repo
            .targets()
            .signed
            .targets
            .iter()
            .filter_map(|(name, t)| {
                let (kind, version) = ReleaseTarget::parse_name(name.raw()).ok()?;
                Some(ReleaseTarget {
                    kind,
                    version,
                    name: name.raw().to_string(),
                    sha256: hex::encode(&t.hashes.sha256),
                    length: t.length,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The release `version` of `kind`, if the signed targets list it.
    pub fn release(&self, kind: ReleaseKind, version: &ReleaseVersion) -> Option<ReleaseTarget> {
        let name = ReleaseTarget::file_name(kind, version);
        self.releases().into_iter().find(|t| t.name == name)
    }

    /// The version of the trusted timestamp.
    pub fn timestamp_version(&self) -> u64 {
        self.repo.timestamp().signed.version.get()
    }

    /// Downloads `target` to `dest` (through `dest.part`, renamed when its hash and length
    /// matched the signed ones). A file at `dest` is only ever a verified target.
    pub async fn fetch_to(&self, target: &ReleaseTarget, dest: &Path) -> Result<(), VerifyError> {
        use futures_util_shim::next;
        let name = TargetName::new(target.name.as_str())
            .map_err(|_| VerifyError::NotListed { name: target.name.clone() })?;
        let Some(stream) = self.repo.read_target(&name).await? else {
            return Err(VerifyError::NotListed { name: target.name.clone() });
        };
        let part = dest.with_extension("part");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VerifyError::Io { path, source }
        };
        let mut file = tokio::fs::File::create(&part).await.map_err(io(&part))?;
        let mut stream = Box::pin(stream);
        let result: Result<(), VerifyError> = async {
            while let Some(chunk) = next(&mut stream).await {
                file.write_all(&chunk?).await.map_err(io(&part))?;
            }
            file.sync_all().await.map_err(io(&part))
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, dest).await.map_err(io(dest))
    }

    /// Reads `target` into memory (policy bundles: small; the signed length bounds it).
    pub async fn read(&self, target: &ReleaseTarget) -> Result<Vec<u8>, VerifyError> {
        use tough::IntoVec;
        let name = TargetName::new(target.name.as_str())
            .map_err(|_| VerifyError::NotListed { name: target.name.clone() })?;
        let Some(stream) = self.repo.read_target(&name).await? else {
            return Err(VerifyError::NotListed { name: target.name.clone() });
        };
        Ok(stream.into_vec().await?)
    }
}

/// `StreamExt::next` without a futures dependency: tough's streams are `Unpin` once boxed.
mod futures_util_shim {
    use std::future::poll_fn;
    use std::pin::Pin;

    pub(super) async fn next<S: futures_core::Stream + ?Sized>(
        s: &mut Pin<Box<S>>,
    ) -> Option<S::Item> {
        poll_fn(|cx| s.as_mut().poll_next(cx)).await
    }
}
