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
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
  FGW_TEST_STORES=$DIR/stores.env cargo test -p fgw-system-tests --test system
else
  FGW_TEST_STORES=$DIR/stores.env cargo test -p fgw-system-tests --test system -- "${filters[@]}"
fi
