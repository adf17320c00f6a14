#!/usr/bin/env bash
# Names without cues (issue 17; results pasted into docs/benchmarks.md): on the labelled
# free-text sets, side by side in one run,
#   - the cue rules alone (the scrubber before the analyser),
#   - the morphological analyser alone (MeCab + IPADIC and the reading lexicon, no cue rules),
#   - both combined (what the gate runs),
# recall for other people's names, clinical spans untouched, and the cost of
# `fgw_deid::text::find_with` in µs per KB of text (UTF-8 bytes; mean of REPS timed passes
# after one warm-up pass, one thread, release build).
#
# The sets: tests/data/freetext_ja_nocue.jsonl (tests/data/make_freetext_ja_nocue.py),
# the in-sample tests/data/freetext_ja.jsonl and the held-out tests/data/freetext_ja_holdout.jsonl.
# The per-set tables and the missed/over-matched notes go to RESULTS/freetext_nocue.txt; the
# summary table is printed.
#
# usage: bench/freetext_nocue.sh [RESULTS_DIR=target/bench-freetext] [REPS=20]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${1:-$ROOT/target/bench-freetext}
REPS=${2:-20}
mkdir -p "$RESULTS"
(cd "$ROOT" && cargo build --release --locked -q -p fgw-deid --example freetext_nocue)
CARGO_TARGET_DIR="$RESULTS" "$ROOT/target/release/examples/freetext_nocue" "$REPS" \
  > "$RESULTS/freetext_nocue.txt"
sed -n '/^## summary/,$p' "$RESULTS/freetext_nocue.txt"
