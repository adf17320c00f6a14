#!/usr/bin/env bash
# After the target tree is built: no login for anyone, no shell for the daemon's user,
# the units the appliance runs enabled, the gateway's configuration directory owned by root.
set -euo pipefail
TARGET_DIR=$1
# No getty on any console; the status screen owns tty1.
for unit in getty@.service serial-getty@.service console-getty.service autovt@.service; do
  ln -sf /dev/null "$TARGET_DIR/etc/systemd/system/$unit"
done
# Root has no password and no shell.
sed -i 's#^root:[^:]*:#root:*:#' "$TARGET_DIR/etc/shadow"
sed -i 's#^\(root:.*:\)[^:]*$#\1/usr/sbin/nologin#' "$TARGET_DIR/etc/passwd"
mkdir -p "$TARGET_DIR/etc/systemd/system/multi-user.target.wants"
for unit in facility-gateway.service facility-gateway-health.service \
            facility-gateway-status.service nftables.service systemd-timesyncd.service; do
  ln -sf "/usr/lib/systemd/system/$unit" "$TARGET_DIR/etc/systemd/system/multi-user.target.wants/$unit"
done
chmod 0755 "$TARGET_DIR/etc/facility-gateway"
