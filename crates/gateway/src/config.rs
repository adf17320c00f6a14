//! Gateway configuration: one TOML file, typed, with documented defaults, validated at start.
//! Every key and its default is listed in `docs/configuration.md`; `gateway config check FILE`
//! runs the same validation as the daemon.

use fgw_deid::Policy;
use fgw_format::ids::{DeviceId, FacilityId};
use fgw_ingest::dicom_pull::{DicomPullConfig, PullMode};
use fgw_ingest::dicom_scp::{DicomScpConfig, ScpMode};
use fgw_ingest::export::{self, ExportLimits};
use fgw_ingest::hl7::Hl7Config;
use fgw_outbound::uplink::UplinkConfig;
use fgw_records::profile::Profile;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/facility-gateway/gateway.toml";

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A key has a value outside what it allows.
    #[error("config {path}: key `{key}`: {allowed}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`export.poll_interval_secs`).
        key: &'static str,
        /// What it allows.
        allowed: String,
    },
}

/// What happens to a batch folder in the department's export directory once every exam in it
/// is acknowledged or quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceRetention {
    /// Leave it (default): the folder belongs to the department system; the gateway only
    /// remembers which batches it ingested.
    #[default]
    Keep,
    /// Delete the batch folder once all its items are finished (acked or quarantined).
    DeleteWhenFinished,
}

/// `[export]`: the department system's export folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSource {
    /// Export root watched for `<batch>/DONE` (default `/srv/department-export`).
    pub watch_dir: PathBuf,
    /// Seconds between scans of the export root (default 10; 1..=3600).
    pub poll_interval_secs: u64,
    /// What happens to a batch folder once all its items are finished (default `keep`).
    pub source_retention: SourceRetention,
    /// Vendor mapping profile: a built-in name (`reference`, default; `vendor-b`) or the path
    /// of a profile TOML file (relative to this config file). Loaded and validated on load.
    pub profile: String,
    /// The loaded `profile`; filled in by [`GatewayConfig::from_toml`].
    #[serde(skip)]
    pub mapping: Profile,
    /// Largest batch table (`exams.csv`) read, in bytes (default 67108864, 64 MiB; at least
    /// 1024). A larger table quarantines the batch (`over-limit`).
    pub max_table_bytes: u64,
    /// Most image files in one exam's folder (default 500; 1..=100000). More quarantines
    /// the exam (`over-limit`).
    pub max_images_per_exam: u32,
    /// Largest image file read, in bytes (default 67108864, 64 MiB; at least 1024). A larger
    /// one quarantines its exam (`over-limit`).
    pub max_image_bytes: u64,
    /// Largest report file read, in bytes (default 16777216, 16 MiB; at least 1024). A
    /// larger one quarantines its exam (`over-limit`).
    pub max_report_bytes: u64,
}

impl ExportSource {
    /// The caps the export reader applies.
    pub fn limits(&self) -> ExportLimits {
        ExportLimits {
            max_table_bytes: self.max_table_bytes,
            max_images_per_exam: self.max_images_per_exam,
            max_image_bytes: self.max_image_bytes,
            max_report_bytes: self.max_report_bytes,
        }
    }
}

impl Default for ExportSource {
    fn default() -> Self {
        ExportSource {
            watch_dir: "/srv/department-export".into(),
            poll_interval_secs: 10,
            source_retention: SourceRetention::Keep,
            profile: "reference".into(),
            mapping: Profile::reference(),
            max_table_bytes: export::MAX_TABLE_BYTES,
            max_images_per_exam: export::MAX_IMAGES_PER_EXAM,
            max_image_bytes: export::MAX_IMAGE_BYTES,
            max_report_bytes: export::MAX_REPORT_BYTES,
        }
    }
}

/// `[pipeline]`: the daemon's channels and upload retries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Capacity of each channel between stages (default 16; 1..=4096). Bounds memory: a
    /// full channel makes the stage before it wait.
    pub channel_capacity: usize,
    /// First retry delay after a failed upload, in milliseconds (default 500).
    pub retry_initial_ms: u64,
    /// Upper bound of the exponential retry delay, in milliseconds (default 60000). Each
    /// wait is drawn from [d/2, d] of the current bound d (jitter: boxes do not retry in step).
    pub retry_max_ms: u64,
    /// While the uplink is paused (the hub refused this box: 401/403, or a wrong hub URL),
    /// seconds between attempts to upload again (default 300; 1..=86400).
    pub paused_retry_secs: u64,
    /// Exams dated today or up to this many days before are today's work and upload before
    /// the history backlog (older exams, a DICOM pull catching up). Default 1 (today and
    /// yesterday: an evening list exported after midnight); 0..=365.
    pub current_days: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            channel_capacity: 16,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            paused_retry_secs: 300,
            current_days: 1,
        }
    }
}

/// `[quarantine]`: how long raw data kept on the box (quarantined items, withheld images)
/// stays before the retention purge deletes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// Days after which raw data of quarantined items (and of exams uploaded with images
    /// withheld) is deleted by the daemon, once a day (default 90; 1..=3650). The items
    /// themselves (ids, reasons) stay; each purge writes an audit record.
    pub retention_days: u32,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig { retention_days: 90 }
    }
}

/// `[storage]`: room on the state directory's filesystem (see `storage`). Sizes are file
/// lengths in bytes; a quota of 0 means none other than the free space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Free space kept on the state directory's filesystem (default 268435456, 256 MiB).
    /// New input is refused ("retry later") when it would leave less; the stages after
    /// ingest may use half of it, the state database the rest.
    pub min_free_bytes: u64,
    /// Most bytes of raw input in the spool (default 0: no quota).
    pub spool_quota_bytes: u64,
    /// Most bytes of packages in the outbox (default 0: no quota). When reached, ingest
    /// pauses and de-identification waits for uploads to make room.
    pub outbox_quota_bytes: u64,
    /// Most bytes of raw data kept in quarantine (default 0: no quota). When reached, ingest
    /// pauses until the retention purge or `gateway quarantine purge` makes room.
    pub quarantine_quota_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            min_free_bytes: 256 * 1024 * 1024,
            spool_quota_bytes: 0,
            outbox_quota_bytes: 0,
            quarantine_quota_bytes: 0,
        }
    }
}

/// The whole configuration file (`gateway.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Facility this box serves; must match the facility in its client certificate.
    pub facility_id: FacilityId,
    /// This box's id (default `gateway`).
    #[serde(default = "default_device")]
    pub device_id: DeviceId,
    /// State directory: database, encrypted spool, outbox, quarantine, secret store
    /// (default `/var/lib/facility-gateway`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `[export]`: the export folder and its vendor profile.
    #[serde(default)]
    pub export: ExportSource,
    /// `[pipeline]`: channel capacity and upload retries.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// `[quarantine]`: retention of raw data kept on the box.
    #[serde(default)]
    pub quarantine: QuarantineConfig,
    /// `[storage]`: free-space floor and per-stage quotas of the state directory.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[hl7]`: the MLLP listener for reports.
    #[serde(default)]
    pub hl7: Hl7Config,
    /// `[dicom_scp]`: the DICOM storage listener.
    #[serde(default)]
    pub dicom_scp: DicomScpConfig,
    /// `[dicom_pull]`: pulling studies from an archive.
    #[serde(default)]
    pub dicom_pull: DicomPullConfig,
    /// `[uplink]`: the hub and the box's client certificate.
    #[serde(default)]
    pub uplink: UplinkConfig,
    /// `[identity]`: the box's key store and enrollment (issue 12). When set, the box
    /// enrolls with the hub and the uplink presents its operational certificate; `[uplink]`
    /// then needs no `client_cert`, `client_key` or `ca_cert`. Absent: the uplink uses those
    /// files (provisioned by hand; development and the tests of earlier issues).
    #[serde(default)]
    pub identity: Option<crate::identity::IdentityConfig>,
    /// `[vpn]`: the WireGuard tunnel to the hub (issue 12). Default off.
    #[serde(default)]
    pub vpn: crate::tunnel::VpnSettings,
    /// `[fleet]`: the heartbeat to the hub (issue 13).
    #[serde(default)]
    pub fleet: crate::heartbeat::FleetSettings,
    /// `[update]`: which OS update bundles the box accepts (issue 13).
    #[serde(default)]
    pub update: crate::update_bundle::UpdateSettings,
    /// `[deid]`: the de-identification policy.
    #[serde(default)]
    pub deid: Policy,
}

fn default_device() -> DeviceId {
    DeviceId::new("gateway").expect("valid default")
}

fn default_state_dir() -> PathBuf {
    "/var/lib/facility-gateway".into()
}

impl GatewayConfig {
    /// Read, parse and validate the file at `path`.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut cfg = Self::from_toml(path, &text)?;
        // A policy release the box applied (issue 13) is in force over the file's [deid].
        crate::policy_store::overlay(&mut cfg);
        Ok(cfg)
    }

    /// Parse and validate `text`; relative paths are taken relative to `path`'s folder.
    pub fn from_toml(path: &Path, text: &str) -> Result<GatewayConfig, ConfigError> {
        let mut cfg: GatewayConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        // Relative paths are relative to the config file, so a config and its certs can move
        // together (the demo relies on this).
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_relative(base);
        cfg.export.mapping =
            Profile::from_setting(&cfg.export.profile, base).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "export.profile",
                allowed: e.to_string(),
            })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        fix(&mut self.export.watch_dir);
        self.uplink.resolve_relative(base);
        if let Some(id) = self.identity.as_mut() {
            id.resolve_relative(base);
        }
        self.update.resolve_relative(base);
    }

    /// The checks beyond the file's types (ranges, combinations); `path` names the file in
    /// errors.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key, allowed: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            allowed: allowed.to_string(),
        };
        if !(1..=3600).contains(&self.export.poll_interval_secs) {
            return Err(bad("export.poll_interval_secs", "an integer from 1 to 3600"));
        }
        let e = &self.export;
        for (key, v) in [
            ("export.max_table_bytes", e.max_table_bytes),
            ("export.max_image_bytes", e.max_image_bytes),
            ("export.max_report_bytes", e.max_report_bytes),
        ] {
            if v < 1024 {
                return Err(bad(key, "a number of bytes, at least 1024"));
            }
        }
        if !(1..=100_000).contains(&e.max_images_per_exam) {
            return Err(bad("export.max_images_per_exam", "an integer from 1 to 100000"));
        }
        if !(1..=4096).contains(&self.pipeline.channel_capacity) {
            return Err(bad("pipeline.channel_capacity", "an integer from 1 to 4096"));
        }
        if self.pipeline.retry_initial_ms == 0
            || self.pipeline.retry_max_ms < self.pipeline.retry_initial_ms
        {
            return Err(bad(
                "pipeline.retry_max_ms",
                "retry_initial_ms > 0 and retry_max_ms >= retry_initial_ms",
            ));
        }
        if !(1..=86_400).contains(&self.pipeline.paused_retry_secs) {
            return Err(bad("pipeline.paused_retry_secs", "an integer from 1 to 86400"));
        }
        if self.pipeline.current_days > 365 {
            return Err(bad("pipeline.current_days", "an integer from 0 to 365"));
        }
        if !(1..=3650).contains(&self.quarantine.retention_days) {
            return Err(bad("quarantine.retention_days", "an integer from 1 to 3650 (days)"));
        }
        if self.deid.version == 0 || self.deid.id.trim().is_empty() {
            return Err(bad("deid.version", "a non-empty deid.id and a version >= 1"));
        }
        self.uplink.validate().map_err(|(key, allowed)| bad(key, &allowed))?;
        if let Some(id) = &self.identity {
            id.validate().map_err(|(key, allowed)| bad(key, &allowed))?;
        }
        self.vpn.validate().map_err(|(key, allowed)| bad(key, allowed))?;
        self.fleet.validate().map_err(|(key, allowed)| bad(key, allowed))?;
        self.update.validate().map_err(|(key, allowed)| bad(key, allowed))?;
        if self.vpn.mode == crate::tunnel::VpnMode::Wireguard {
            // The tunnel's peer data comes from enrollment; its UDP cannot cross an HTTP proxy.
            if self.identity.is_none() {
                return Err(bad("vpn.mode", "\"wireguard\" only with [identity] (enrollment)"));
            }
            if self.uplink.proxy_url.is_some() {
                return Err(bad(
                    "vpn.mode",
                    "\"off\" when uplink.proxy_url is set (WireGuard's UDP cannot pass an HTTP proxy)",
                ));
            }
        }
        self.hl7.validate().map_err(|(key, allowed)| bad(key, &allowed))?;
        self.dicom_scp.validate().map_err(|(key, allowed)| bad(key, &allowed))?;
        self.dicom_pull.validate().map_err(|(key, allowed)| bad(key, &allowed))?;
        // C-MOVE delivers to our own SCP: pulling without it would move into the void.
        if self.dicom_pull.mode == PullMode::Enabled && self.dicom_scp.mode != ScpMode::Enabled {
            return Err(bad(
                "dicom_pull.mode",
                "`enabled` only together with dicom_scp.mode = \"enabled\" (studies arrive by C-STORE)",
            ));
        }
        Ok(())
    }

    /// The state database.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("state.sqlite")
    }
    /// The encrypted spool of raw inputs in flight.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }
    /// Raw inputs kept on the box (encrypted like the spool).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.state_dir.join("quarantine")
    }
    /// Packages waiting for upload.
    pub fn outbox_dir(&self) -> PathBuf {
        self.state_dir.join("outbox")
    }
    /// The secret store.
    pub fn secrets_dir(&self) -> PathBuf {
        self.state_dir.join("secrets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = GatewayConfig::from_toml(Path::new("/etc/g.toml"), "facility_id = \"F0001\"\n")
            .unwrap();
        assert_eq!(c.export.poll_interval_secs, 10);
        assert_eq!(c.export.limits(), ExportLimits::default());
        assert_eq!(c.export.max_table_bytes, 64 * 1024 * 1024);
        assert_eq!(c.export.max_images_per_exam, 500);
        assert_eq!(c.export.max_image_bytes, 64 * 1024 * 1024);
        assert_eq!(c.export.max_report_bytes, 16 * 1024 * 1024);
        assert_eq!(c.pipeline.channel_capacity, 16);
        assert_eq!(c.pipeline.paused_retry_secs, 300);
        assert_eq!(c.pipeline.current_days, 1);
        assert_eq!(c.quarantine.retention_days, 90);
        assert_eq!(c.storage.min_free_bytes, 256 * 1024 * 1024);
        assert_eq!(
            (c.storage.spool_quota_bytes, c.storage.outbox_quota_bytes),
            (0, 0),
            "no quota but the free space"
        );
        assert_eq!(c.storage.quarantine_quota_bytes, 0);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/facility-gateway"));
        assert_eq!(c.deid, Policy::default());
    }

    #[test]
    fn wrong_values_name_the_key() {
        let e = GatewayConfig::from_toml(
            Path::new("g.toml"),
            "facility_id = \"F1\"\n[export]\npoll_interval_secs = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("export.poll_interval_secs"), "{e}");
        let e = GatewayConfig::from_toml(
            Path::new("g.toml"),
            "facility_id = \"F1\"\n[deid]\nexam_date = \"sometimes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exam_date") && e.contains("year-month"), "{e}");
        let e = GatewayConfig::from_toml(Path::new("g.toml"), "facility_id = \"../x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("facility id"), "{e}");
        let e = GatewayConfig::from_toml(Path::new("g.toml"), "facility_id = \"F1\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = GatewayConfig::from_toml(
            Path::new("g.toml"),
            "facility_id = \"F1\"\n[storage]\nspool_quota = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("spool_quota"), "{e}");
        let c = GatewayConfig::from_toml(
            Path::new("g.toml"),
            "facility_id = \"F1\"\n[storage]\nmin_free_bytes = 1048576\noutbox_quota_bytes = 4096\n",
        )
        .unwrap();
        assert_eq!((c.storage.min_free_bytes, c.storage.outbox_quota_bytes), (1 << 20, 4096));
        let e = GatewayConfig::from_toml(
            Path::new("g.toml"),
            "facility_id = \"F1\"\n[dicom_pull]\nmode = \"enabled\"\narchive_ae = \"PACS\"\n\
             archive_host = \"10.0.0.9\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dicom_pull.mode") && e.contains("dicom_scp.mode"), "{e}");
    }
}
