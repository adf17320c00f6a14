//! Releases (issue 13): the hub's TUF repository of OS update bundles and policy bundles.
//!
//! `hub release publish` packs a policy folder (or takes an OS bundle file), adds it as a
//! target and signs targets, snapshot and timestamp ([`fgw_release::Repository`]); the
//! hub serves the repository to devices under `/v1/tuf/` and re-signs snapshot and
//! timestamp by itself before the timestamp expires ([`refresh_if_due`]). The repository
//! and its keys are made at `hub init` (or at the first publish or start).

use crate::store::{ReleaseRecord, StoreError};
use crate::HubConfig;
use fgw_release::bundle::{BundleError, PolicyBundle};
use fgw_release::keys::{KeyError, KeySet};
use fgw_release::{
    Expiry, PublishError, ReleaseKind, ReleaseTarget, ReleaseVersion, Repository, Thresholds,
};
use std::path::{Path, PathBuf};

/// Why a release could not be made or served.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Signing or writing the repository failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The policy folder is not a bundle.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An OS bundle path that is not a readable file.
    #[error("release {path}: {reason}")]
    Source {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Where the repository and its keys are.
#[derive(Debug, Clone)]
pub struct ReleasePaths {
    /// The repository folder.
    pub repo: PathBuf,
    /// The key folder.
    pub keys: PathBuf,
    /// Where the targets key is when it is not in `keys` (the release machine's medium).
    pub targets_keys: Option<PathBuf>,
}

impl ReleasePaths {
    /// From `[releases]`.
    pub fn of(cfg: &HubConfig) -> ReleasePaths {
        ReleasePaths {
            repo: cfg.release_repo_dir(),
            keys: cfg.release_keys_dir(),
            targets_keys: None,
        }
    }

    fn key_set(&self) -> KeySet {
        let mut keys = KeySet::in_dir(&self.keys);
        if let Some(dir) = &self.targets_keys {
            keys.targets = KeySet::in_dir(dir).targets;
        }
        keys
    }
}

/// The repository, made with new keys (one per role) if it does not exist.
pub async fn ensure_repository(paths: &ReleasePaths) -> Result<Repository, ReleaseError> {
    let repo = Repository::open(&paths.repo);
    if repo.is_initialized() {
        return Ok(repo);
    }
    let keys = paths.key_set();
    keys.generate_missing()?;
    tracing::info!(repo = %paths.repo.display(), keys = %paths.keys.display(), "release repository created");
    Ok(Repository::init(&paths.repo, &keys, Thresholds::default(), Expiry::default()).await?)
}

/// Publishes `source` (a policy folder, or an OS bundle file) as release `version` of
/// `kind`; the caller records the returned release in the metadata store (synchronous:
/// outside the async context, as the PostgreSQL driver requires).
pub async fn publish(
    paths: &ReleasePaths,
    kind: ReleaseKind,
    version: &ReleaseVersion,
    source: &Path,
) -> Result<ReleaseRecord, ReleaseError> {
    let repo = ensure_repository(paths).await?;
    let keys = paths.key_set();
    let expiry = Expiry::default();
    let target = match kind {
        ReleaseKind::Policy => {
            if !source.is_dir() {
                return Err(ReleaseError::Source {
                    path: source.to_path_buf(),
                    reason: "a policy release is a folder (gateway policy export)",
                });
            }
            let bundle = PolicyBundle::from_dir(source, version)?;
            repo.publish_bytes(&keys, kind, version, &bundle.to_bytes(), expiry).await?
        }
        ReleaseKind::Os => {
            if !source.is_file() {
                return Err(ReleaseError::Source {
                    path: source.to_path_buf(),
                    reason: "an OS release is a RAUC bundle file",
                });
            }
            repo.publish(&keys, kind, version, source, expiry).await?
        }
    };
    Ok(record_of(&target))
}

fn record_of(t: &ReleaseTarget) -> ReleaseRecord {
    ReleaseRecord {
        kind: t.kind.as_str().into(),
        version: t.version.as_str().into(),
        target: t.name.clone(),
        sha256: t.sha256.clone(),
        length: t.length,
        published_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// Re-signs snapshot and timestamp when less than half of the timestamp's life is left.
/// Returns whether it did.
pub async fn refresh_if_due(paths: &ReleasePaths) -> Result<bool, ReleaseError> {
    let repo = Repository::open(&paths.repo);
    if !repo.is_initialized() {
        return Ok(false);
    }
    let expires = repo.timestamp_expires()?;
    let half = Expiry::default().timestamp / 2;
    let left = expires.duration_since(jiff::Timestamp::now());
    if left > jiff::SignedDuration::try_from(half).unwrap_or(jiff::SignedDuration::ZERO) {
        return Ok(false);
    }
    repo.refresh(&paths.key_set(), Expiry::default()).await?;
    tracing::info!("release metadata re-signed (snapshot, timestamp)");
    Ok(true)
}

/// Which file of the repository a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoFile {
    /// A metadata file.
    Metadata,
    /// A target.
    Target,
}

/// The path of `name` under the repository, if `name` is a file the repository serves:
/// `N.root.json`, `root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, or a
/// release target name. Nothing else (no folder, no dot file) is ever opened.
pub(crate) fn served_path(paths: &ReleasePaths, kind: RepoFile, name: &str) -> Option<PathBuf> {
    match kind {
        RepoFile::Metadata => {
            let role = match name.split_once('.') {
                Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
                _ => name,
            };
            ["root.json", "timestamp.json", "snapshot.json", "targets.json"]
                .contains(&role)
                .then(|| paths.repo.join(fgw_release::METADATA_DIR).join(name))
        }
        RepoFile::Target => ReleaseTarget::parse_name(name)
            .ok()
            .map(|_| paths.repo.join(fgw_release::TARGETS_DIR).join(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_repository_files_are_served() {
        let paths = ReleasePaths { repo: "/r".into(), keys: "/k".into(), targets_keys: None };
        let m = |n| served_path(&paths, RepoFile::Metadata, n);
        assert_eq!(m("timestamp.json"), Some("/r/metadata/timestamp.json".into()));
        assert_eq!(m("2.root.json"), Some("/r/metadata/2.root.json".into()));
        for bad in ["../keys/root.pk8", "x.json", ".root.json", "a.root.json", "root.json/..", ""] {
            assert_eq!(m(bad), None, "{bad}");
        }
        let t = |n| served_path(&paths, RepoFile::Target, n);
        assert_eq!(t("policy-2.json"), Some("/r/targets/policy-2.json".into()));
        for bad in ["../metadata/root.json", "policy-../x.json", "os-1.json", ".packing-1"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
