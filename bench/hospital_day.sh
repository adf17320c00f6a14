#!/usr/bin/env bash
# A simulated large-hospital day, end to end (issue 11): EXAMS exams of IMAGES images of
# WIDTHxHEIGHT (default 60 x 40 at 1280x1024) exported by the synthetic department system,
# ingested, de-identified with the pixel stage (field-of-view mask, OCR with Tesseract, the
# post-mask identifier check) and uploaded to a real `hub serve` over mTLS on loopback.
# The gateway is pinned to CPUS (default the first two) with taskset, as the box has 2 cores.
# Target: under 5 minutes. Reports the wall time from start to `--exit-when-idle`, the exams
# at the hub, and the daemon's peak RSS (GNU time's maximum resident set size).
#
# usage: bench/hospital_day.sh [WORK=/tmp/fgw-hospital-day]
#   EXAMS=60 IMAGES=40 WIDTH=1280 HEIGHT=1024 CPUS=0,1
# The build is the release profile (what the box runs). Results go into docs/benchmarks.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/fgw-hospital-day}
EXAMS=${EXAMS:-60}
IMAGES=${IMAGES:-40}
WIDTH=${WIDTH:-1280}
HEIGHT=${HEIGHT:-1024}
CPUS=${CPUS:-0,1}
cd "$ROOT"
cargo build -q --release -p fgw-gateway --bin gateway
cargo build -q --release -p fgw-hub --bin hub
cargo build -q --release -p fgw-synth --example synth_department
BIN=$ROOT/target/release
rm -rf "$WORK"; mkdir -p "$WORK/export" "$WORK/gw/pki" "$WORK/hub"
"$BIN/examples/synth_department" "$WORK/export" --exams "$EXAMS" --images-per-exam "$IMAGES" \
  --width "$WIDTH" --height "$HEIGHT" --seed 11 --batch 20261201T0800 > /dev/null
echo "export: $(du -sh "$WORK/export" | cut -f1), $(find "$WORK/export" \( -name '*.jpg' -o -name '*.png' \) | wc -l) images"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen = "127.0.0.1:%s"\ndata_dir = "data"\n' "$PORT" > "$WORK/hub/hub.toml"
"$BIN/hub" init --config "$WORK/hub/hub.toml" > /dev/null
"$BIN/hub" issue-device --config "$WORK/hub/hub.toml" --device gw-bench --facility F0001 \
  --out "$WORK/gw/pki" > /dev/null
"$BIN/hub" issue-device --config "$WORK/hub/hub.toml" --device ops --facility SOC \
  --role operator --out "$WORK/ops" > /dev/null
"$BIN/hub" serve --config "$WORK/hub/hub.toml" 2> "$WORK/hub.log" &
HUB=$!
trap 'kill $HUB 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

cat > "$WORK/gw/gateway.toml" <<TOML
facility_id = "F0001"
device_id = "gw-bench"
state_dir = "state"

[export]
watch_dir = "$WORK/export"
poll_interval_secs = 1

[uplink]
hub_url = "https://127.0.0.1:$PORT"
ca_cert = "pki/ca.crt"
client_cert = "pki/device.crt"
client_key = "pki/device.key"
TOML
GW=("$BIN/gateway" --config "$WORK/gw/gateway.toml")
start=$(date +%s.%N)
RUST_LOG=warn taskset -c "$CPUS" /usr/bin/time -v -o "$WORK/time.txt" \
  "${GW[@]}" run --exit-when-idle 2> "$WORK/gw.log"
end=$(date +%s.%N)
wall=$(python3 -c "print(round($end - $start, 1))")
rss_kib=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time.txt")
cpu=$(awk -F': ' '/Percent of CPU/{print $2}' "$WORK/time.txt")
counts=$("${GW[@]}" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')
curl -s --cacert "$WORK/ops/ca.crt" --cert "$WORK/ops/device.crt" --key "$WORK/ops/device.key" \
  "https://127.0.0.1:$PORT/v1/facilities/F0001/exams" > "$WORK/listing.json"
at_hub=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/listing.json")
# Files per package: the exam record plus its images; withheld images stay on the box.
read -r files withheld < <(python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
print(sum(r["files"] for r in rows), sum(r["images_withheld"] for r in rows))' \
  "$WORK/listing.json")
echo "counts: $counts"
echo "RESULT exams=$EXAMS images_per_exam=$IMAGES size=${WIDTH}x${HEIGHT} cpus=$CPUS" \
  "wall_s=$wall exams_at_hub=$at_hub files_at_hub=$files images_withheld=$withheld" \
  "peak_rss_mib=$((rss_kib / 1024)) cpu=$cpu"
