#!/usr/bin/env bash
# The appliance on a booted system (issue 14): a Debian 12 image made with mmdebstrap with the
# board's overlay and units, booted in QEMU (TCG) with OVMF as firmware and swtpm as its
# TPM, against a hub on the host side of QEMU's user network (the guest reaches the host's
# loopback at 10.0.2.2). Each step prints one `SYSTEM-TEST` line; the run ends with
# `power-on to first upload: N s`.
#
#   tests/system/run.sh --quick   boot, enroll (zero-touch), one department export uploaded,
#                                 the firewall admits that and nothing else, /data is
#                                 LUKS2 bound to the TPM, the root is read-only under
#                                 dm-verity and a block altered on its disk is refused
#   tests/system/run.sh [--full]  an A/B disk booted by GRUB, then: enrollment; an export and a
#                                 DICOM push; uploads through the WireGuard tunnel; an OS
#                                 release moves the box from slot A to B; a broken release
#                                 falls back by itself; a power cut mid-upload loses nothing
#
# Environment: FGW_BIN_DIR (use the gateway, hub and synth_department built there instead of
# building the workspace), SYSTEM_TEST_DIR, SYSTEM_TEST_CACHE, SYSTEM_TEST_KEEP=1 (keep the
# disk images), SYSTEM_TEST_TIMEOUT (seconds per wait). docs/image.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:---full}
case "$MODE" in --quick|--full) ;; *) echo "usage: run.sh [--quick|--full]" >&2; exit 2 ;; esac
source scripts/ensure-deps.sh
source tests/system/lib.sh
source tests/system/full.sh

WORK=${SYSTEM_TEST_DIR:-$PWD/target/system-test}
CACHE=${SYSTEM_TEST_CACHE:-$PWD/target/system-test-cache}
TIMEOUT=${SYSTEM_TEST_TIMEOUT:-900}
mkdir -p "$WORK" "$CACHE"
rm -rf "$WORK"/{hub,factory,export,tpm,guest,ops,keys,usb,data-tree,rootfs.img,disk.img,vars.fd,*.raucb,console*.log}
mkdir -p "$WORK"/{hub,factory,export,tpm}
PIDS=()
trap cleanup EXIT

if [ -n "${FGW_BIN_DIR:-}" ]; then
  BIN=$FGW_BIN_DIR   # binaries built elsewhere (a shared build, a release build)
else
  cargo build -q --workspace --bins && cargo build -q -p fgw-synth --example synth_department
  BIN=$PWD/target/debug
fi

if [ "$MODE" = --full ]; then
  host_tools_full
fi
make_base
start_hub "$MODE"
make_factory_identity
install_box "$MODE"

if [ "$MODE" = --quick ]; then
  make_quick_disk
  "$BIN/examples/synth_department" "$WORK/export" --exams 1 >/dev/null
  START=$(date +%s)
  boot_quick
  step "power on: QEMU (TCG) with OVMF and swtpm"
  wait_enrolled
  wait_exams 1 || fail_console "no upload in time"
  step "upload: $(exam_count) exam(s) at the hub"
  check_firewall
  [ "$FIREWALL_OK" = 1 ] || fail_console "firewall: $FIREWALL_WHY"
  step "firewall: default deny in and out, the hub admitted from gateway.toml ($FIREWALL_WHY)"
  check_data_volume "$WORK/data.img" 1 "$QUICK_DATA_MB" lost+found facility-gateway "$(export_patient_id)"
  [ "$DATA_OK" = 1 ] || fail_console "/data: $DATA_WHY"
  step "/data: LUKS2 made on the first boot, its only key sealed to the TPM (swtpm) by systemd-cryptenroll; the box unlocked it and keeps its state there ($DATA_WHY)"
  FIRST_UPLOAD=$(( $(date +%s) - START ))
  check_root "$ROOT_HASH"
  [ "$ROOT_OK" = 1 ] || fail_console "root: $ROOT_WHY"
  step "root: read-only under dm-verity, the table from the kernel command line ($ROOT_WHY)"
  check_tampering
  [ "$TAMPER_OK" = 1 ] || fail_console "tampered root: $TAMPER_WHY"
  step "tampered root: one block of /usr/bin/gateway altered on the disk with the box off; at the next power-on dm-verity refused it ($TAMPER_WHY)"
  echo "power-on to first upload: $FIRST_UPLOAD s"
  exit 0
fi

run_full
