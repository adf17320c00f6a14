#!/usr/bin/env bash
# Hub memory under parallel large uploads (issue 10; results in docs/benchmarks.md): a real
# `hub serve` (release build) on 127.0.0.1, N devices of N facilities (certificates made by
# `hub issue-device`), each PUTting one object of SIZE_MIB MiB at the same moment with curl
# over mutual TLS (`curl -T` streams the file). Reports the hub's peak resident set (VmHWM of
# /proc/<pid>/status), the HTTP codes, the wall time, and checks every object is stored.
#
# usage: bench/hub_memory.sh [N=20] [SIZE_MIB=256]
# Env: WORK (scratch dir, default a new one under /tmp; needs 2 x N x SIZE_MIB of disk),
#      HUB_BIN (another hub binary to measure, e.g. an older build; default: release build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-20}
SIZE_MIB=${2:-256}
WORK=${WORK:-$(mktemp -d /tmp/fgw-hub-memory.XXXXXX)}
mkdir -p "$WORK"
if [ -z "${HUB_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -p fgw-hub --bin hub >/dev/null)
  HUB_BIN=$ROOT/target/release/hub
fi

HUB_PID=
cleanup() {
  [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Defaults otherwise (one upload per device and facility: no limit is reached), so an older
# hub binary reads the same file.
cat > "$WORK/hub.toml" <<EOF
listen = "127.0.0.1:$PORT"
data_dir = "data"
EOF
"$HUB_BIN" init --config "$WORK/hub.toml" >/dev/null
for i in $(seq 1 "$N"); do
  f=$(printf 'F%04d' "$i")
  "$HUB_BIN" issue-device --config "$WORK/hub.toml" --device "gw-$i" --facility "$f" \
    --out "$WORK/pki-$i" >/dev/null
done

echo "== $N objects of $SIZE_MIB MiB (random, one per device)"
for i in $(seq 1 "$N"); do
  head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/obj-$i"
  sha256sum "$WORK/obj-$i" | cut -d' ' -f1 > "$WORK/obj-$i.sha"
done

"$HUB_BIN" serve --config "$WORK/hub.toml" 2> "$WORK/hub.log" &
HUB_PID=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$HUB_PID/status"; }
echo "hub pid $HUB_PID, idle: VmRSS $(rss VmRSS) KiB, VmHWM $(rss VmHWM) KiB"

t0=$(date +%s.%N)
CURLS=()
for i in $(seq 1 "$N"); do
  p=$WORK/pki-$i
  curl -sS --cacert "$p/ca.crt" --cert "$p/device.crt" --key "$p/device.key" \
    -T "$WORK/obj-$i" -H 'content-type: application/octet-stream' \
    -o "$WORK/resp-$i" -w '%{http_code}\n' \
    "https://127.0.0.1:$PORT/v1/objects/$(cat "$WORK/obj-$i.sha")" > "$WORK/code-$i" &
  CURLS+=($!)
done
wait "${CURLS[@]}"
t1=$(date +%s.%N)

codes=$(cat "$WORK"/code-* | sort | uniq -c | tr -s ' ' | tr '\n' ';')
stored=0
for i in $(seq 1 "$N"); do
  s=$(cat "$WORK/obj-$i.sha")
  [ -f "$WORK/data/objects/${s:0:2}/$s" ] && stored=$((stored + 1))
done
hwm=$(rss VmHWM)
echo "HTTP codes:${codes}"
echo "objects stored: $stored of $N"
echo "wall time: $(python3 -c "print(round($t1 - $t0, 1))") s for $((N * SIZE_MIB)) MiB"
echo "hub peak RSS (VmHWM): $hwm KiB = $((hwm / 1024)) MiB"
