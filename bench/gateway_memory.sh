#!/usr/bin/env bash
# Gateway memory with a large upload backlog (issue 10): the daemon ingests and de-identifies
# N exams (text only) while its hub is unreachable, so every item ends queued for upload; the
# script then reads the daemon's peak resident memory (VmHWM in /proc) and `gateway status`.
# Target: under 128 MiB with 100,000 queued items. Results go into docs/benchmarks.md.
#
# usage: bench/gateway_memory.sh [EXAMS=100000] [WORK=/tmp/fgw-gw-memory]
# The exams are written as BATCHES (10) synthetic batches, so no single exams.csv is above the
# export table cap. The build is the release profile (what the box runs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXAMS=${1:-100000}
WORK=${2:-/tmp/fgw-gw-memory}
BATCHES=${BATCHES:-10}
PER=$((EXAMS / BATCHES))
cd "$ROOT"
cargo build -q --release -p fgw-gateway --bin gateway
cargo build -q --release -p fgw-synth --example synth_department
BIN=$ROOT/target/release
rm -rf "$WORK"; mkdir -p "$WORK/export" "$WORK/gw/pki"
for b in $(seq 1 "$BATCHES"); do
  "$BIN/examples/synth_department" "$WORK/export" --exams "$PER" --images-per-exam 0 \
    --seed "$b" --batch "$(printf '20261201T%04d' "$b")" > /dev/null
done
# A hub that is never there: port 9 on loopback refuses connections. The uplink still needs a
# valid device certificate, so a society CA is made with `hub init` and one device issued.
cargo build -q --release -p fgw-hub --bin hub
printf 'listen = "127.0.0.1:9"\ndata_dir = "data"\n' > "$WORK/hub.toml"
"$BIN/hub" init --config "$WORK/hub.toml" > /dev/null
"$BIN/hub" issue-device --config "$WORK/hub.toml" --device gw-bench --facility F0001 \
  --out "$WORK/gw/pki" > /dev/null
cat > "$WORK/gw/gateway.toml" <<TOML
facility_id = "F0001"
device_id = "gw-bench"
state_dir = "state"

[export]
watch_dir = "$WORK/export"
poll_interval_secs = 1

[uplink]
hub_url = "https://127.0.0.1:9"
ca_cert = "pki/ca.crt"
client_cert = "pki/device.crt"
client_key = "pki/device.key"
TOML
GW=("$BIN/gateway" --config "$WORK/gw/gateway.toml")
start=$(date +%s)
RUST_LOG=warn "${GW[@]}" run 2> "$WORK/gw.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
# Done when every exam is past de-identification (queued for upload, or quarantined).
while :; do
  sleep 5
  kill -0 $PID || { echo "gateway exited:"; tail -20 "$WORK/gw.log"; exit 1; }
  st=$("${GW[@]}" status --json 2>/dev/null || echo '{}')
  done_n=$(python3 -c 'import json,sys; c=json.loads(sys.argv[1]).get("counts",{}); print(sum(v for k,v in c.items() if k in ("deidentified","acked","quarantined","superseded") and isinstance(v,int)))' "$st")
  echo "$(( $(date +%s) - start )) s: $done_n of $EXAMS past de-identification, VmRSS $(awk '/VmRSS/{print $2}' /proc/$PID/status) kB"
  [ "$done_n" -ge "$EXAMS" ] && break
done
hwm=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
rss=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
echo "queued: $("${GW[@]}" status 2>/dev/null | head -20)"
echo "RESULT exams=$EXAMS peak_rss_kib=$hwm rss_now_kib=$rss peak_rss_mib=$((hwm / 1024)) wall_s=$(( $(date +%s) - start ))"
