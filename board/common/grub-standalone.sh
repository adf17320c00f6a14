# The x86_64 board's boot loader, \EFI\BOOT\BOOTX64.EFI: a standalone GRUB with the modules
# its grub.cfg uses and nothing else, and the boot key's public half built in, so that
# check_signatures=enforce refuses every file from the disk without the society's
# signature. Sourced by board/fgw-x86_64/post-image.sh and tests/system/full.sh: the box and
# the system test build the same loader.
#
#   grub_standalone OUT PUBKEY [grub-mkstandalone options] "boot/grub/NAME=FILE"...
#
# $GRUB_MKSTANDALONE is the tool (Buildroot's host one on the build machine; default
# grub-mkstandalone from PATH); pass -d DIR for a module directory other than the tool's.

FGW_GRUB_MODULES="part_gpt fat ext2 squash4 linux normal test loadenv echo configfile sleep reboot pgp gcry_rsa gcry_sha256 gcry_sha512"

grub_standalone() {
  local out=$1 pubkey=$2
  shift 2
  "${GRUB_MKSTANDALONE:-grub-mkstandalone}" -O x86_64-efi -o "$out" \
    --locales= --fonts= --themes= --pubkey "$pubkey" --modules="$FGW_GRUB_MODULES" "$@"
}
