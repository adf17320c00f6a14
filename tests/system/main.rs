//! The whole box and hub as processes: uploads over real mTLS, HL7, DICOM push and pull, offline mode, planted-marker leak tests.
//! One test binary per group: linking each file as its own binary dominated the suite's time.

#[path = "../common/mod.rs"]
mod common;

mod bench_uplink;
mod box_state;
mod burned_in_e2e;
mod crash_harness;
mod dashboard_browser;
mod dicom_pull;
mod dicom_scp_e2e;
mod disk_full;
mod e2e_upload;
mod export_share;
mod fault_proxy;
mod fleet_heartbeat;
mod fleet_release;
mod hl7_e2e;
mod hospital_proxy;
mod hospital_vpn;
mod hub_chunked;
mod hub_enroll;
mod hub_failover;
mod hub_limits;
mod hub_load;
mod hub_mtls;
mod hub_mutated;
mod hub_storage;
mod hub_support;
mod identity_tpm;
mod listeners_closed;
mod net_faults;
mod netns;
mod no_personal_data_leaks;
mod offline_deid;
mod os_release_download;
mod outbox_trust;
mod policy_bundle;
mod quarantine_retention;
mod recovery_kit;
mod researcher_export;
mod rollout_waves;
mod update_bundle;
mod uplink_chunked;
mod uplink_refusals;
