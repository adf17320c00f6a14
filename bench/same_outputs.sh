#!/usr/bin/env bash
# Does a change leave every package as it was? Runs `gateway deid` of two builds on the same
# inputs with the same box secrets and compares the output folders byte for byte (packages,
# objects, report.json).
#
# usage: bench/same_outputs.sh OLD_GATEWAY NEW_GATEWAY WORK_DIR [DICOM_DIR]
#
# WORK_DIR/export is a synthetic department export with burned-in text, made here when missing
# (fgw-synth's synth_department, 12 exams, --overlay), so pixels go through the cleaning stage
# (deid.pixels.mode = clean, the default). DICOM_DIR, when given, is a folder of DICOM files
# (e.g. the benchmark corpus of ../shared/bench/make_corpus.py, as bench/dicom_deid.sh makes
# it); it is de-identified by both builds too. The box secrets are made by the first run and
# shared by the second (pseudonyms and remapped UIDs are keyed). Exit status 1 on any difference.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_GATEWAY NEW_GATEWAY WORK_DIR [DICOM_DIR]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=$(realpath "$1"); NEW=$(realpath "$2"); mkdir -p "$3"; W=$(realpath "$3"); DICOM=${4:-}
cd "$W"
if [ ! -d export ]; then
  (cd "$ROOT" && cargo build -q -p fgw-synth --example synth_department)
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/synth_department" export --exams 12 --overlay
fi
cat > gw.toml <<'TOML'
facility_id = "F0001"
device_id = "gw-cmp-0001"
state_dir = "state"
TOML
status=0
run() {  # name input
  rm -rf "out-old-$1" "out-new-$1"
  "$OLD" --config gw.toml deid "$2" "out-old-$1" | tail -1
  "$NEW" --config gw.toml deid "$2" "out-new-$1" | tail -1
  if diff -r "out-old-$1" "out-new-$1" >/dev/null; then
    echo "$1: identical ($(find "out-new-$1" -type f | wc -l) files)"
  else
    echo "$1: DIFFERENT"; diff -rq "out-old-$1" "out-new-$1" | head -20; status=1
  fi
}
run export export
[ -n "$DICOM" ] && run dicom "$(realpath "$DICOM")"
exit $status
