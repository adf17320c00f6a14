#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what is missing, checks formatting and
# lints, then runs every unit and integration test (they start their own hub, gateway and
# synthetic department system on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
