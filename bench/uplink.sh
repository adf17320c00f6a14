#!/usr/bin/env bash
# Uplink benchmarks (issue 11), measured in one run against a real `hub serve` on loopback TLS:
# - throughput of the gateway's uplink (default chunking) against curl uploading objects of
#   the same size to the same hub (target: at least 0.9 x curl);
# - bytes re-sent after a cut at 50% of a 1 GiB object (target: less than one chunk).
# Both are ignored tests of the system test binary (tests/system/bench_uplink.rs), built with
# the release profile; they print RESULT lines. Results go into docs/benchmarks.md.
#
# usage: bench/uplink.sh   (FGW_BENCH_MIB=256 FGW_BENCH_ROUNDS=3 FGW_BENCH_CUT_MIB=1024)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build -q --release -p fgw-hub --bin hub
cargo build -q --release -p fgw-gateway --bin gateway
# The system tests find the binaries through FGW_BIN_DIR (tests/common).
export FGW_BIN_DIR="$ROOT/target/release"
curl --version | head -1
cargo test -q --release -p fgw-system-tests --test system -- --ignored --nocapture \
  --test-threads 1 bench_uplink 2>&1 | grep -E "^(RESULT|round)|panicked|FAILED"
