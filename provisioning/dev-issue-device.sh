#!/usr/bin/env bash
# Development only: issue a gateway client certificate from the hub's society CA and register it.
#
#   provisioning/dev-issue-device.sh HUB_CONFIG DEVICE_ID FACILITY_ID OUT_DIR
#
# Writes OUT_DIR/device.crt, OUT_DIR/device.key (0600) and OUT_DIR/ca.crt, and prints the
# certificate fingerprint as JSON. Uses $HUB_BIN if set, else `cargo run -q --bin hub --`.
# Extra environment: HUB_ROLE=operator issues a read-only operator certificate.
set -euo pipefail

usage() {
    echo "usage: $0 HUB_CONFIG DEVICE_ID FACILITY_ID OUT_DIR" >&2
    exit 2
}
[[ $# -eq 4 ]] || usage
config=$1 device=$2 facility=$3 out=$4
[[ -f $config ]] || { echo "$0: hub config $config not found" >&2; exit 2; }

if [[ -n ${HUB_BIN:-} ]]; then
    hub=("$HUB_BIN")
else
    # Run from the repository so cargo finds the manifest wherever the script is called from.
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    hub=(cargo run -q --manifest-path "$repo/Cargo.toml" --bin hub --)
fi

exec "${hub[@]}" issue-device \
    --config "$config" \
    --device "$device" \
    --facility "$facility" \
    --role "${HUB_ROLE:-device}" \
    --out "$out"
