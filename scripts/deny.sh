#!/usr/bin/env bash
# `cargo deny check` (advisories, bans, licences, sources; policy in deny.toml) without GitHub:
# CI and the developers' machines reach only the package registries, so the RustSec advisory
# database is vendored as deny/advisory-db.tar.gz (its crates/ advisories and licence files;
# the commit and date it was taken at are in deny/advisory-db.rev). This unpacks it where
# cargo-deny looks for the default database under deny.toml's db-path, stamps it with the
# snapshot's date (cargo-deny reads the time of the last fetch from .git/FETCH_HEAD; no git
# repository is needed), and runs cargo-deny --offline, which never fetches the database.
# cargo-deny then refuses a snapshot older than deny.toml's maximum-db-staleness.
#
# Refreshing the snapshot, on a machine that reaches GitHub (the only step that needs it):
#   rm -rf target/advisory-dbs && cargo deny fetch db     # clones it into deny.toml's db-path
#   scripts/deny.sh pack target/advisory-dbs/advisory-db-3157b0e258782691/.git
# `pack GIT_DIR` works on any clone of rustsec/advisory-db (a bare one too); then run
# scripts/deny.sh, fix or record what the newer advisories report, and commit deny/ with that.
#
# Usage: scripts/deny.sh [CHECK...]  (e.g. `scripts/deny.sh advisories`; default: all four)
#        scripts/deny.sh pack GIT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot=deny/advisory-db.tar.gz
rev_file=deny/advisory-db.rev
# cargo-deny's directory for the default database URL: its name and the XxHash64 of the URL.
db=target/advisory-dbs/advisory-db-3157b0e258782691

if [ "${1:-}" = pack ]; then
  git_dir=${2:?usage: scripts/deny.sh pack GIT_DIR}
  # git archive writes a reproducible tar (mtimes are the commit's); gzip -n leaves out the
  # name and time, so the same commit packs to the same bytes.
  git --git-dir="$git_dir" archive --format=tar HEAD crates LICENSE.txt LICENSES | gzip -n -9 >"$snapshot"
  git --git-dir="$git_dir" show -s --format='%H %cI' HEAD >"$rev_file"
  echo "deny: packed advisory-db $(cat "$rev_file") into $snapshot" >&2
  exit 0
fi

read -r rev date <"$rev_file"
rm -rf "$db"
mkdir -p "$db/.git"
tar -xzf "$snapshot" -C "$db"
printf '%s\t\tbranch main of rustsec/advisory-db (vendored snapshot)\n' "$rev" >"$db/.git/FETCH_HEAD"
touch -d "$date" "$db/.git/FETCH_HEAD"

# --offline also makes cargo-deny run `cargo metadata --offline`, so the crates must be here
# first (crates.io is reachable); this is also what fills the index cache the yank check reads.
cargo fetch --locked --quiet
cargo deny --log-level error --offline --locked check "$@"
