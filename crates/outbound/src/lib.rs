//! The box's de-identified side: the content-addressed [`outbox`] and the mTLS [`uplink`].
//!
//! This crate depends on the gate (`fgw-deid`) for `DeidPackage` only, and on neither the
//! records nor ingest crates: nothing identifiable can be named here.

mod body;
mod chunked;
pub mod outbox;
pub mod proxy;
pub mod throttle;
pub mod uplink;
