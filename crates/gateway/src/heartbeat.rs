//! The box's heartbeat (issue 13): every `[fleet] heartbeat_secs` the daemon tells the hub
//! its versions, queue, bytes uploaded, quarantine counts by reason, the class of its last
//! error, its certificate's expiry, disk use, key store and tunnel state.
//!
//! Built from the state database's counts and codes only: no item id, file name, message or
//! value of an exam is read into it (the hub also refuses anything but codes and counts:
//! `fgw_hub::fleet`).

use crate::config::GatewayConfig;
use crate::state::{Db, MetaKey, Origin, StateError};
use fgw_format::package::protocol::{DiskUse, Heartbeat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[fleet]` of `gateway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// Seconds between heartbeats. Default 300; 10 ..= 86400.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
}

fn default_heartbeat_secs() -> u64 {
    300
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings { heartbeat_secs: default_heartbeat_secs() }
    }
}

impl FleetSettings {
    /// Error: (key, what is allowed).
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(10..=86_400).contains(&self.heartbeat_secs) {
            return Err(("fleet.heartbeat_secs", "an integer from 10 to 86400"));
        }
        Ok(())
    }
}

/// Why a heartbeat could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The state database failed.
    #[error("heartbeat: {0}")]
    State(#[from] StateError),
    /// The state folder's file system could not be measured.
    #[error("heartbeat: free space of {path}: {source}")]
    Disk {
        /// The state folder.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What the daemon knows beyond the database: the tunnel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnState {
    /// `[vpn] mode = "off"`.
    Off,
    /// The tunnel carries the uploads.
    Up,
    /// Configured, but the hub offered none or it is not up.
    Down,
}

impl VpnState {
    fn code(self) -> &'static str {
        match self {
            VpnState::Off => "off",
            VpnState::Up => "up",
            VpnState::Down => "down",
        }
    }
}

/// A code as the hub takes it: characters outside `A-Z a-z 0-9 . _ - @ : +` become `_`, at
/// most 64 of them (a policy id is free-form in `gateway.toml`).
fn code(s: &str) -> String {
    let c: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || ".-_@:+".contains(c) { c } else { '_' })
        .collect();
    if c.is_empty() {
        "_".into()
    } else {
        c
    }
}

/// The expiry of the operational certificate, from the enrollment record (without opening
/// the key store).
fn cert_not_after(cfg: &GatewayConfig) -> Option<String> {
    cfg.identity.as_ref()?;
    let dir = crate::identity::identity_dir(cfg);
    let enrollment = crate::identity::stored_enrollment(&dir).ok()??;
    Some(code(&enrollment.not_after))
}

/// The heartbeat of the box configured by `cfg`, now.
pub fn build(cfg: &GatewayConfig, db: &Db, vpn: VpnState) -> Result<Heartbeat, HeartbeatError> {
    let queue: BTreeMap<String, u64> =
        db.counts(Origin::Daemon)?.into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect();
    let mut quarantine: BTreeMap<String, u64> = BTreeMap::new();
    for item in db.quarantined()? {
        let reason = item.reason.as_ref().map(|r| r.code()).unwrap_or("unknown");
        *quarantine.entry(reason.to_string()).or_default() += 1;
    }
    let bytes_uploaded =
        db.meta(MetaKey::BytesUploaded)?.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let last_error_class = db.meta(MetaKey::LastErrorClass)?.map(|c| code(&c));
    let free = crate::storage::free_space(&cfg.state_dir)
        .map_err(|source| HeartbeatError::Disk { path: cfg.state_dir.clone(), source })?;
    let disk = DiskUse { total_bytes: free.total_bytes, available_bytes: free.bytes };
    let key_store = match &cfg.identity {
        Some(id) => id.key_store.as_str().to_string(),
        None => "none".to_string(),
    };
    let mut updates = BTreeMap::new();
    for (kind, key) in [("policy", MetaKey::UpdatePolicy), ("os", MetaKey::UpdateOs)] {
        if let Some(report) = db.meta(key)?.and_then(|j| serde_json::from_str(&j).ok()) {
            updates.insert(kind.to_string(), report);
        }
    }
    Ok(Heartbeat {
        sent_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        os_version: code(env!("CARGO_PKG_VERSION")),
        policy_version: code(&format!("{}@{}", cfg.deid.id, cfg.deid.version)),
        queue,
        bytes_uploaded,
        quarantine,
        last_error_class,
        cert_not_after: cert_not_after(cfg),
        disk,
        key_store,
        vpn: vpn.code().to_string(),
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_alphabet_and_length() {
        assert_eq!(code("jed-basic@1"), "jed-basic@1");
        assert_eq!(code("方針 A"), "___A");
        assert_eq!(code(&"x".repeat(100)).len(), 64);
        assert_eq!(code(""), "_");
    }

    #[test]
    fn a_fresh_box_reports_counts_versions_and_disk() {
        let d = tempfile::tempdir().unwrap();
        let text = format!("facility_id = \"F1\"\nstate_dir = \"{}\"\n", d.path().display());
        let cfg = GatewayConfig::from_toml(std::path::Path::new("/etc/g.toml"), &text).unwrap();
        let db = Db::open(&cfg.db_path()).unwrap();
        db.set_meta(MetaKey::LastErrorClass, "retry-later").unwrap();
        db.set_meta(MetaKey::BytesUploaded, "4096").unwrap();
        let hb = build(&cfg, &db, VpnState::Off).unwrap();
        assert_eq!(hb.policy_version, "jed-basic@1");
        assert_eq!(hb.bytes_uploaded, 4096);
        assert_eq!(hb.last_error_class.as_deref(), Some("retry-later"));
        assert_eq!((hb.key_store.as_str(), hb.vpn.as_str()), ("none", "off"));
        assert!(hb.disk.total_bytes >= hb.disk.available_bytes && hb.disk.total_bytes > 0);
        assert!(hb.cert_not_after.is_none());
    }
}
