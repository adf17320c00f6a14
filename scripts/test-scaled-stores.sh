#!/usr/bin/env bash
# The integration suite on the national stores (issue 15): starts PostgreSQL and a three-node
# Garage cluster (S3, replication factor 3), then runs the system tests with every hub they
# start on its own PostgreSQL database and its own prefix in the bucket
# (tests/common/scaled_stores.rs), instead of SQLite and files.
#
#   scripts/test-scaled-stores.sh            the whole system suite (about as long as the
#                                            embedded run of it; docs/hub-scale.md)
#   scripts/test-scaled-stores.sh FILTER…    only tests matching (cargo test filters), e.g.
#                                            what CI runs: hub_ e2e_upload researcher_export
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
source scripts/lib/postgres.sh
source scripts/lib/garage.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/fgw-stores.XXXXXX")
cleanup() {
  garage_down "$DIR/garage" >/dev/null 2>&1 || true
  pg_down "$DIR/pg" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
pg_up "$DIR/pg" "$(free_port)"
GARAGE_BIN=${GARAGE_BIN:-$(bash scripts/lib/ensure-garage.sh)}
export GARAGE_BIN
garage_up "$DIR/garage" 3 >/dev/null
cat "$DIR/pg/pg.env" "$DIR/garage/garage.env" > "$DIR/stores.env"
echo "test-scaled-stores: PostgreSQL and Garage up; running the system tests on them" >&2
# A bound on the whole run (the CI subset takes about 3 minutes here, the whole suite about
# 15): a store that stops answering fails the run with the report below instead of holding it.
# timeout(1) signals the tests' whole process group, hubs and gateways included.
limit=${FGW_STORES_TIMEOUT:-2400}
rc=0
FGW_TEST_STORES=$DIR/stores.env timeout -k 30 "$limit" \
  cargo test -p fgw-system-tests --test system ${1:+--} "$@" || rc=$?
if [ $rc -ne 0 ]; then
  # Last, because a failed run's tail is what CI keeps: the state of both stores.
  [ $rc -eq 124 ] && echo "test-scaled-stores: the tests did not finish within $limit s" >&2
  {
    echo "== the stores after the failed run"
    garage_report "$DIR/garage"
    echo "-- postgresql"
    tail -n 5 "$DIR/pg/server.log" | cut -c1-300 | sed 's/^/  log: /'
  } >&2
  exit $rc
fi
