#!/usr/bin/env bash
# The hub's load test, long version (issue 15; docs/hub-scale.md#load-test). The short one is
# the system test tests/system/hub_load.rs (CI, no timing).
#
#   scripts/load-test.sh [WORKDIR]          (default WORKDIR: target/load-test)
#
# 1. Builds `hub` and `loadgen` (CARGO_TARGET_DIR honoured), unless HUB_BIN / LOADGEN_BIN.
# 2. Makes a corpus once (WORKDIR/corpus): the synthetic department system
#    (`synth_department`, SYNTH_BIN) and `gateway deid` (GATEWAY_BIN), CORPUS_EXAMS exams of
#    CORPUS_IMAGES images of CORPUS_WIDTH x CORPUS_HEIGHT pixels.
# 3. For each mode of MODES:
#      embedded  one `hub serve` on the embedded defaults (SQLite + files)
#      node1     scripts/hub-cluster.sh (PostgreSQL + 3-node Garage + 2 hub nodes); every
#                device talks to HUB1_URL only
#      node2     the same cluster; devices spread over HUB1_URL and HUB2_URL
#      pg1, pg2  1 or 2 hub nodes on PostgreSQL (scripts/lib/postgres.sh) and one shared
#                files directory, for a machine without the S3 store
#    and for each run of RUNS ("DEVICES:PACKAGES_PER_DEVICE:MAX_FILES", MAX_FILES 0 = all of
#    the corpus package's images) issues the certificates (`loadgen issue`) and runs
#    `loadgen run` with CONCURRENCY devices uploading at once and objects padded to PAD_TO
#    bytes, measuring the hub processes' CPU (and PostgreSQL's and Garage's as "store").
#    Each cluster run starts from a fresh cluster (the disk holds three copies of every
#    object); the metadata sizes of the last run (PostgreSQL tables, the SQLite file) are kept.
# 4. Writes WORKDIR/results/*.json, WORKDIR/results/table.md, and, with WRITE_DOCS=1, the
#    table into docs/benchmarks.md between the load-test markers.
#
# Everything shares this machine's cores: hubs, PostgreSQL, Garage and the generator. Node
# scaling is bounded by the machine, not by the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${1:-$ROOT/target/load-test}
mkdir -p "$WORK/results"
WORK=$(cd "$WORK" && pwd)
MODES=${MODES:-"embedded node1 node2"}
RUNS=${RUNS:-"200:1:30 1000:1:3"}
CONCURRENCY=${CONCURRENCY:-64}
PAD_TO=${PAD_TO:-500000}
FACILITIES_PER_DEVICE=${FACILITIES_PER_DEVICE:-1}   # 1: every device its own facility
CORPUS_EXAMS=${CORPUS_EXAMS:-20}
CORPUS_IMAGES=${CORPUS_IMAGES:-30}
CORPUS_WIDTH=${CORPUS_WIDTH:-1920}
CORPUS_HEIGHT=${CORPUS_HEIGHT:-1080}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [ -z "${HUB_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
  cargo build -q -p fgw-hub -p fgw-loadgen --bins
fi
HUB_BIN=${HUB_BIN:-$TARGET/debug/hub}
LOADGEN_BIN=${LOADGEN_BIN:-$TARGET/debug/loadgen}
export HUB_BIN

corpus=$WORK/corpus
if [ ! -d "$corpus/packages" ]; then
  if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${SYNTH_BIN:-}" ]; then
    cargo build -q -p fgw-gateway --bin gateway
    cargo build -q -p fgw-synth --example synth_department
  fi
  "$LOADGEN_BIN" prepare --corpus "$corpus" --exams "$CORPUS_EXAMS" \
    --images-per-exam "$CORPUS_IMAGES" --width "$CORPUS_WIDTH" --height "$CORPUS_HEIGHT" \
    --synth-bin "${SYNTH_BIN:-$TARGET/debug/examples/synth_department}" \
    --gateway-bin "${GATEWAY_BIN:-$TARGET/debug/gateway}"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_load MODE DEVICES PER MAX_FILES CONFIG URLS… -- PIDS… -- STORE_PIDS…
run_load() {
  local mode=$1 devices=$2 per=$3 max=$4 config=$5; shift 5
  local urls=() pids=() spids=() args=()
  while [ "$1" != -- ]; do urls+=(--hub-url "$1"); shift; done; shift
  while [ "$1" != -- ]; do pids+=(--hub-pid "$1"); shift; done; shift
  for p in "$@"; do spids+=(--store-pid "$p"); done
  local facilities=$(( devices / FACILITIES_PER_DEVICE ))
  local certs=$WORK/$mode/certs-$devices
  "$LOADGEN_BIN" issue --config "$config" --hub-bin "$HUB_BIN" --devices "$devices" \
    --facilities "$facilities" --out "$certs" --jobs 1
  local out=$WORK/results/$mode-$devices-$per-$max.json
  echo "load-test: $mode, $devices devices x $per package(s), max $max files" >&2
  "$LOADGEN_BIN" run "${urls[@]}" "${pids[@]}" "${spids[@]}" --certs "$certs" \
    --corpus "$corpus" --devices "$devices" --packages-per-device "$per" \
    --concurrency "$CONCURRENCY" --pad-to "$PAD_TO" --max-files "$max" \
    --json "$out" >/dev/null || echo "load-test: run $out had failures" >&2
}

embedded() {
  local spec devices per max
  for spec in $RUNS; do
    IFS=: read -r devices per max <<<"$spec"
    local dir=$WORK/embedded
    rm -rf "$dir"; mkdir -p "$dir"
    local port; port=$(free_port)
    printf 'listen = "127.0.0.1:%s"\ndata_dir = "data"\nmax_connections = 1024\n' "$port" >"$dir/hub.toml"
    "$HUB_BIN" init --config "$dir/hub.toml" >/dev/null
    "$HUB_BIN" serve --config "$dir/hub.toml" 2>"$dir/hub.log" &
    local pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    run_load embedded "$devices" "$per" "$max" "$dir/hub.toml" "https://127.0.0.1:$port" -- "$pid" --
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # Metadata per package on SQLite: the database file (and WAL) after the run.
    du -b "$dir/data/hub.sqlite"* >"$WORK/results/embedded-$devices-$per-$max.sqlite-bytes"
    rm -rf "$dir/data/objects"
  done
}

cluster() {  # node1|node2
  local mode=$1 spec devices per max
  for spec in $RUNS; do
    IFS=: read -r devices per max <<<"$spec"
    local dir=$WORK/$mode/cluster
    bash scripts/hub-cluster.sh down "$dir" 2>/dev/null || true
    rm -rf "$dir"
    bash scripts/hub-cluster.sh up "$dir"
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
    local store=($(source "$dir/pg/pg.env"; echo "$PG_PID"; pgrep -P "$PG_PID" || true) $GARAGE_PIDS)
    if [ "$mode" = node1 ]; then
      run_load "$mode" "$devices" "$per" "$max" "$HUB_CONFIG" "$HUB1_URL" -- "$HUB1_PID" "$HUB2_PID" -- "${store[@]}"
    else
      run_load "$mode" "$devices" "$per" "$max" "$HUB_CONFIG" "$HUB1_URL" "$HUB2_URL" -- "$HUB1_PID" "$HUB2_PID" -- "${store[@]}"
    fi
    # Metadata per package on PostgreSQL: every table's size and rows after the run.
    psql "$PG_URL" -X -A -F $'\t' -c "SELECT relname, pg_total_relation_size(relid), n_live_tup FROM pg_stat_user_tables ORDER BY 2 DESC" \
      >"$WORK/results/$mode-$devices-$per-$max.pg-tables.tsv" 2>/dev/null || true
    du -sb "$dir/garage" >"$WORK/results/$mode-$devices-$per-$max.garage-bytes" 2>/dev/null || true
    bash scripts/hub-cluster.sh down "$dir"
    rm -rf "$dir"
  done
}

pgfs() {  # pg1|pg2: PostgreSQL metadata, objects in one files directory both nodes share
  local mode=$1 spec devices per max
  source scripts/lib/postgres.sh
  for spec in $RUNS; do
    IFS=: read -r devices per max <<<"$spec"
    local dir=$WORK/$mode
    [ -d "$dir/pg" ] && pg_down "$dir/pg"
    rm -rf "$dir"; mkdir -p "$dir"
    pg_up "$dir/pg" "$(free_port)"
    local PG_URL PG_PID
    source "$dir/pg/pg.env"
    local ports=() pids=() urls=() n
    for n in 1 2; do
      ports+=("$(free_port)")
      printf 'listen = "127.0.0.1:%s"\ndata_dir = "data"\nmax_connections = 1024\n[store]\nmeta = "%s"\n' \
        "${ports[-1]}" "$PG_URL" >"$dir/hub$n.toml"
    done
    "$HUB_BIN" init --config "$dir/hub1.toml" >/dev/null 2>&1
    local nodes=1; [ "$mode" = pg2 ] && nodes=2
    for n in $(seq "$nodes"); do
      "$HUB_BIN" serve --config "$dir/hub$n.toml" 2>"$dir/hub$n.log" &
      pids+=($!); urls+=("https://127.0.0.1:${ports[$((n-1))]}")
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/${ports[$((n-1))]}") 2>/dev/null && break; sleep 0.1; done
    done
    local store=($PG_PID $(pgrep -P "$PG_PID" || true))
    run_load "$mode" "$devices" "$per" "$max" "$dir/hub1.toml" "${urls[@]}" -- "${pids[@]}" -- "${store[@]}"
    psql "$PG_URL" -X -A -F $'\t' -c "SELECT relname, pg_total_relation_size(relid), n_live_tup FROM pg_stat_user_tables ORDER BY 2 DESC" \
      >"$WORK/results/$mode-$devices-$per-$max.pg-tables.tsv" 2>/dev/null || true
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    pg_down "$dir/pg"
    rm -rf "$dir/data/objects"
  done
}

for mode in $MODES; do
  case "$mode" in
    embedded) embedded ;;
    pg1|pg2) pgfs "$mode" ;;
    node1|node2) cluster "$mode" ;;
    *) echo "load-test: unknown mode $mode" >&2; exit 2 ;;
  esac
done

python3 scripts/load-test-table.py "$WORK/results" >"$WORK/results/table.md"
cat "$WORK/results/table.md"
if [ "${WRITE_DOCS:-0}" = 1 ]; then
  python3 scripts/load-test-table.py "$WORK/results" --into docs/benchmarks.md
fi
