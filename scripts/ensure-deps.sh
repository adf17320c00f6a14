#!/usr/bin/env bash
# Install what the demo and the tests need on a fresh Debian 12 machine, and nothing more.
# Idempotent: installs only what is missing. Sourced by scripts/demo.sh and scripts/test.sh.
# Orthanc is the archive of tests/dicom_pull.rs, started there inside a network namespace
# (unshare/nsenter from util-linux, `ip` from iproute2). On a machine running systemd the
# package also enables its own service on ports 4242/8042; the test does not use it.
# tests/system/net_faults.rs builds its links from `ip netns` and veth pairs (iproute2, which
# also brings `tc` for the tbf rate cap) and drops packets with nftables (`nft`).
# tests/system/hospital_proxy.rs puts Debian's tinyproxy between box and hub (CONNECT with
# basic auth), as a hospital's mandatory proxy. The WireGuard tunnel (fgw-vpn) is configured
# with wg(8) from wireguard-tools, on the box, the hub and in tests/system/hospital_vpn.rs.
# tests/system/run.sh builds a Debian image with mmdebstrap and boots it in QEMU (TCG) with
# OVMF as its firmware and swtpm as its TPM; its full run builds a GPT disk without loop
# devices (sfdisk from fdisk, mkfs.vfat from dosfstools, mtools) booted by a standalone GRUB
# (grub-mkstandalone from grub-efi-amd64-bin).
# The hub's PostgreSQL metadata store is tested against Debian's PostgreSQL server (the
# `postgresql` package: /usr/lib/postgresql/15/bin), started by the tests themselves
# (crates/hub/src/store/postgres/test_server.rs) and by scripts/lib/postgres.sh.
# OS update bundles are RAUC's (rauc, which builds them with mksquashfs; openssl makes the
# throwaway signing keys of tests/system/update_bundle.rs). The dashboard's browser test
# (tests/system/dashboard_browser.rs) drives Debian's headless chromium through chromedriver.
set -euo pipefail

need_apt=()
for pair in "pkg-config:pkg-config" "gcc:build-essential" "curl:curl" "python3:python3" "sqlite3:sqlite3" \
            "dcmdump:dcmtk" "Orthanc:orthanc" "ip:iproute2" "tc:iproute2" "nsenter:util-linux" "nft:nftables" \
            "tinyproxy:tinyproxy" "wg:wireguard-tools" "rauc:rauc" "mksquashfs:squashfs-tools" \
            "openssl:openssl" "chromium:chromium" "chromedriver:chromium-driver" \
            "mmdebstrap:mmdebstrap" "qemu-system-x86_64:qemu-system-x86" \
            "sfdisk:fdisk" "cryptsetup:cryptsetup-bin" "mkfs.vfat:dosfstools" "mcopy:mtools" "grub-mkstandalone:grub-efi-amd64-bin"; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Libraries and data files, checked by package: Tesseract (libtesseract + jpn/eng models, and
# libclang for its bindings), Japanese fonts for the burned-in text test images, libjpeg-turbo's
# cjpeg/djpeg as the reference JPEG encoder/decoder in the DCT-masking tests; MeCab and its IPA
# dictionary for names without cues in free text (fgw-deid links libmecab; the gateway refuses
# to start without the dictionary). The TPM 2.0 software stack for the box's keys (fgw-identity
# links libtss2 through tss-esapi), and swtpm with tpm2-tools for its tests.
for pkg in libtesseract-dev libleptonica-dev libclang-dev clang tesseract-ocr tesseract-ocr-jpn \
           tesseract-ocr-eng fonts-noto-cjk fonts-ipafont-gothic libjpeg-turbo-progs \
           mecab libmecab-dev mecab-ipadic-utf8 libtss2-dev swtpm tpm2-tools ovmf postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ensure-deps: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "ensure-deps: cargo not found; this project needs a Rust toolchain >= 1.80 (rustup)" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# cargo-deny for scripts/deny.sh, pinned: deny.toml's keys and the database layout the script
# relies on are those of this version. Built from crates.io (about 6 minutes on 2 cores).
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
  echo "ensure-deps: installing cargo-deny $cargo_deny_version" >&2
  cargo install --locked --quiet --version "$cargo_deny_version" cargo-deny
fi

# The manifest schema check in the tests uses Python's jsonschema.
if ! python3 -c 'import jsonschema' >/dev/null 2>&1; then
  echo "ensure-deps: installing python jsonschema" >&2
  python3 -m pip install -q jsonschema >/dev/null
fi

# The researchers' Parquet export is read back with pyarrow (what researchers' tools use).
if ! python3 -c 'import pyarrow' >/dev/null 2>&1; then
  echo "ensure-deps: installing python pyarrow" >&2
  python3 -m pip install -q 'pyarrow>=15' >/dev/null
fi

# HL7 tests send with a real MLLP client: python-hl7's mllp_send.
if ! command -v mllp_send >/dev/null 2>&1; then
  echo "ensure-deps: installing python hl7 (mllp_send)" >&2
  python3 -m pip install -q 'hl7==0.4.5' >/dev/null
fi
