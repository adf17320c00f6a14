//! What a release is: its kind, version and file name in the repository.

use serde::{Deserialize, Serialize};

/// What a release carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseKind {
    /// A policy bundle: de-identification policy, vendor profile, term lists (applied without
    /// a reboot).
    Policy,
    /// An OS update bundle (RAUC), installed to the inactive slot.
    Os,
}

impl ReleaseKind {
    /// `policy` or `os`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Policy => "policy",
            ReleaseKind::Os => "os",
        }
    }

    /// The file extension of its target.
    fn extension(self) -> &'static str {
        match self {
            ReleaseKind::Policy => "json",
            ReleaseKind::Os => "raucb",
        }
    }
}

impl std::str::FromStr for ReleaseKind {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<ReleaseKind, VersionError> {
        match s {
            "policy" => Ok(ReleaseKind::Policy),
            "os" => Ok(ReleaseKind::Os),
            _ => Err(VersionError::Kind),
        }
    }
}

impl std::fmt::Display for ReleaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed release kind or version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not `policy` or `os`.
    #[error("release kind must be policy or os")]
    Kind,
    /// Not a version.
    #[error("release version must be 1 to 64 characters of A-Z a-z 0-9 . _ + - @, starting with a letter or digit")]
    Version,
    /// A target name that is not `<kind>-<version>.<ext>`.
    #[error("target name is not <kind>-<version>.<json|raucb>")]
    TargetName,
}

/// A release version: `1.4.0`, `jed-basic@4`. It becomes part of a file name, so its alphabet
/// is small and it cannot name a folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseVersion(String);

impl ReleaseVersion {
    /// Checks `s`.
    pub fn new(s: &str) -> Result<ReleaseVersion, VersionError> {
        let ok = (1..=64).contains(&s.len())
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-@".contains(&b));
        if ok {
            Ok(ReleaseVersion(s.to_string()))
        } else {
            Err(VersionError::Version)
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReleaseVersion {
    type Error = VersionError;
    fn try_from(s: String) -> Result<ReleaseVersion, VersionError> {
        ReleaseVersion::new(&s)
    }
}

impl From<ReleaseVersion> for String {
    fn from(v: ReleaseVersion) -> String {
        v.0
    }
}

impl std::fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One target of the repository, as the signed targets metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseTarget {
    /// Policy or OS.
    pub kind: ReleaseKind,
    /// Its version.
    pub version: ReleaseVersion,
    /// Its file name in the repository.
    pub name: String,
    /// Its SHA-256 (hex), signed.
    pub sha256: String,
    /// Its length in bytes, signed.
    pub length: u64,
}

impl ReleaseTarget {
    /// The target file name of a release.
    pub fn file_name(kind: ReleaseKind, version: &ReleaseVersion) -> String {
        format!("{}-{}.{}", kind.as_str(), version, kind.extension())
    }

    /// Kind and version from a target file name.
    pub fn parse_name(name: &str) -> Result<(ReleaseKind, ReleaseVersion), VersionError> {
        for kind in [ReleaseKind::Policy, ReleaseKind::Os] {
            let rest = name.strip_prefix(kind.as_str()).and_then(|r| r.strip_prefix('-'));
            let rest = rest.and_then(|r| r.strip_suffix(kind.extension()));
            if let Some(v) = rest.and_then(|r| r.strip_suffix('.')) {
                return Ok((kind, ReleaseVersion::new(v)?));
            }
        }
        Err(VersionError::TargetName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_file_name_safe() {
        for good in ["1", "1.4.0", "jed-basic@4", "2026.12+b1"] {
            assert!(ReleaseVersion::new(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", &"9".repeat(65)] {
            assert_eq!(ReleaseVersion::new(bad), Err(VersionError::Version), "{bad}");
        }
    }

    #[test]
    fn target_names_round_trip() {
        let v = ReleaseVersion::new("jed-basic@4").unwrap();
        let name = ReleaseTarget::file_name(ReleaseKind::Policy, &v);
        assert_eq!(name, "policy-jed-basic@4.json");
        assert_eq!(ReleaseTarget::parse_name(&name).unwrap(), (ReleaseKind::Policy, v));
        let os = ReleaseTarget::file_name(ReleaseKind::Os, &ReleaseVersion::new("1.2").unwrap());
        assert_eq!(ReleaseTarget::parse_name(&os).unwrap().0, ReleaseKind::Os);
        assert!(ReleaseTarget::parse_name("os-1.2.json").is_err());
        assert!(ReleaseTarget::parse_name("other-1.raucb").is_err());
    }
}
