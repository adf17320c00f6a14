#!/usr/bin/env bash
# After Buildroot's images: the root filesystem with its dm-verity hash tree (root hash into
# the kernel command line of the slot's boot entry), systemd-boot with entries for slots A
# and B, then the disk image (genimage.cfg). Signing happens on the release machine
# (docs/image.md): this script never sees a private key.
set -euo pipefail
BINARIES_DIR=$1
BOARD_DIR=$(dirname "$0")
cd "$BINARIES_DIR"
cp rootfs.squashfs rootfs.verity.img
veritysetup format --data-block-size=4096 --hash-block-size=4096 \
  --hash-offset="$(stat -c %s rootfs.squashfs)" rootfs.verity.img rootfs.verity.img \
  | awk '/Root hash:/ {print $3}' > rootfs.roothash
mkdir -p EFI/BOOT EFI/Linux loader/entries
cp "$HOST_DIR/lib/systemd/boot/efi/systemd-bootx64.efi" EFI/BOOT/BOOTX64.EFI
cp bzImage EFI/Linux/fgw.efi
for slot in a b; do
  cat > "loader/entries/fgw-$slot.conf" <<ENTRY
title Facility gateway ($slot)
linux /EFI/Linux/fgw.efi
options root=/dev/mapper/root roothash=$(cat rootfs.roothash) systemd.verity_root_data=PARTLABEL=root-$slot systemd.verity_root_hash=PARTLABEL=root-$slot rauc.slot=$slot ro quiet lockdown=integrity
ENTRY
done
printf 'default fgw-a.conf\ntimeout 0\n' > loader/loader.conf
genimage --rootpath "$TARGET_DIR" --tmppath "$BUILD_DIR/genimage.tmp" \
  --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$BOARD_DIR/genimage.cfg"
