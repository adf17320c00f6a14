//! The policy bundle as a release target: one JSON document holding the files of a policy
//! folder (`gateway policy export`): `policy.toml`, `profile.toml`, `terms.toml`.
//!
//! The hub packs a folder and stamps the release version into `policy.toml`'s `[deid]`
//! (`N` sets `version = N`; `id@N` sets `id` and `version`), so the version every manifest
//! carries is the release's. The box unpacks only a document that TUF verified.

use crate::target::ReleaseVersion;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The document's format tag.
pub const FORMAT: &str = "fgw-policy-bundle/1";
/// The files of a bundle, and only these.
pub const FILES: [&str; 3] = ["policy.toml", "profile.toml", "terms.toml"];
/// Largest file of a bundle.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// What is wrong with a policy folder or document. Names files and keys, never contents.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("policy bundle {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is missing, too large, not UTF-8, or not what its manifest says.
    #[error("policy bundle {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The release version cannot be a policy version.
    #[error("policy release version must be N or <policy id>@N (N a positive integer): it becomes deid.version in every manifest")]
    Version,
    /// The document is not a bundle of this format.
    #[error("policy bundle document: {0}")]
    Document(&'static str),
}

/// A policy release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBundle {
    /// [`FORMAT`].
    pub format: String,
    /// The release version it was published as.
    pub release: String,
    /// `deid.id` of its `policy.toml`.
    pub policy_id: String,
    /// `deid.version` of its `policy.toml`.
    pub policy_version: u32,
    /// File name → text, exactly [`FILES`].
    pub files: BTreeMap<String, String>,
}

/// (id, version) a release version stamps, given the folder's id.
fn stamp(release: &ReleaseVersion, folder_id: &str) -> Result<(String, u32), BundleError> {
    let s = release.as_str();
    let (id, n) = match s.split_once('@') {
        Some((id, n)) => (id.to_string(), n),
        None => (folder_id.to_string(), s),
    };
    let n: u32 = n.parse().map_err(|_| BundleError::Version)?;
    if n == 0 || id.is_empty() {
        return Err(BundleError::Version);
    }
    Ok((id, n))
}

impl PolicyBundle {
    /// Packs the policy folder `dir` as release `release`.
    pub fn from_dir(dir: &Path, release: &ReleaseVersion) -> Result<PolicyBundle, BundleError> {
        let mut files = BTreeMap::new();
        for name in FILES {
            let path = dir.join(name);
            let meta = std::fs::metadata(&path)
                .map_err(|source| BundleError::Io { path: path.clone(), source })?;
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                return Err(BundleError::File { path, reason: "not a file of at most 1 MiB" });
            }
            let bytes = std::fs::read(&path)
                .map_err(|source| BundleError::Io { path: path.clone(), source })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| BundleError::File { path: path.clone(), reason: "not UTF-8" })?;
            files.insert(name.to_string(), text);
        }
        let policy_path = dir.join("policy.toml");
        let bad_policy = || BundleError::File {
            path: policy_path.clone(),
            reason: "not a TOML document with a [deid] table holding id",
        };
        let mut doc: toml::Table = files["policy.toml"].parse().map_err(|_| bad_policy())?;
        let deid = doc.get_mut("deid").and_then(|d| d.as_table_mut()).ok_or_else(bad_policy)?;
        let folder_id = deid.get("id").and_then(|v| v.as_str()).ok_or_else(bad_policy)?;
        let (id, version) = stamp(release, folder_id)?;
        deid.insert("id".into(), toml::Value::String(id.clone()));
        deid.insert("version".into(), toml::Value::Integer(version.into()));
        let text = toml::to_string(&doc).map_err(|_| bad_policy())?;
        files.insert("policy.toml".into(), text);
        Ok(PolicyBundle {
            format: FORMAT.into(),
            release: release.as_str().into(),
            policy_id: id,
            policy_version: version,
            files,
        })
    }

    /// The document's bytes (a release target).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a bundle serializes")
    }

    /// Reads a document (already verified by TUF) and checks its shape.
    pub fn parse(bytes: &[u8]) -> Result<PolicyBundle, BundleError> {
        let b: PolicyBundle =
            serde_json::from_slice(bytes).map_err(|_| BundleError::Document("not a bundle"))?;
        if b.format != FORMAT {
            return Err(BundleError::Document("unknown format"));
        }
        let names: Vec<&str> = b.files.keys().map(String::as_str).collect();
        let mut expected = FILES.to_vec();
        expected.sort_unstable();
        if names != expected {
            return Err(BundleError::Document(
                "files are not policy.toml, profile.toml, terms.toml",
            ));
        }
        Ok(b)
    }

    /// Writes the files into `dir` (which must not exist yet).
    pub fn write_dir(&self, dir: &Path) -> Result<(), BundleError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, text) in &self.files {
            let path = dir.join(name);
            fgw_format::durable::write_atomic(&path, text.as_bytes()).map_err(io(&path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(dir: &Path) {
        std::fs::write(dir.join("policy.toml"), "[deid]\nid = \"jed-basic\"\nversion = 1\n")
            .unwrap();
        std::fs::write(dir.join("profile.toml"), "id = \"p\"\n").unwrap();
        std::fs::write(dir.join("terms.toml"), "version = \"t\"\n").unwrap();
    }

    #[test]
    fn the_release_version_is_stamped_into_the_policy() {
        let d = tempfile::tempdir().unwrap();
        folder(d.path());
        let b = PolicyBundle::from_dir(d.path(), &ReleaseVersion::new("2").unwrap()).unwrap();
        assert_eq!((b.policy_id.as_str(), b.policy_version), ("jed-basic", 2));
        assert!(b.files["policy.toml"].contains("version = 2"));
        let b = PolicyBundle::from_dir(d.path(), &ReleaseVersion::new("jed-x@7").unwrap()).unwrap();
        assert_eq!((b.policy_id.as_str(), b.policy_version), ("jed-x", 7));
        let back = PolicyBundle::parse(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
        for bad in ["1.2", "x@0", "abc", "@3"] {
            let r = PolicyBundle::from_dir(
                d.path(),
                &ReleaseVersion::new(bad).unwrap_or_else(|_| ReleaseVersion::new("a").unwrap()),
            );
            assert!(matches!(r, Err(BundleError::Version)), "{bad}");
        }
    }

    #[test]
    fn a_document_with_other_files_is_refused() {
        let d = tempfile::tempdir().unwrap();
        folder(d.path());
        let mut b = PolicyBundle::from_dir(d.path(), &ReleaseVersion::new("2").unwrap()).unwrap();
        b.files.insert("../../etc/passwd".into(), "x".into());
        assert!(PolicyBundle::parse(&b.to_bytes()).is_err());
        std::fs::remove_file(d.path().join("terms.toml")).unwrap();
        assert!(PolicyBundle::from_dir(d.path(), &ReleaseVersion::new("2").unwrap()).is_err());
    }
}
