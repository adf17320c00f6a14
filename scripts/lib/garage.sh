# Garage (https://garagehq.deuxfleurs.fr), a distributed S3-compatible store, as a local cluster
# for the tests of the hub's S3 object store (crates/hub/src/store/s3): NODES processes on
# loopback with their own RPC, S3 and admin ports, one rpc_secret, replication factor 3 (each
# object on every node of three; writes and reads need a quorum of two), a bucket `fgw` and a
# key that may read, write and own it. docs/decisions.md ("Objects on S3") says why Garage.
#
# Source it, then:
#   garage_up DIR [NODES]   start the cluster in DIR (created); writes DIR/garage.env with
#                           S3_ENDPOINT (node 1), S3_ENDPOINT2 (node 2), S3_BUCKET, S3_REGION,
#                           S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, GARAGE_PIDS, and per node
#                           DIR/nodeN/{garage.toml,pid,log}
#   garage_stop_node DIR N  kill node N (SIGKILL: a crash)
#   garage_down DIR         stop every node of the cluster
#   garage_probe DIR        an object written, read back and deleted through every node's
#                           S3 endpoint (curl's SigV4); garage_up returns only once it passes
#   garage_report DIR       each node alive or not, the cluster's view of its nodes, the last
#                           lines of each node's log, free disk: for a failed run's output
#
# The binary: $GARAGE_BIN, else `garage` on PATH, else target/tools/bin/garage (what
# scripts/lib/ensure-garage.sh installs). Ports: free ones from a random base, or from
# $GARAGE_BASE_PORT.

garage_bin() {
  if [ -n "${GARAGE_BIN:-}" ]; then
    [ -x "$GARAGE_BIN" ] || { echo "garage: GARAGE_BIN=$GARAGE_BIN is not an executable" >&2; return 1; }
    echo "$GARAGE_BIN"
  elif command -v garage >/dev/null 2>&1; then
    command -v garage
  else
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    [ -x "$root/target/tools/bin/garage" ] || {
      echo "garage: no binary (set GARAGE_BIN, put garage on PATH or run scripts/lib/ensure-garage.sh)" >&2
      return 1
    }
    echo "$root/target/tools/bin/garage"
  fi
}

# Whether something listens on 127.0.0.1:$1.
_garage_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_garage_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# garage -c <node 1's config> ARGS...
_garage_cli() {
  local dir=$1; shift
  "$(garage_bin)" -c "$dir/node1/garage.toml" "$@"
}

garage_up() {
  local dir=$1 nodes=${2:-3}
  local bin; bin=$(garage_bin) || return 1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  # Three ports per node (RPC, S3, admin), all free.
  local base tries=0
  while :; do
    base=${GARAGE_BASE_PORT:-$((20000 + (RANDOM % 400) * 100))}
    local busy=no i
    for ((i = 1; i <= nodes * 3; i++)); do
      if _garage_port_busy $((base + i)); then busy=yes; break; fi
    done
    [ $busy = no ] && break
    tries=$((tries + 1))
    if [ -n "${GARAGE_BASE_PORT:-}" ] || [ $tries -ge 20 ]; then
      echo "garage: no free ports from $base" >&2; return 1
    fi
  done

  local secret; secret=$(_garage_hex 32)
  local pids=() n
  for ((n = 1; n <= nodes; n++)); do
    local nd=$dir/node$n rpc=$((base + 3 * n - 2)) s3=$((base + 3 * n - 1)) admin=$((base + 3 * n))
    mkdir -p "$nd/meta" "$nd/data"
    cat >"$nd/garage.toml" <<EOF
metadata_dir = "$nd/meta"
data_dir = "$nd/data"
db_engine = "lmdb"
lmdb_map_size = "8GiB"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(_garage_hex 16)"
EOF
    chmod 600 "$nd/garage.toml"
    echo "$s3" >"$nd/s3_port"
    NO_COLOR=1 RUST_LOG=${GARAGE_LOG:-warn} "$bin" -c "$nd/garage.toml" server >"$nd/log" 2>&1 &
    echo $! >"$nd/pid"
    pids+=("$!")
  done
  echo "${pids[*]}" >"$dir/pids"

  # Node 1 answers its CLI once its RPC is up.
  local ok=no
  for ((i = 0; i < 100; i++)); do
    if _garage_cli "$dir" status >/dev/null 2>&1; then ok=yes; break; fi
    sleep 0.2
  done
  [ $ok = yes ] || { echo "garage: node 1 did not start (see $dir/node1/log)" >&2; garage_down "$dir"; return 1; }

  local ids=()
  for ((n = 1; n <= nodes; n++)); do
    local id
    for ((i = 0; i < 100; i++)); do
      id=$("$bin" -c "$dir/node$n/garage.toml" node id -q 2>/dev/null) && break
      sleep 0.2
    done
    [ -n "$id" ] || { echo "garage: node $n did not start (see $dir/node$n/log)" >&2; garage_down "$dir"; return 1; }
    ids+=("$id")
    [ "$n" -gt 1 ] || continue
    # `node id` reads the node's key file, which is there before its RPC listens.
    ok=no
    for ((i = 0; i < 100; i++)); do
      if _garage_cli "$dir" node connect "$id" >/dev/null 2>&1; then ok=yes; break; fi
      sleep 0.2
    done
    [ $ok = yes ] || { echo "garage: node $n is not reachable (see $dir/node$n/log)" >&2; garage_down "$dir"; return 1; }
  done

  # One zone per node, so the three copies of each object land on three nodes.
  for ((n = 1; n <= nodes; n++)); do
    _garage_cli "$dir" layout assign -z "dc$n" -c 1G "${ids[$((n - 1))]%%@*}" >/dev/null || {
      garage_down "$dir"; return 1; }
  done
  _garage_cli "$dir" layout apply --version 1 >/dev/null || { garage_down "$dir"; return 1; }

  local key_id="GK$(_garage_hex 12)" key_secret; key_secret=$(_garage_hex 32)
  ok=no
  for ((i = 0; i < 100; i++)); do
    # The layout reaches every node shortly after it is applied.
    if _garage_cli "$dir" bucket create fgw >/dev/null 2>&1 || _garage_cli "$dir" bucket info fgw >/dev/null 2>&1; then
      ok=yes; break
    fi
    sleep 0.2
  done
  [ $ok = yes ] || { echo "garage: could not create bucket fgw" >&2; garage_down "$dir"; return 1; }
  _garage_cli "$dir" key import -n fgw-test --yes "$key_id" "$key_secret" >/dev/null &&
    _garage_cli "$dir" bucket allow --read --write --owner fgw --key "$key_id" >/dev/null || {
      garage_down "$dir"; return 1; }

  cat >"$dir/garage.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$(cat "$dir/node1/s3_port")
S3_ENDPOINT2=http://127.0.0.1:$(cat "$dir/node$((nodes > 1 ? 2 : 1))/s3_port")
S3_BUCKET=fgw
S3_REGION=garage
S3_ACCESS_KEY_ID=$key_id
S3_SECRET_ACCESS_KEY=$key_secret
GARAGE_PIDS="${pids[*]}"
EOF
  chmod 600 "$dir/garage.env"

  # `bucket create` answers once the metadata tables have a quorum; objects also need the
  # block store of two nodes. Tests start right after this, so wait until S3 itself works.
  local t0=$SECONDS
  until garage_probe "$dir" 2>"$dir/probe.err"; do
    if [ $((SECONDS - t0)) -ge "${GARAGE_READY_SECS:-90}" ]; then
      echo "garage: S3 did not work within ${GARAGE_READY_SECS:-90} s: $(cat "$dir/probe.err")" >&2
      garage_report "$dir" >&2
      garage_down "$dir"
      return 1
    fi
    sleep 0.5
  done
}

# PUT, GET, DELETE of a small object through each node's S3 endpoint. Prints nothing; on
# failure one line on stderr naming the node, the operation and the HTTP status.
garage_probe() {
  local dir=$1 n=1 s3 key code body=$dir/probe.body
  local id secret
  id=$(sed -n 's/^S3_ACCESS_KEY_ID=//p' "$dir/garage.env")
  secret=$(sed -n 's/^S3_SECRET_ACCESS_KEY=//p' "$dir/garage.env")
  echo "probe $RANDOM" >"$body"
  while [ -f "$dir/node$n/s3_port" ]; do
    s3=http://127.0.0.1:$(cat "$dir/node$n/s3_port")
    key=fgw/.probe-node$n
    local op
    for op in PUT GET DELETE; do
      local args=(-sS -o "$dir/probe.out" -w '%{http_code}' --max-time 20
        --aws-sigv4 "aws:amz:garage:s3" --user "$id:$secret"
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$op")
      [ "$op" = PUT ] && args+=(--data-binary "@$body")
      code=$(curl "${args[@]}" "$s3/$key" 2>&1) || true
      case "$op:$code" in
        PUT:200 | DELETE:204 | DELETE:200) ;;
        GET:200) cmp -s "$body" "$dir/probe.out" || { echo "node $n: GET returned other bytes" >&2; return 1; } ;;
        *) echo "node $n: $op answered ${code:-nothing}: $(head -c 200 "$dir/probe.out" 2>/dev/null | tr '\n' ' ')" >&2; return 1 ;;
      esac
    done
    n=$((n + 1))
  done
}

garage_report() {
  local dir=$1 f n pid
  echo "-- garage cluster in $dir"
  for f in "$dir"/node*/log; do
    n=$(basename "$(dirname "$f")")
    pid=$(cat "$dir/$n/pid" 2>/dev/null || echo "")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$n: running (pid $pid)"; else echo "$n: NOT running"; fi
    tail -n 4 "$f" | cut -c1-300 | sed "s/^/  $n log: /"
  done
  timeout 20 "$(garage_bin)" -c "$dir/node1/garage.toml" status 2>&1 | cut -c1-160 | sed 's/^/  status: /'
  df -h "$dir" | tail -n 1 | sed 's/^/  disk: /'
}

garage_stop_node() {
  local dir=$1 n=$2
  [ -f "$dir/node$n/pid" ] || return 0
  kill -KILL "$(cat "$dir/node$n/pid")" 2>/dev/null || true
  rm -f "$dir/node$n/pid"
}

garage_down() {
  local dir=$1 f pid
  for f in "$dir"/node*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$dir"/node*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
