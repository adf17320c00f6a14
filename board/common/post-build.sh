#!/usr/bin/env bash
# After the target tree is built: no login for anyone, no shell for the daemon's user,
# the units the appliance runs enabled, /data's encrypted volume, the gateway's
# configuration directory owned by root.
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
            facility-gateway-status.service facility-gateway-firewall.service \
            nftables.service systemd-timesyncd.service; do
  ln -sf "/usr/lib/systemd/system/$unit" "$TARGET_DIR/etc/systemd/system/multi-user.target.wants/$unit"
done
mkdir -p "$TARGET_DIR/etc/systemd/system/timers.target.wants"
ln -sf /usr/lib/systemd/system/facility-gateway-firewall.timer \
  "$TARGET_DIR/etc/systemd/system/timers.target.wants/facility-gateway-firewall.timer"
# /data: LUKS2 bound to the TPM (facility-gateway-data-volume.service formats it on the
# first boot; crypttab opens it), ext4 made inside on the first mount. nofail: a /data that
# cannot be opened leaves the daemon stopped (RequiresMountsFor) rather than the box in
# emergency mode, so the health check can mark a new slot bad and fall back; with nofail the
# mount is no longer ordered before local-fs.target, so it is ordered before tmpfiles, which
# makes the state directories in it.
mkdir -p "$TARGET_DIR/etc/systemd/system/cryptsetup.target.wants" "$TARGET_DIR/data"
ln -sf /usr/lib/systemd/system/facility-gateway-data-volume.service \
  "$TARGET_DIR/etc/systemd/system/cryptsetup.target.wants/facility-gateway-data-volume.service"
grep -q ' /data ' "$TARGET_DIR/etc/fstab" ||
  echo '/dev/mapper/data /data ext4 defaults,nosuid,nodev,nofail,x-systemd.before=systemd-tmpfiles-setup.service 0 2' >> "$TARGET_DIR/etc/fstab"
chmod 0755 "$TARGET_DIR/etc/facility-gateway"
# The root is read-only under dm-verity (board/common/readonly-root.sh). GRUB reads the
# kernel from the slot at /boot/vmlinuz. The ESP is mounted for RAUC's grubenv.
source "$(dirname "$0")/readonly-root.sh"
readonly_root "$TARGET_DIR"
mkdir -p "$TARGET_DIR/boot/efi"
ln -sf bzImage "$TARGET_DIR/boot/vmlinuz"
# GRUB starts only a kernel signed with the boot key (grub.cfg, check_signatures=enforce).
source "$(dirname "$0")/boot-key.sh"
boot_sign "$TARGET_DIR/boot/bzImage"
mv "$TARGET_DIR/boot/bzImage.sig" "$TARGET_DIR/boot/vmlinuz.sig"
grep -q ' /boot/efi ' "$TARGET_DIR/etc/fstab" ||
  echo 'PARTLABEL=esp /boot/efi vfat umask=0077,nosuid,nodev,noexec 0 2' >> "$TARGET_DIR/etc/fstab"
