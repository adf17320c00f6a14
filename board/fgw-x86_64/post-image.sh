#!/usr/bin/env bash
# After Buildroot's images: slot A's root (the squashfs and its dm-verity hash tree, made by
# the same verity-table script the box runs, the parameters signed with the boot key), the
# ESP (a standalone GRUB with grub.cfg and the boot key's public half built in, slot A's
# signed verity parameters, grubenv: slot A good), then the disk image (genimage.cfg). The
# boot key is the society's on the release machine, a throwaway one elsewhere
# (board/common/boot-key.sh); Secure Boot's signature of BOOTX64.EFI is made on the release
# machine (docs/image.md).
set -euo pipefail
BINARIES_DIR=$1
BOARD_DIR=$(cd "$(dirname "$0")" && pwd)
VERITY_TABLE=$BOARD_DIR/../common/rootfs-overlay/usr/lib/facility-gateway/verity-table
cd "$BINARIES_DIR"
cp rootfs.squashfs rootfs.img
truncate -s %4096 rootfs.img   # the hash tree starts on a 4 KiB block
"$VERITY_TABLE" format rootfs.img
# The root hash, signed with the boot key: GRUB reads it only with a valid signature. The
# update bundle ships rootfs.img, rootfs.img.verity and its .sig together (docs/image.md).
source "$BOARD_DIR/../common/boot-key.sh"
boot_sign rootfs.img.verity
# The standalone GRUB, as the system test makes it: grub.cfg in its memdisk (covered by the
# Secure Boot signature of BOOTX64.EFI), modules from Buildroot's x86_64-efi GRUB build.
# The boot key's public half is built in; GRUB checks every file it reads from the disk.
rm -rf esp grub-files; mkdir -p esp/EFI/BOOT esp/EFI/fgw grub-files
cp "$BOARD_DIR/grub.cfg" grub-files/grub.cfg
boot_sign grub-files/grub.cfg
gpg --batch --quiet --export "$BOOT_KEY" > grub-files/boot.pub
grub_core=$(ls -d "$BUILD_DIR"/grub2-*/build-x86_64-efi/grub-core | head -1)
source "$BOARD_DIR/../common/grub-standalone.sh"
GRUB_MKSTANDALONE=$HOST_DIR/bin/grub-mkstandalone grub_standalone esp/EFI/BOOT/BOOTX64.EFI \
  grub-files/boot.pub -d "$grub_core" \
  "boot/grub/grub.cfg=grub-files/grub.cfg" "boot/grub/grub.cfg.sig=grub-files/grub.cfg.sig"
cp rootfs.img.verity esp/EFI/fgw/A.verity
cp rootfs.img.verity.sig esp/EFI/fgw/A.verity.sig
"$HOST_DIR/bin/grub-editenv" esp/EFI/BOOT/grubenv create
"$HOST_DIR/bin/grub-editenv" esp/EFI/BOOT/grubenv set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
genimage --rootpath "$TARGET_DIR" --tmppath "$BUILD_DIR/genimage.tmp" \
  --inputpath "$BINARIES_DIR" --outputpath "$BINARIES_DIR" --config "$BOARD_DIR/genimage.cfg"
