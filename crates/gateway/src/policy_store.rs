//! Policy releases on the box (issue 13): applied atomically, without a reboot, and only
//! after a self-test.
//!
//! Layout under `<state_dir>/policy/`:
//! - `releases/<release>/`: `policy.toml`, `profile.toml`, `terms.toml` of a release that
//!   passed its self-test;
//! - `current`: the name of the release in force, replaced by rename (one atomic step: the
//!   policy in force is the old one or the new one, never a mix, across power cuts too).
//!
//! The self-test de-identifies a built-in exam full of planted identifiers under the new
//! policy and profile: it must come out as a package (not quarantined) holding none of them.
//! A release that fails is never made current; the box keeps its policy and reports the
//! failure (the rollout counts it).
//!
//! Term lists are compiled into the gateway: a release whose `terms.toml` differs from the
//! box's fails its self-test (term lists change with an OS release).

use crate::config::GatewayConfig;
use fgw_deid::pixels::PixelStage;
use fgw_deid::{DeidContext, DeidOutcome, Policy, Pseudonymizer};
use fgw_format::ids::FacilityId;
use fgw_records::profile::Profile;
use fgw_records::{Column, RawExam};
use fgw_release::bundle::PolicyBundle;
use std::path::{Path, PathBuf};

/// Why a policy release could not be applied or read. Names files and checks, never data.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    /// Reading or writing a file failed.
    #[error("policy store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file of the release is not what it must be.
    #[error("policy release {release}: {file}: {reason}")]
    Invalid {
        /// The release.
        release: String,
        /// The file.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The self-test failed: the release is not applied.
    #[error("policy release {release}: self-test failed: {check}")]
    SelfTest {
        /// The release.
        release: String,
        /// Which check (a code and a field name; never a planted value).
        check: String,
    },
    /// The bundle files.
    #[error(transparent)]
    Bundle(#[from] fgw_release::bundle::BundleError),
}

/// `<state_dir>/policy`.
pub fn policy_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("policy")
}

fn current_file(state_dir: &Path) -> PathBuf {
    policy_dir(state_dir).join("current")
}

fn release_dir(state_dir: &Path, release: &str) -> PathBuf {
    policy_dir(state_dir).join("releases").join(release)
}

/// The release in force, if one was applied.
pub fn current_release(state_dir: &Path) -> Result<Option<String>, PolicyStoreError> {
    let path = current_file(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyStoreError::Io { path, source }),
    }
}

/// A release's policy and profile, read and checked.
struct Loaded {
    policy: Policy,
    profile: Profile,
    profile_path: PathBuf,
}

fn load_release(dir: &Path, release: &str) -> Result<Loaded, PolicyStoreError> {
    let invalid = |file, reason: String| PolicyStoreError::Invalid {
        release: release.to_string(),
        file,
        reason,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| PolicyStoreError::Io { path, source })
    };
    #[derive(serde::Deserialize)]
    struct DeidTable {
        deid: Policy,
    }
    let policy: DeidTable = toml::from_str(&read("policy.toml")?)
        .map_err(|e| invalid("policy.toml", e.message().to_string()))?;
    let profile_path = dir.join("profile.toml");
    let profile =
        Profile::load(&profile_path).map_err(|e| invalid("profile.toml", e.to_string()))?;
    if read("terms.toml")? != fgw_records::terms::embedded_source() {
        return Err(PolicyStoreError::SelfTest {
            release: release.to_string(),
            check: "terms_differ_from_the_box_term_list".into(),
        });
    }
    Ok(Loaded { policy: policy.deid, profile, profile_path })
}

/// Puts the applied release (if any) in force in `cfg`: its `[deid]` policy and its vendor
/// profile. A release that cannot be read is logged and the configuration's own policy
/// stays (the heartbeat then shows that version to the society).
pub fn overlay(cfg: &mut GatewayConfig) -> Option<String> {
    let release = match current_release(&cfg.state_dir) {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(error = %e, "applied policy unreadable; the configuration's policy is in force");
            return None;
        }
    };
    match load_release(&release_dir(&cfg.state_dir, &release), &release) {
        Ok(l) => {
            cfg.deid = l.policy;
            cfg.export.mapping = l.profile;
            cfg.export.profile = l.profile_path.display().to_string();
            Some(release)
        }
        Err(e) => {
            tracing::error!(error = %e, "applied policy unreadable; the configuration's policy is in force");
            None
        }
    }
}

/// The planted identifiers of the self-test exam, and where they sit.
const PLANTED: &[(Column, &str)] = &[
    (Column::PatientId, "8641357"),
    (Column::PatientName, "検証 花子"),
    (Column::PatientKana, "ケンショウ ハナコ"),
    (Column::BirthDate, "1951-03-17"),
    (Column::Address, "東京都千代田区永田町9-8-7"),
    (Column::Phone, "03-9876-5432"),
    (Column::ReferringPhysician, "試験 一郎"),
    (Column::Operator, "確認 次郎"),
];

/// Forms of the planted values that must not appear in any byte of the package.
const MUST_NOT_APPEAR: &[&str] = &[
    "8641357",
    "検証",
    "花子",
    "ケンショウ",
    "ハナコ",
    "1951-03-17",
    "19510317",
    "永田町",
    "9876-5432",
    "98765432",
    "試験 一郎",
    "確認 次郎",
];

fn self_test_exam() -> RawExam {
    let mut fields: Vec<(Column, &str)> = PLANTED.to_vec();
    fields.extend([
        (Column::ExamId, "SELFTEST-0001"),
        (Column::Sex, "F"),
        (Column::ExamDate, "2026-01-15"),
        (Column::ExamType, "上部消化管内視鏡"),
        (Column::Findings, "検証花子様。胃体部に潰瘍。連絡先 03-9876-5432、ID 8641357。"),
        (Column::Comment, "ケンショウ ハナコ 様 1951-03-17生 永田町在住"),
    ]);
    let mut exam = RawExam::with_fields(&fields);
    // A column the reference layout does not have, carrying the patient's identifiers: a
    // policy that keeps it must still scrub them.
    exam.extra.insert("備考2".into(), "検証 花子 (ID 8641357) 03-9876-5432".into());
    exam
}

/// De-identifies the planted exam under `policy` (profile id `profile`); Err names the
/// failed check.
pub fn self_test(policy: &Policy, profile: &str) -> Result<(), String> {
    let facility = FacilityId::new("SELFTEST").map_err(|_| "facility".to_string())?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fgw policy self-test key");
    let pseudonymizer = Pseudonymizer::new(key);
    let pixels = PixelStage::new(policy.pixels.clone());
    let ctx = DeidContext {
        facility: &facility,
        pseudonymizer: &pseudonymizer,
        policy,
        profile,
        revision: 1,
        pixels: &pixels,
    };
    let package = match fgw_deid::deidentify_exam(&self_test_exam(), &ctx) {
        DeidOutcome::Package { package, .. } => package,
        DeidOutcome::Quarantined { reason } => {
            return Err(format!("planted_exam_quarantined:{}", reason.code()));
        }
    };
    let mut bytes = package.manifest_bytes().to_vec();
    for (_, b) in package.files() {
        bytes.extend_from_slice(b);
    }
    let text = String::from_utf8_lossy(&bytes);
    for (i, planted) in MUST_NOT_APPEAR.iter().enumerate() {
        if text.contains(planted) {
            return Err(format!("planted_identifier_{i}_in_package"));
        }
    }
    Ok(())
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The release now in force.
    pub release: String,
    /// `<id>@<version>` of its policy.
    pub policy_version: String,
}

/// Writes `bundle` (verified by TUF) as a release, self-tests it, then makes it current
/// with one rename. On any failure the policy in force does not change.
pub fn apply(state_dir: &Path, bundle: &PolicyBundle) -> Result<Applied, PolicyStoreError> {
    let release = fgw_release::ReleaseVersion::new(&bundle.release)
        .map_err(|e| PolicyStoreError::Invalid {
            release: "?".into(),
            file: "bundle",
            reason: e.to_string(),
        })?
        .to_string();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyStoreError::Io { path, source }
    };
    let dir = release_dir(state_dir, &release);
    let staging = dir.with_extension("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    bundle.write_dir(&staging)?;
    let tested = load_release(&staging, &release).and_then(|l| {
        self_test(&l.policy, &l.profile.id)
            .map(|()| l)
            .map_err(|check| PolicyStoreError::SelfTest { release: release.clone(), check })
    });
    let loaded = match tested {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    // The release's folder is durable before the pointer names it.
    let releases = dir.parent().unwrap_or(state_dir);
    fgw_format::durable::fsync_dir(releases).map_err(io(releases))?;
    let current = current_file(state_dir);
    fgw_format::durable::write_atomic(&current, format!("{release}\n").as_bytes())
        .map_err(io(&current))?;
    Ok(Applied {
        release,
        policy_version: format!("{}@{}", loaded.policy.id, loaded.policy.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(release: &str, policy_toml: &str) -> PolicyBundle {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("policy.toml"), policy_toml).unwrap();
        std::fs::write(
            d.path().join("profile.toml"),
            fgw_records::profile::Profile::builtin_source("reference").unwrap(),
        )
        .unwrap();
        std::fs::write(d.path().join("terms.toml"), fgw_records::terms::embedded_source()).unwrap();
        PolicyBundle::from_dir(d.path(), &fgw_release::ReleaseVersion::new(release).unwrap())
            .unwrap()
    }

    #[test]
    fn the_default_policy_passes_its_self_test() {
        fgw_deid::text::analyser_ready().unwrap();
        self_test(&Policy::default(), "reference").unwrap();
        let keep = Policy { keep_extra_columns: vec!["備考2".into()], ..Policy::default() };
        // Keeping a column outside the layout still scrubs the patient's identifiers in it.
        self_test(&keep, "reference").unwrap();
    }

    #[test]
    fn a_good_release_becomes_current_and_a_failing_one_changes_nothing() {
        fgw_deid::text::analyser_ready().unwrap();
        let d = tempfile::tempdir().unwrap();
        let good = bundle("2", "[deid]\nid = \"jed-basic\"\nversion = 1\n");
        let done = apply(d.path(), &good).unwrap();
        assert_eq!(done.policy_version, "jed-basic@2");
        assert_eq!(current_release(d.path()).unwrap().as_deref(), Some("2"));
        // A release whose terms differ from the box's fails and leaves release 2 in force.
        let mut bad = bundle("3", "[deid]\nid = \"jed-basic\"\nversion = 1\n");
        bad.files.insert("terms.toml".into(), "version = \"other\"\n".into());
        let e = apply(d.path(), &bad).unwrap_err();
        assert!(matches!(e, PolicyStoreError::SelfTest { .. }), "{e}");
        assert_eq!(current_release(d.path()).unwrap().as_deref(), Some("2"));
        assert!(!release_dir(d.path(), "3").exists());
        assert!(!release_dir(d.path(), "3").with_extension("staging").exists());
        // An unparseable policy too.
        let bad = bundle("4", "[deid]\nid = \"jed-basic\"\nfree_text = \"keep-everything\"\n");
        assert!(apply(d.path(), &bad).is_err());
        assert_eq!(current_release(d.path()).unwrap().as_deref(), Some("2"));
    }
}
