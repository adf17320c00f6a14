//! Load generator for the society hub (issue 15, `docs/hub-scale.md#load-test`).
//!
//! Many simulated devices in one tokio process upload real de-identified packages (made once
//! by the synthetic department system and `gateway deid`, [`prepare`]) to one or more hub
//! nodes, each device one package at a time, the way a box's uplink does: `HEAD` every
//! object, `PUT` the missing ones, then `PUT` the manifest. Every device's packages are made
//! distinct ([`rewrite`]): its own facility in the manifest, its own exam pseudonym, and
//! object bytes changed in a JPEG comment, so the hub stores new data instead of
//! deduplicating. The run ([`run`]) measures throughput, latencies and the hub processes'
//! CPU time ([`cpu`]), then checks that every package is listed exactly once ([`verify`]).
//!
//! This crate is on the de-identified side: it reads packages, never the department system's
//! export (that is `gateway deid`'s job, run as a separate process).

pub mod certs;
pub mod corpus;
pub mod cpu;
pub mod prepare;
pub mod rewrite;
pub mod run;
pub mod stats;
pub mod summary;
pub mod verify;
