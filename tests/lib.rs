//! The workspace's system tests live in `tests/` (the `gate`, `ingest`, `system` and
//! `crate_graph` test binaries); this library is empty, so that the root package has a target.
