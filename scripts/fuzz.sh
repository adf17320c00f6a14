#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted bytes (the cargo-fuzz targets in fuzz/)
# under libFuzzer. Needs a nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz;
# cargo-fuzz is installed here when missing, the nightly toolchain with rustup when missing.
# Not part of scripts/test.sh: the test suite stays on stable, and tests/mutated_inputs.rs runs
# the same entry points on fixed mutations in every test run.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET=300] [TARGET...]   (default: every target in
#        fuzz/Cargo.toml; issue 10 records a 600 s run of each in docs/benchmarks.md)
#
# Seeds are committed in fuzz/seeds/TARGET/; a target without any is seeded here (DCMTK
# img2dcm, dcmdjpeg and dcmconv for DICOM, libjpeg-turbo cjpeg for JPEG: 4:2:0, 4:2:2, 4:4:4,
# grey, progressive, restart intervals; the synthetic department system for exams.csv;
# tests/data/hl7 for HL7 and MLLP). libFuzzer adds what it finds to fuzz/corpus/TARGET/
# (not committed). A crash leaves its input in
# fuzz/artifacts/TARGET/ and the script exits non-zero. Summary lines are appended to
# fuzz/last-run.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-300}
shift || true
TARGETS=${*:-$(sed -n 's/^name = "\(.*\)"/\1/p' "$ROOT/fuzz/Cargo.toml" | grep -v '^fgw-fuzz$')}
cd "$ROOT/fuzz"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in img2dcm dcmdjpeg cjpeg; do
  command -v "$t" >/dev/null || { echo "missing $t: bash scripts/ensure-deps.sh" >&2; exit 1; }
done

# Seeds for the targets added with issue 10 that need a running tool: see seeds_more.
SYNTH="$ROOT/target/debug/examples/synth_department"
(cd "$ROOT" && cargo build -q -p fgw-synth --example synth_department)
# The data set of a Part-10 file (after the preamble and the file meta group).
dataset() {  # file
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", b, 132 + 8)[0]
sys.stdout.buffer.write(b[132 + 12 + n:])
PY
}
seeds_more() {  # target dir
  local tmp; tmp=$(mktemp -d)
  case $1 in
    dicom_structure|dicom_pdu)
      python3 -c "
import sys
w,h=64,48
open(sys.argv[1],'wb').write(b'P6 %d %d 255\n'%(w,h)+bytes(v for y in range(h) for x in range(w) for v in (x*4%256,y*5%256,90)))" "$tmp/f.ppm"
      cjpeg -quality 80 "$tmp/f.ppm" > "$tmp/f.jpg"
      img2dcm -i JPEG -k "PatientName=FUZZ^SEED" -k "PatientID=12345678" "$tmp/f.jpg" "$tmp/jpeg.dcm"
      dcmdjpeg "$tmp/jpeg.dcm" "$tmp/explicit.dcm"
      dcmconv +ti "$tmp/explicit.dcm" "$tmp/implicit.dcm"
      if [ "$1" = dicom_structure ]; then
        { printf '\x03'; dataset "$tmp/jpeg.dcm"; } > "$2/jpeg"
        { printf '\x01'; dataset "$tmp/explicit.dcm"; } > "$2/explicit"
        { printf '\x00'; dataset "$tmp/implicit.dcm"; } > "$2/implicit"
        { printf '\x80'; dataset "$tmp/implicit.dcm"; } > "$2/implicit-all-sq"
      else
        { printf '\x02'; dataset "$tmp/explicit.dcm"; } > "$2/cstore-explicit"
        printf '\x01' > "$2/association-only"
        printf '\x00' > "$2/raw-empty"
      fi
      ;;
    *)
      echo "no seed recipe for $1: starting from an empty corpus" >&2
      ;;
  esac
  rm -rf "$tmp"
}

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
    export_csv)  # one profile byte (even: reference, odd: vendor-b), then exams.csv
      "$SYNTH" "$tmp/exp" --exams 5 --batch B1 > /dev/null
      "$SYNTH" "$tmp/exp" --exams 5 --batch B2 --utf8 > /dev/null
      { printf '\x00'; cat "$tmp/exp/B1/exams.csv"; } > "$2/cp932.csv"
      { printf '\x00'; cat "$tmp/exp/B2/exams.csv"; } > "$2/utf8-bom.csv"
      ;;
    hl7_message)
      cp "$ROOT"/tests/data/hl7/*.hl7 "$2/"
      ;;
    mllp_frame)
      for f in "$ROOT"/tests/data/hl7/*.hl7; do
        { printf '\x0b'; tr '\n' '\r' < "$f"; printf '\x1c\x0d'; } > "$2/$(basename "$f")"
      done
      ;;
    *)
      seeds_more "$@"
      ;;
  esac
  rm -rf "$tmp"
}

echo "# $(date -u +%FT%TZ), $SECS s per target" >> last-run.txt
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  [ -n "$(ls -A "seeds/$t")" ] || seeds "$t" "seeds/$t"
  echo "== $t: $SECS s"
  log=$(mktemp)
  # corpus/ (not committed) collects what libFuzzer finds; seeds/ (committed) is read only.
  if cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
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
