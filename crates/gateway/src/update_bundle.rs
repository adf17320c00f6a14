//! OS update bundles (issue 13): RAUC bundles, checked before anything is staged.
//!
//! A bundle is RAUC's `verity` format: a squashfs of the images with a manifest
//! (`compatible`, `version`, the images and the dm-verity root hash), signed (CMS) by the
//! society's update signing key. The box trusts one keyring, baked into its image
//! (`[update] keyring`). [`verify`] asks Debian's `rauc` (`rauc info --keyring`): the
//! signature must chain to the keyring and the bundle must be for this hardware
//! (`[update] compatible`); anything else is refused with rauc's reason. The payload's
//! integrity is checked twice more on the way in: the TUF target hash of the whole file
//! before it is used, and dm-verity while RAUC installs it.
//!
//! Why RAUC's own tool rather than parsing CMS here: it is the component that will install
//! the bundle, so "verified" means exactly what the installer accepts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `[update]` of `gateway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// The update signing CA (PEM): the only signer of bundles this box installs. Default
    /// `/etc/rauc/keyring.pem`, as RAUC's own system configuration names it.
    #[serde(default = "default_keyring")]
    pub keyring: PathBuf,
    /// RAUC's `compatible` string of this hardware; a bundle for anything else is refused.
    /// Default `fgw-gateway-x86_64`.
    #[serde(default = "default_compatible")]
    pub compatible: String,
    /// The TUF root this box trusts: baked into the image (`hub release root`). Default
    /// `/usr/share/facility-gateway/tuf-root.json`. Without it the box installs no release.
    #[serde(default = "default_tuf_root")]
    pub tuf_root: PathBuf,
    /// `auto`: ask the hub every `check_secs` and apply what its rollout offers (default);
    /// `off`: only `gateway update check` / `apply` by hand.
    #[serde(default)]
    pub mode: UpdateMode,
    /// Seconds between checks. Default 900; 10 ..= 86400.
    #[serde(default = "default_check_secs")]
    pub check_secs: u64,
    /// What the box does with a verified OS bundle: `stage` (keep it and report it; the
    /// default where RAUC has no system configuration) or `rauc` (install it to the other
    /// slot and reboot inside the maintenance window).
    #[serde(default)]
    pub os_install: OsInstall,
    /// Local time window for OS installs and reboots, `HH:MM-HH:MM` (may wrap midnight).
    /// Default `02:00-05:00`.
    #[serde(default = "default_window")]
    pub maintenance_window: String,
}

/// `[update] mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// Follow the hub's rollouts.
    #[default]
    Auto,
    /// Never by itself.
    Off,
}

/// `[update] os_install`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsInstall {
    /// Verify and keep; report `staged`.
    #[default]
    Stage,
    /// `rauc install`, then reboot, in the maintenance window.
    Rauc,
}

fn default_tuf_root() -> PathBuf {
    "/usr/share/facility-gateway/tuf-root.json".into()
}
fn default_check_secs() -> u64 {
    900
}
fn default_window() -> String {
    "02:00-05:00".into()
}

/// Parses `HH:MM-HH:MM` into minutes of the day (start, end).
pub fn parse_window(s: &str) -> Option<(u32, u32)> {
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (a, b) = s.split_once('-')?;
    Some((minutes(a)?, minutes(b)?))
}

/// Whether `minute` (of the day) is inside the window (start inclusive, end exclusive; a
/// window whose end is before its start wraps midnight).
pub fn in_window(window: (u32, u32), minute: u32) -> bool {
    let (a, b) = window;
    if a <= b {
        (a..b).contains(&minute)
    } else {
        minute >= a || minute < b
    }
}

fn default_keyring() -> PathBuf {
    "/etc/rauc/keyring.pem".into()
}
fn default_compatible() -> String {
    "fgw-gateway-x86_64".into()
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings {
            keyring: default_keyring(),
            compatible: default_compatible(),
            tuf_root: default_tuf_root(),
            mode: UpdateMode::default(),
            check_secs: default_check_secs(),
            os_install: OsInstall::default(),
            maintenance_window: default_window(),
        }
    }
}

impl UpdateSettings {
    /// Makes a relative keyring path relative to `base` (the config file's folder).
    pub fn resolve_relative(&mut self, base: &Path) {
        for p in [&mut self.keyring, &mut self.tuf_root] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Error: (key, what is allowed).
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let ok = (1..=64).contains(&self.compatible.len())
            && self.compatible.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(("update.compatible", "1 to 64 of A-Z a-z 0-9 - _ ."));
        }
        if !(10..=86_400).contains(&self.check_secs) {
            return Err(("update.check_secs", "an integer from 10 to 86400"));
        }
        if parse_window(&self.maintenance_window).is_none() {
            return Err(("update.maintenance_window", "HH:MM-HH:MM"));
        }
        Ok(())
    }
}

/// Why a bundle was refused. Names the file; rauc's own words for signature problems.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// `rauc` could not be run.
    #[error("update bundle {path}: cannot run rauc: {source} (install Debian's rauc)")]
    Spawn {
        /// The bundle.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// rauc refused the bundle: not a bundle, a signature that does not verify with the
    /// keyring, a damaged signature area.
    #[error("update bundle {path}: refused by rauc: {reason}")]
    Refused {
        /// The bundle.
        path: PathBuf,
        /// rauc's message (its last lines).
        reason: String,
    },
    /// Signed, but for other hardware.
    #[error("update bundle {path}: for {found:?}, this box is {expected:?}")]
    Incompatible {
        /// The bundle.
        path: PathBuf,
        /// This box's `compatible`.
        expected: String,
        /// The bundle's.
        found: String,
    },
    /// rauc answered something that is not its JSON.
    #[error("update bundle {path}: rauc's answer is not the expected JSON")]
    Answer {
        /// The bundle.
        path: PathBuf,
    },
}

/// What a verified bundle is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleInfo {
    /// Its `compatible` (this box's).
    pub compatible: String,
    /// Its version.
    pub version: String,
    /// The images it holds, by slot class.
    pub images: Vec<String>,
}

/// Checks `bundle` with rauc against `settings`' keyring and compatible.
pub fn verify(settings: &UpdateSettings, bundle: &Path) -> Result<BundleInfo, BundleError> {
    let path = bundle.to_path_buf();
    let out = Command::new("rauc")
        .arg("info")
        .arg("--keyring")
        .arg(&settings.keyring)
        .arg("--output-format=json")
        .arg(bundle)
        .output()
        .map_err(|source| BundleError::Spawn { path: path.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let reason = lines[lines.len().saturating_sub(2)..].join(" / ");
        return Err(BundleError::Refused { path, reason: reason.chars().take(400).collect() });
    }
    #[derive(Deserialize)]
    struct Info {
        compatible: String,
        version: Option<String>,
        #[serde(default)]
        images: Vec<std::collections::BTreeMap<String, serde_json::Value>>,
    }
    let info: Info = serde_json::from_slice(&out.stdout)
        .map_err(|_| BundleError::Answer { path: path.clone() })?;
    if info.compatible != settings.compatible {
        return Err(BundleError::Incompatible {
            path,
            expected: settings.compatible.clone(),
            found: info.compatible.chars().take(64).collect(),
        });
    }
    Ok(BundleInfo {
        compatible: info.compatible,
        version: info.version.unwrap_or_default(),
        images: info.images.iter().flat_map(|m| m.keys().cloned()).collect(),
    })
}
