#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what is missing, checks formatting, lints
# and dependencies (cargo deny), then runs every unit and integration test of the workspace
# (they start their own hub, gateway and synthetic department system on loopback).
# Each step prints its wall time, so the suite's cost can be followed across changes.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {  # name command...
  local name=$1 t0=$SECONDS; shift
  echo "== $name" >&2
  "$@"
  echo "== $name: $((SECONDS - t0)) s" >&2
}
# A failed link prints the whole linker command line (hundreds of KiB) before the linker's own
# message; CI keeps only part of the output, so long lines are cut to keep that message in view,
# and lines are passed on as they come (a run cut short by a time limit shows its last ones).
short_lines() { "$@" 2>&1 | stdbuf -oL cut -c1-600; }
# Free disk at the start and on failure: a full disk shows up as a failed link.
trap 'echo "== failed; disk:" >&2; df -h . >&2' ERR
df -h . >&2
step "dependencies" source scripts/ensure-deps.sh
# Garage, the distributed S3 store the hub's S3 object store is tested against (built from
# crates.io into target/tools: about 8 minutes on 2 cores, once).
step "garage" bash scripts/lib/ensure-garage.sh
step "rustfmt" cargo fmt --all -- --check
step "cargo deny" bash scripts/deny.sh
step "clippy" short_lines cargo clippy --workspace --all-targets --locked -- -D warnings
# The system tests run the real binaries; build them once, with the suite's profile.
step "build binaries" short_lines cargo build --workspace --bins --locked
# ensure-deps installed chromium: the dashboard's browser test must run, not skip.
export FGW_REQUIRE_BROWSER=1
step "tests" short_lines cargo test --workspace --all-targets --locked
# The hub-facing system tests again on the national stores: PostgreSQL and a three-node Garage
# cluster (issue 15); the whole suite on them is `scripts/test-scaled-stores.sh` (docs/hub-scale.md).
# Bounded (it takes about 3 minutes here): a hang ends in a failure with the stores' state.
step "system tests on PostgreSQL + S3 (hub subset)" short_lines env FGW_STORES_TIMEOUT=1200 \
  bash scripts/test-scaled-stores.sh \
    hub_ e2e_upload researcher_export dicom_scp_e2e hl7_e2e uplink_chunked a_hub_restart
# The appliance booted in QEMU with swtpm and OVMF: enrolls and uploads once (issue 14).
step "system test (QEMU, quick)" bash tests/system/run.sh --quick
echo "== suite: $SECONDS s" >&2
