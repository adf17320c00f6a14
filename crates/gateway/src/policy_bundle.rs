//! The box's active policy as files (issue 13): what `gateway policy export DIR` writes and
//! what a policy release is made from (`hub release publish --kind policy DIR`).
//!
//! A policy bundle is a folder:
//! - `policy.toml`: the `[deid]` table in force (id, version and every choice of the gate);
//! - `profile.toml`: the vendor mapping profile in force (the built-in's text, or the
//!   configured file's);
//! - `terms.toml`: the JED term lists the gate and the records use;
//! - `bundle.json`: kind, policy id and version, and the SHA-256 of each file above, written
//!   last (a folder without it is not a bundle).
//!
//! Nothing of an exam is in it: these are the box's rules, the same on every box that runs
//! this policy.

use crate::config::GatewayConfig;
use fgw_format::ids::Sha256Hex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest file of a bundle.
pub const BUNDLE_FILE: &str = "bundle.json";

/// Why the policy could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum PolicyBundleError {
    /// The output folder exists and is not empty: an export never writes over another.
    #[error("policy export: {path} already exists and is not empty")]
    Exists {
        /// The folder.
        path: PathBuf,
    },
    /// Reading the profile or writing a file failed.
    #[error("policy export: {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The `[deid]` table could not be written as TOML.
    #[error("policy export: the [deid] table cannot be written as TOML: {0}")]
    Toml(String),
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always `policy`.
    pub kind: String,
    /// `deid.id`.
    pub policy_id: String,
    /// `deid.version`.
    pub version: u32,
    /// File name → SHA-256 of its bytes.
    pub files: BTreeMap<String, Sha256Hex>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Its manifest.
    pub manifest: BundleManifest,
    /// The folder.
    pub dir: PathBuf,
}

/// The active vendor profile's text: a built-in's, or the file `setting` names relative to
/// the configuration's folder `config_dir`.
fn profile_text(setting: &str, config_dir: &Path) -> Result<String, PolicyBundleError> {
    if let Some(text) = fgw_records::profile::Profile::builtin_source(setting) {
        return Ok(text.to_string());
    }
    let path = config_dir.join(setting);
    std::fs::read_to_string(&path).map_err(|source| PolicyBundleError::Io { path, source })
}

/// Writes the policy in force for `cfg` (whose file is in `config_dir`) into `out`, a new or
/// empty folder.
pub fn export(
    cfg: &GatewayConfig,
    config_dir: &Path,
    out: &Path,
) -> Result<Exported, PolicyBundleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyBundleError::Io { path, source }
    };
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(PolicyBundleError::Exists { path: out.to_path_buf() });
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    #[derive(Serialize)]
    struct DeidTable<'a> {
        deid: &'a fgw_deid::Policy,
    }
    let policy = toml::to_string(&DeidTable { deid: &cfg.deid })
        .map_err(|e| PolicyBundleError::Toml(e.to_string()))?;
    let files = [
        ("policy.toml", policy),
        ("profile.toml", profile_text(&cfg.export.profile, config_dir)?),
        ("terms.toml", fgw_records::terms::embedded_source().to_string()),
    ];
    let mut hashes = BTreeMap::new();
    for (name, text) in &files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        hashes.insert((*name).to_string(), Sha256Hex::of(text.as_bytes()));
    }
    let manifest = BundleManifest {
        kind: "policy".into(),
        policy_id: cfg.deid.id.clone(),
        version: cfg.deid.version,
        files: hashes,
    };
    let path = out.join(BUNDLE_FILE);
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(&path, json + "\n").map_err(io(&path))?;
    Ok(Exported { manifest, dir: out.to_path_buf() })
}

/// What `gateway policy show --json` prints.
pub fn show(cfg: &GatewayConfig) -> serde_json::Value {
    let release = crate::policy_store::current_release(&cfg.state_dir).ok().flatten();
    serde_json::json!({
        "id": cfg.deid.id,
        "version": cfg.deid.version,
        "profile": cfg.export.mapping.id,
        // The policy release applied from the hub (issue 13), or the configuration's own.
        "release": release,
        "source": if release.is_some() { "release" } else { "gateway.toml" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> GatewayConfig {
        let text = format!(
            "facility_id = \"F1\"\nstate_dir = \"{}\"\n[deid]\nid = \"jed-basic\"\nversion = 3\n",
            dir.join("state").display()
        );
        GatewayConfig::from_toml(&dir.join("gateway.toml"), &text).unwrap()
    }

    #[test]
    fn the_export_holds_the_policy_profile_and_terms_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        let out = d.path().join("bundle");
        let done = export(&cfg, d.path(), &out).unwrap();
        assert_eq!((done.manifest.policy_id.as_str(), done.manifest.version), ("jed-basic", 3));
        let names: Vec<&str> = done.manifest.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["policy.toml", "profile.toml", "terms.toml"]);
        for (name, sha) in &done.manifest.files {
            assert_eq!(&Sha256Hex::of(&std::fs::read(out.join(name)).unwrap()), sha, "{name}");
        }
        // policy.toml is a [deid] table the box reads back to the same policy.
        let text = std::fs::read_to_string(out.join("policy.toml")).unwrap();
        let again = format!(
            "facility_id = \"F1\"\nstate_dir = \"{}\"\n{text}",
            d.path().join("state").display()
        );
        let back = GatewayConfig::from_toml(&d.path().join("g2.toml"), &again).unwrap();
        assert_eq!(back.deid, cfg.deid);
        // Never over an earlier export.
        assert!(matches!(export(&cfg, d.path(), &out), Err(PolicyBundleError::Exists { .. })));
        assert_eq!(show(&cfg)["version"], 3);
    }
}
