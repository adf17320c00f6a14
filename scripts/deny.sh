#!/usr/bin/env bash
# `cargo deny check` (advisories, bans, licences, sources; policy in deny.toml).
#
# bans, licenses and sources need only crates.io. advisories needs the RustSec advisory
# database, which lives on GitHub; CI reaches only the package registries, and the project
# does not commit a copy of that database (third-party data that goes stale; see
# docs/decisions.md). So advisories are checked when FGW_ADVISORY_DB names a clone of
# rustsec/advisory-db (bare or not), and otherwise skipped with a message on stderr, never
# silently. The clone is unpacked where cargo-deny looks for its default database and
# .git/FETCH_HEAD is stamped with the clone's commit date (cargo-deny reads the time of the
# last fetch from it), so deny.toml's maximum-db-staleness refuses an old clone.
#
# cargo-deny never fetches here (--offline): its own fetch, pointed at a folder inside this
# repository that is not yet a clone, was seen to reset the repository's work tree.
#
# Usage: [FGW_ADVISORY_DB=DIR] scripts/deny.sh [CHECK...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-deny's directory for the default database URL: its name and the XxHash64 of the URL.
db=target/advisory-dbs/advisory-db-3157b0e258782691
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(advisories bans licenses sources)

# --offline also makes cargo-deny's `cargo metadata` offline: fetch the crates first
# (crates.io is reachable); this also fills the index cache the yank check reads.
cargo fetch --locked --quiet

have_db=no
if [ -n "${FGW_ADVISORY_DB:-}" ]; then
  git_dir=$FGW_ADVISORY_DB
  [ -d "$git_dir/.git" ] && git_dir=$git_dir/.git
  rm -rf "$db"; mkdir -p "$db/.git"
  git --git-dir="$git_dir" archive --format=tar HEAD crates | tar -x -C "$db"
  read -r rev date < <(git --git-dir="$git_dir" show -s --format='%H %cI' HEAD)
  printf '%s\t\tbranch main of rustsec/advisory-db\n' "$rev" >"$db/.git/FETCH_HEAD"
  touch -d "$date" "$db/.git/FETCH_HEAD"
  echo "deny: advisory database from $FGW_ADVISORY_DB ($rev, $date)" >&2
  have_db=yes
fi

run=()
for c in "${checks[@]}"; do
  if [ "$c" = advisories ] && [ "$have_db" = no ]; then
    echo "deny: ADVISORIES NOT CHECKED: set FGW_ADVISORY_DB to a clone of" \
         "rustsec/advisory-db (GitHub is not reachable from CI); bans, licences and sources" \
         "are checked" >&2
    continue
  fi
  run+=("$c")
done
[ ${#run[@]} -gt 0 ] || exit 0
cargo deny --log-level error --offline --locked check "${run[@]}"
