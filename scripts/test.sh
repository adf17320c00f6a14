#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what is missing, checks formatting, lints
# and dependencies (cargo deny), then runs every unit and integration test of the workspace
# (they start their own hub, gateway and synthetic department system on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo fmt --all -- --check
bash scripts/deny.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
# The system tests run the real binaries; build them once, with the suite's profile.
cargo build --workspace --bins --locked
cargo test --workspace --all-targets --locked
