//! Facility gateway library: the appliance (`gateway`) and the society side (`hub`).
//!
//! Two sides and one gate (see docs/ARCHITECTURE.md):
//! - identifiable side: [`ingest`], [`record`], [`spool`], [`state`];
//! - the gate: [`deid`], whose [`deid::DeidPackage`] has a constructor private to `deid`;
//! - de-identified side: [`package`], [`outbox`], [`uplink`], and the [`hub`].
//!
//! `deid` never depends on networking; `outbox`/`uplink` never import `record` or `ingest`
//! (checked by `tests/module_boundaries.rs`).

pub mod cli;
pub mod config;
pub mod deid;
pub mod ids;
pub mod ingest;
pub mod logging;
pub mod offline;
pub mod outbox;
pub mod package;
pub mod pipeline;
pub mod record;
pub mod secrets;
pub mod spool;
pub mod state;
pub mod synth;
pub mod tls;
pub mod uplink;

pub mod hub;

/// Version string written into every package's de-identification block.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
