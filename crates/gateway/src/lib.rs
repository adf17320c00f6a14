//! The appliance: the daemon and the operator commands behind the `gateway` binary.
//!
//! The box's crates (docs/ARCHITECTURE.md):
//! - identifiable side: `fgw-ingest`, `fgw-records`, and here [`spool`] and [`state`];
//! - the gate: `fgw-deid`, whose `DeidPackage` only its verifier can make; here the one
//!   place that drives it for both modes (`gate_service`);
//! - de-identified side: `fgw-outbound` (outbox, uplink), which cannot name a record type.
//!
//! This crate wires them: [`pipeline`] (the daemon's stages), [`offline`] (`gateway deid`),
//! [`config`], [`secrets`] and [`identity`] (the key store and enrollment). The command line itself lives in the binary (`main.rs`).

pub mod backlog;
pub mod config;
pub mod firewall;
mod gate_service;
pub mod health;
pub mod heartbeat;
pub mod identity;
pub mod logging;
pub mod maintenance;
pub mod offline;
pub mod pipeline;
pub mod policy_bundle;
pub mod policy_store;
pub mod recovery;
pub mod release_transport;
pub mod secrets;
pub mod spool;
pub mod state;
pub mod storage;
pub mod tunnel;
pub mod update_bundle;
pub mod updater;
