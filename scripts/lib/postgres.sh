#!/usr/bin/env bash
# A throwaway PostgreSQL server for scripts (scripts/hub-cluster.sh): Debian's binaries
# (the `postgresql` package, installed by scripts/ensure-deps.sh), as the `postgres` system
# user when run as root (PostgreSQL refuses to run as root).
#
#   source scripts/lib/postgres.sh
#   pg_up DIR PORT    initdb in DIR/data, start on 127.0.0.1:PORT (socket in DIR), create
#                     role and database `fgw` with a random password (the role may create
#                     databases: the test harness makes one per hub, tests/common), write DIR/pg.env:
#                       PG_URL=postgres://fgw:PASSWORD@127.0.0.1:PORT/fgw
#                       PG_PID=<postmaster pid>
#                     Prints nothing; returns non-zero (with the server log on stderr) on
#                     failure.
#   pg_down DIR       stop it (fast shutdown) and remove DIR/data.
#
# Local socket connections are trusted (only the server's user reaches DIR); TCP connections
# need the password (scram-sha-256).

_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  echo "postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  return 1
}

# Run a command as the server's user: postgres when we are root, ourselves otherwise.
_pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_up() {
  local dir=${1:?pg_up DIR PORT} port=${2:?pg_up DIR PORT} bin pw
  bin=$(_pg_bin) || return 1
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir"
    # The server's user must reach DIR: parents that it cannot enter (a root-only mktemp
    # folder) get search permission only (o+x: no listing).
    local up=$dir
    while up=$(dirname "$up"); [ "$up" != / ]; do
      runuser -u postgres -- test -x "$up" || chmod o+x "$up"
    done
  fi
  chmod 700 "$dir"
  pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  _pg_as "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust \
    --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  _pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -h 127.0.0.1 -k $dir" start >/dev/null 2>&1 \
    || { cat "$dir/server.log" >&2; return 1; }
  _pg_as "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
    >/dev/null 2>"$dir/psql.log" <<SQL || { cat "$dir/psql.log" >&2; return 1; }
CREATE ROLE fgw LOGIN CREATEDB PASSWORD '$pw';
CREATE DATABASE fgw OWNER fgw;
SQL
  local pid
  pid=$(head -n 1 "$dir/data/postmaster.pid")
  umask 077
  printf 'PG_URL=postgres://fgw:%s@127.0.0.1:%s/fgw\nPG_PID=%s\n' "$pw" "$port" "$pid" \
    >"$dir/pg.env"
}

pg_down() {
  local dir=${1:?pg_down DIR} bin
  bin=$(_pg_bin) || return 1
  [ -d "$dir/data" ] || return 0
  _pg_as "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir/data" "$dir/pg.env"
}
