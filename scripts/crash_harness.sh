#!/usr/bin/env bash
# The long crash harness of issue 11: nothing lost, nothing twice. Runs the ignored test
# `crash_harness::long_run` (tests/system/crash_harness.rs) in the release profile: a
# synthetic department export, the real hub and gateway daemon, a fault-injecting proxy
# between them (tests/system/fault_proxy.rs: cuts after 0.2–3 MB, 300 ms latency, some
# connections delayed more than others), 1,000 SIGKILLs of the gateway aimed at ingest, the
# gate, uploads and acknowledgements, and 20 SIGKILLs of the hub during uploads; then an
# uninterrupted run to idle and the checks: every exam at the hub exactly once or quarantined
# on the box with a reason, no duplicate package of an exam revision, nothing left in the
# spool or outbox for a finished item.
#
# usage: scripts/crash_harness.sh [RESULTS_FILE=target/crash-harness/results.txt]
#
# Parameters are environment variables, passed through to the test (defaults in brackets):
#   FGW_HARNESS_KILLS [1000]     gateway kills       FGW_HARNESS_HUB_KILLS [20]  hub kills
#   FGW_HARNESS_EXAMS [200]      input exams         FGW_HARNESS_BATCHES [40]    batches
#   FGW_HARNESS_IMAGES [3]       images per exam     FGW_HARNESS_WIDTH/HEIGHT [640x512]
#   FGW_HARNESS_REEXPORTS [0]    times every batch is exported again (revisions 2, 3, …)
#   FGW_HARNESS_CUT_MIN/MAX [200000/3000000] bytes before a cut
#   FGW_HARNESS_CUT_P [0.5]      share of connections cut (0: none)
#   FGW_HARNESS_LATENCY_MS [300] per direction and chunk
#   FGW_HARNESS_JITTER_MS [500]  extra per-connection delay (reordering across connections)
#   FGW_HARNESS_SEED [clock]     seed of every random choice (printed; rerun with it)
#   FGW_HARNESS_KEEP [0]         1: keep the run's directory (always kept on failure)
#
# Appends one line per run to RESULTS_FILE: date, commit, PASS/FAIL, kills, hub kills, exams,
# at the hub, quarantined, duplicates, wall time, seed and the kill and proxy counts. The whole
# test output goes to RESULTS_FILE's directory as crash-harness-<date>.log. On failure the test
# names every violation and the kept directory (the daemon's log of every cycle is in logs/).
#
# The CI-sized version (30 kills, 2 hub kills, 20 exams) runs with the normal suite:
#   cargo test -p fgw-system-tests --test system -- crash_harness
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RESULTS=${1:-target/crash-harness/results.txt}
mkdir -p "$(dirname "$RESULTS")"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOG="$(dirname "$RESULTS")/crash-harness-$STAMP.log"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT+dirty"; fi

# The daemon and hub under test are built with the test's profile by the test itself.
cargo build --release --workspace --bins --locked
t0=$SECONDS
set +e
cargo test --release --locked -p fgw-system-tests --test system -- \
  crash_harness::long_run --exact --ignored --nocapture 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
line=$(grep -o 'crash-harness result: .*' "$LOG" | tail -1 | sed 's/^crash-harness result: //')
verdict=PASS
[ "$status" -eq 0 ] || verdict=FAIL
echo "$STAMP $COMMIT $verdict ${line:-no result line} script_s=$((SECONDS - t0)) log=$LOG" >>"$RESULTS"
echo "== $verdict: ${line:-no result line}" >&2
echo "== appended to $RESULTS" >&2
exit "$status"
