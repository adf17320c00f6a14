#!/usr/bin/env bash
# Install Garage (the S3 store the hub's S3 object store is tested against, scripts/lib/garage.sh)
# into target/tools/bin when no garage is found ($GARAGE_BIN, PATH, target/tools/bin). Built
# from crates.io (the only registry CI reaches), pinned to the version the tests were written
# for. Idempotent; prints the binary's path. Called from scripts/ensure-deps.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=2.5.0

if [ -n "${GARAGE_BIN:-}" ] && [ -x "$GARAGE_BIN" ]; then
  echo "$GARAGE_BIN"; exit 0
fi
if command -v garage >/dev/null 2>&1; then
  command -v garage; exit 0
fi
bin=$root/target/tools/bin/garage
if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "ensure-garage: building garage $version into target/tools (a few minutes)" >&2
  cargo install garage --locked --version "$version" --root "$root/target/tools" >&2
fi
echo "$bin"
