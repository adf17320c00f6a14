//! The appliance: the daemon and the operator CLI of the `gateway` binary.
//!
//! The box's crates (docs/ARCHITECTURE.md):
//! - identifiable side: `fgw-ingest`, `fgw-records`, and here [`spool`] and [`state`];
//! - the gate: `fgw-deid`, whose `DeidPackage` only its verifier can make;
//! - de-identified side: `fgw-outbound` (outbox, uplink), which cannot name a record type.
//!
//! This crate wires them: [`pipeline`] (the daemon's stages), [`offline`] (`gateway deid`),
//! [`config`], [`secrets`] and [`cli`].

pub mod cli;
pub mod config;
pub mod logging;
pub mod offline;
pub mod pipeline;
pub mod secrets;
pub mod spool;
pub mod state;
