#!/usr/bin/env bash
# The hub at scale on one machine (issue 15, docs/hub-scale.md): PostgreSQL, a three-node
# Garage cluster (S3-compatible, replication factor 3) and two hub nodes on loopback, sharing
# one database, one bucket and one society CA.
#
#   scripts/hub-cluster.sh up DIR     start everything; writes DIR/cluster.env (shell syntax):
#       HUB1_URL, HUB2_URL       https://127.0.0.1:PORT of each hub node
#       HUB1_PID, HUB2_PID       their process ids
#       HUB_CONFIG               a hub.toml (node 1's) for `hub issue-device`, `hub export`, …
#       HUB2_CONFIG              node 2's
#       PG_URL, S3_ENDPOINT, S3_BUCKET, …   the stores, for tools
#   scripts/hub-cluster.sh down DIR   stop everything started by `up`
#
# Both nodes use the one society CA and server certificate made by `hub init` on node 1
# (naming localhost and 127.0.0.1), and node 1's TUF repository (releases); in a data centre
# these files sit on every node or on shared storage. The rest of the shared state is in
# PostgreSQL and the bucket. HUB_BIN overrides the hub binary (default: built with cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 up|down DIR" >&2; exit 2; }
source scripts/lib/postgres.sh
source scripts/lib/garage.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_listening() {  # port pid log
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "hub-cluster: hub exited:" >&2; tail -20 "$3" >&2; return 1; }
    sleep 0.1
  done
  echo "hub-cluster: hub on port $1 did not listen" >&2; return 1
}

up() {
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/cluster.env" ] || { echo "hub-cluster: $dir/cluster.env exists (run down first)" >&2; exit 1; }
  local hub=${HUB_BIN:-}
  if [ -z "$hub" ]; then
    cargo build -q -p fgw-hub --bin hub
    hub=$ROOT/target/debug/hub
  fi
  pg_up "$dir/pg" "$(free_port)"
  source "$dir/pg/pg.env"
  [ -n "${GARAGE_BIN:-}" ] || GARAGE_BIN=$(bash scripts/lib/ensure-garage.sh)
  export GARAGE_BIN
  garage_up "$dir/garage" 3 >/dev/null
  source "$dir/garage/garage.env"
  local p1 p2 n
  p1=$(free_port); p2=$(free_port)
  for n in 1 2; do
    local port=$p1 endpoint=$S3_ENDPOINT
    [ $n = 2 ] && { port=$p2; endpoint=$S3_ENDPOINT2; }
    mkdir -p "$dir/hub$n"
    # Each node talks to its own Garage node: the S3 side has no single entry point either.
    cat > "$dir/hub$n/hub.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "data"
server_names = ["localhost", "127.0.0.1"]
[tls]
ca_cert = "$dir/hub1/data/pki/ca.crt"
ca_key = "$dir/hub1/data/pki/ca.key"
server_cert = "$dir/hub1/data/pki/server.crt"
server_key = "$dir/hub1/data/pki/server.key"
manufacturing_ca_cert = "$dir/hub1/data/pki/manufacturing-ca.crt"
manufacturing_ca_key = "$dir/hub1/data/pki/manufacturing-ca.key"
[releases]
repo_dir = "$dir/hub1/data/tuf/repo"
keys_dir = "$dir/hub1/data/tuf/keys"
[store]
meta = "$PG_URL"
objects = "s3"
[store.s3]
endpoint = "$endpoint"
bucket = "$S3_BUCKET"
region = "$S3_REGION"
access_key_id = "$S3_ACCESS_KEY_ID"
secret_access_key = "$S3_SECRET_ACCESS_KEY"
TOML
    chmod 600 "$dir/hub$n/hub.toml"
  done
  "$hub" init --config "$dir/hub1/hub.toml" >/dev/null
  local pids=()
  for n in 1 2; do
    local port=$p1; [ $n = 2 ] && port=$p2
    # Detached from the caller's terminal and pipes: `up` returns, the nodes keep serving.
    setsid "$hub" serve --config "$dir/hub$n/hub.toml" </dev/null >/dev/null 2>"$dir/hub$n/hub.log" &
    pids+=($!)
    echo $! > "$dir/hub$n/pid"
    wait_listening "$port" "$!" "$dir/hub$n/hub.log"
  done
  cat > "$dir/cluster.env" <<ENV
HUB1_URL=https://127.0.0.1:$p1
HUB2_URL=https://127.0.0.1:$p2
HUB1_PID=${pids[0]}
HUB2_PID=${pids[1]}
HUB_CONFIG=$dir/hub1/hub.toml
HUB2_CONFIG=$dir/hub2/hub.toml
PG_URL='$PG_URL'
S3_ENDPOINT=$S3_ENDPOINT
S3_ENDPOINT2=$S3_ENDPOINT2
S3_BUCKET=$S3_BUCKET
GARAGE_PIDS='$GARAGE_PIDS'
ENV
  chmod 600 "$dir/cluster.env"
  echo "hub-cluster: up; source $dir/cluster.env" >&2
}

down() {
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  local n
  for n in 1 2; do
    if [ -f "$dir/hub$n/pid" ]; then
      local pid; pid=$(cat "$dir/hub$n/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/hub$n/pid"
    fi
  done
  [ -d "$dir/garage" ] && garage_down "$dir/garage" || true
  [ -d "$dir/pg" ] && pg_down "$dir/pg" || true
  rm -f "$dir/cluster.env"
  echo "hub-cluster: down" >&2
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
