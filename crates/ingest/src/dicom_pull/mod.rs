//! DICOM pull (identifiable side): the box asks the department archive for its studies,
//! day by day, and has them sent to its own C-STORE SCP.
//!
//! - `scu`: the associations with the archive: C-FIND (Study Root, STUDY level, by
//!   StudyDate range) and C-MOVE to our SCP's AE title;
//! - `puller`: the loop: one window of days per pass from a persisted watermark up to
//!   today, at a configured pace, the watermark committed only after every study of the
//!   window was moved.
//!
//! What comes back from the archive goes through the SCP like any pushed object (spool,
//! `dicom` item, DICOM gate). Errors and logs name AE titles, host, port, window dates and
//! counts; never a value of a C-FIND response (they carry whatever the archive chose to
//! return, patient names included) and never a study UID.

mod puller;
mod scu;
mod watermark;

pub use puller::run;
pub use scu::{read_find_match, PullError};
pub use watermark::{PullMark, PullStore, StoreError};

use super::dicom_scp::AeTitle;
use chrono::NaiveDate;
use dicom_dictionary_std::uids;
use serde::{Deserialize, Serialize};

/// Study Root Query/Retrieve Information Model - FIND.
pub const STUDY_ROOT_FIND: &str = uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND;
/// Study Root Query/Retrieve Information Model - MOVE.
pub const STUDY_ROOT_MOVE: &str = uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE;

/// Whether the daemon pulls from an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullMode {
    /// Default: the box never opens associations to other nodes unless asked to.
    #[default]
    Disabled,
    /// Pull from the configured archive.
    Enabled,
}

/// How studies are retrieved. Only C-MOVE for now (see docs/decisions.md: C-GET is not
/// offered by every archive, and C-MOVE reuses the SCP's checks and spool path as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetrieveMethod {
    /// C-MOVE to our own SCP.
    #[default]
    CMove,
}

/// `[dicom_pull]` in the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomPullConfig {
    /// Whether the pull runs.
    pub mode: PullMode,
    /// The archive's AE title (the called AE of our associations). Required when enabled.
    pub archive_ae: Option<AeTitle>,
    /// The archive's host name or IP address. Required when enabled.
    pub archive_host: String,
    /// The archive's DICOM port (default 104).
    pub archive_port: u16,
    /// Our calling AE title; default: `dicom_scp.ae_title`, the title the archive must
    /// know anyway as the C-MOVE destination.
    pub calling_ae: Option<AeTitle>,
    /// How studies are retrieved.
    pub retrieve: RetrieveMethod,
    /// First study date pulled ("YYYY-MM-DD"). Default: `history_days` before the day the
    /// pull first ran (that date is then kept in the state database).
    pub start_date: Option<NaiveDate>,
    /// How far back the history goes when `start_date` is not set (default 730).
    pub history_days: u32,
    /// Days per C-FIND window (default 1; 1..=366).
    pub window_days: u32,
    /// Pause after each study's C-MOVE, in milliseconds (default 5000; 0..=3600000): the
    /// catch-up pace, so a box plugged in late does not load the archive for hours.
    pub pause_between_studies_ms: u64,
    /// Seconds between passes once caught up (re-querying today), and before retrying a
    /// failed window (default 300; 1..=86400).
    pub poll_interval_secs: u64,
}

impl Default for DicomPullConfig {
    fn default() -> Self {
        DicomPullConfig {
            mode: PullMode::Disabled,
            archive_ae: None,
            archive_host: String::new(),
            archive_port: 104,
            calling_ae: None,
            retrieve: RetrieveMethod::CMove,
            start_date: None,
            history_days: 730,
            window_days: 1,
            pause_between_studies_ms: 5_000,
            poll_interval_secs: 300,
        }
    }
}

impl DicomPullConfig {
    /// `Err((key, allowed values))`, like the other config sections. Only the fields this
    /// section owns; the gateway's `GatewayConfig::validate` checks that the SCP runs.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.mode == PullMode::Disabled {
            return Ok(());
        }
        if self.archive_ae.is_none() {
            return Err((
                "dicom_pull.archive_ae",
                "the archive's AE title (1-16 characters)".into(),
            ));
        }
        let host = self.archive_host.trim();
        if host.is_empty()
            || host.contains(char::is_whitespace)
            || host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err((
                "dicom_pull.archive_host",
                "a host name or IP address, without port".into(),
            ));
        }
        if self.archive_port == 0 {
            return Err(("dicom_pull.archive_port", "1..=65535".into()));
        }
        if !(1..=36_500).contains(&self.history_days) {
            return Err(("dicom_pull.history_days", "1..=36500".into()));
        }
        if !(1..=366).contains(&self.window_days) {
            return Err(("dicom_pull.window_days", "1..=366".into()));
        }
        if self.pause_between_studies_ms > 3_600_000 {
            return Err(("dicom_pull.pause_between_studies_ms", "0..=3600000".into()));
        }
        if !(1..=86_400).contains(&self.poll_interval_secs) {
            return Err(("dicom_pull.poll_interval_secs", "1..=86400".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> DicomPullConfig {
        toml::from_str(
            "mode = \"enabled\"\narchive_ae = \"ARCHIVE\"\narchive_host = \"10.0.0.9\"\n",
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_kebab_case() {
        let c: DicomPullConfig = toml::from_str("").unwrap();
        assert_eq!(c, DicomPullConfig::default());
        assert_eq!(c.mode, PullMode::Disabled);
        c.validate().unwrap();
        let c = enabled();
        c.validate().unwrap();
        assert_eq!((c.archive_port, c.window_days, c.history_days), (104, 1, 730));
        let c: DicomPullConfig =
            toml::from_str("start_date = \"2024-04-01\"\nretrieve = \"c-move\"\n").unwrap();
        assert_eq!(c.start_date, NaiveDate::from_ymd_opt(2024, 4, 1));
        assert!(toml::from_str::<DicomPullConfig>("mode = \"on\"").is_err());
        assert!(toml::from_str::<DicomPullConfig>("retrieve = \"c-get\"").is_err());
        assert!(toml::from_str::<DicomPullConfig>("start_date = \"2024-13-01\"").is_err());
        assert!(toml::from_str::<DicomPullConfig>("archive_ae = \"A\\\\B\"").is_err());
        assert!(toml::from_str::<DicomPullConfig>("archive = \"x\"").is_err());
    }

    #[test]
    fn validate_names_the_key() {
        let key = |c: DicomPullConfig| c.validate().unwrap_err().0;
        assert_eq!(key(DicomPullConfig { archive_ae: None, ..enabled() }), "dicom_pull.archive_ae");
        for host in ["", "pacs:104", "a b"] {
            let c = DicomPullConfig { archive_host: host.into(), ..enabled() };
            assert_eq!(key(c), "dicom_pull.archive_host", "{host:?}");
        }
        DicomPullConfig { archive_host: "fe80::1".into(), ..enabled() }.validate().unwrap();
        DicomPullConfig { archive_host: "pacs.hospital.local".into(), ..enabled() }
            .validate()
            .unwrap();
        assert_eq!(
            key(DicomPullConfig { archive_port: 0, ..enabled() }),
            "dicom_pull.archive_port"
        );
        assert_eq!(key(DicomPullConfig { window_days: 0, ..enabled() }), "dicom_pull.window_days");
        assert_eq!(
            key(DicomPullConfig { history_days: 0, ..enabled() }),
            "dicom_pull.history_days"
        );
        assert_eq!(
            key(DicomPullConfig { pause_between_studies_ms: 3_600_001, ..enabled() }),
            "dicom_pull.pause_between_studies_ms"
        );
        assert_eq!(
            key(DicomPullConfig { poll_interval_secs: 0, ..enabled() }),
            "dicom_pull.poll_interval_secs"
        );
    }
}
