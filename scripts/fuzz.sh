#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted bytes (the cargo-fuzz targets in fuzz/)
# under libFuzzer. Needs a nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz;
# cargo-fuzz is installed here when missing, the nightly toolchain with rustup when missing.
# Not part of scripts/test.sh: the test suite stays on stable, and tests/mutated_inputs.rs runs
# the same entry points on fixed mutations in every test run.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET=300] [TARGET...]   (targets: dicom_read jpeg_mask)
#
# Seeds are generated into fuzz/corpus/TARGET/ (DCMTK img2dcm and dcmdjpeg for DICOM,
# libjpeg-turbo cjpeg for JPEG: 4:2:0, 4:2:2, 4:4:4, grey, progressive, restart intervals);
# libFuzzer adds what it finds to the same folder. A crash leaves its input in
# fuzz/artifacts/TARGET/ and the script exits non-zero. Summary lines are appended to
# fuzz/last-run.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-300}
shift || true
TARGETS=${*:-dicom_read jpeg_mask}
cd "$ROOT/fuzz"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in img2dcm dcmdjpeg cjpeg; do
  command -v "$t" >/dev/null || { echo "missing $t: bash scripts/ensure-deps.sh" >&2; exit 1; }
done

seeds() {  # target dir
  local tmp; tmp=$(mktemp -d)
  python3 - "$tmp/f.ppm" <<'EOF'
import sys
w, h = 64, 48
px = bytes(v for y in range(h) for x in range(w) for v in (x * 4 % 256, y * 5 % 256, 90))
open(sys.argv[1], "wb").write(b"P6 %d %d 255\n" % (w, h) + px)
EOF
  case $1 in
    dicom_read)
      cjpeg -quality 80 "$tmp/f.ppm" > "$tmp/f.jpg"
      img2dcm -i JPEG -k "PatientName=FUZZ^SEED=山田^太郎" -k "PatientID=12345678" \
        -k "(0010,4000)=FUZZ SEED 様 TEL 03-1234-5678" "$tmp/f.jpg" "$2/jpeg-baseline.dcm"
      dcmdjpeg "$2/jpeg-baseline.dcm" "$2/native-rgb.dcm"
      ;;
    jpeg_mask)
      cjpeg -quality 80 -sample 2x2 "$tmp/f.ppm" > "$2/420.jpg"
      cjpeg -quality 80 -sample 2x1 "$tmp/f.ppm" > "$2/422.jpg"
      cjpeg -quality 80 -sample 1x1 "$tmp/f.ppm" > "$2/444.jpg"
      cjpeg -quality 80 -grayscale "$tmp/f.ppm" > "$2/grey.jpg"
      cjpeg -quality 80 -progressive "$tmp/f.ppm" > "$2/progressive.jpg"
      cjpeg -quality 80 -restart 1 "$tmp/f.ppm" > "$2/restart.jpg"
      ;;
  esac
  rm -rf "$tmp"
}

echo "# $(date -u +%FT%TZ), $SECS s per target" >> last-run.txt
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  [ -n "$(ls -A "corpus/$t")" ] || seeds "$t" "corpus/$t"
  echo "== $t: $SECS s"
  log=$(mktemp)
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "$log" 2>&1; then
    echo "$t: no crash; $(grep -E '^Done [0-9]+ runs' "$log" | tail -1);" \
      "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | tr -s '\t ' ' ')" | tee -a last-run.txt
  else
    status=1
    echo "$t: FAILED, input in fuzz/artifacts/$t/ (log: $log)" | tee -a last-run.txt
    tail -40 "$log"
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed "s/^/$t /" >> last-run.txt || true
  grep -q '^Done [0-9]* runs' "$log" && rm -f "$log"
done
exit $status
