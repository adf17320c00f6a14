# Sourced by post-build.sh and post-image.sh: the boot key that GRUB checks the kernel, its
# own script and each slot's verity parameters against (OpenPGP, `gpg --detach-sign`).
# On the release machine FGW_BOOT_GNUPGHOME and FGW_BOOT_KEY name the society's key (its
# medium: provisioning/release-keys.md). Without them a throwaway key is made under
# $BUILD_DIR for a development image, and said so: such an image boots only with the GRUB
# built beside it.
if [ -n "${FGW_BOOT_GNUPGHOME:-}" ] && [ -n "${FGW_BOOT_KEY:-}" ]; then
  export GNUPGHOME=$FGW_BOOT_GNUPGHOME
  BOOT_KEY=$FGW_BOOT_KEY
else
  export GNUPGHOME=$BUILD_DIR/fgw-boot-key
  BOOT_KEY=fgw-development-boot
  if [ ! -d "$GNUPGHOME" ]; then
    echo "boot-key: FGW_BOOT_GNUPGHOME/FGW_BOOT_KEY not set: signing with a throwaway development key" >&2
    mkdir -m 0700 "$GNUPGHOME"
    gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
      --quick-gen-key "$BOOT_KEY" rsa3072 sign 1y
  fi
fi
boot_sign() { gpg --batch --quiet --yes --detach-sign -u "$BOOT_KEY" -o "$1.sig" "$1"; }
