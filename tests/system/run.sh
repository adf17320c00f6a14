#!/usr/bin/env bash
# The appliance on a booted system (issue 14): a Debian 12 image made with mmdebstrap with the
# board's overlay and units, booted in QEMU (TCG) with OVMF as firmware and swtpm as its
# TPM, against a hub on the host side of QEMU's user network (the guest reaches the host's
# loopback at 10.0.2.2). Each step prints one `SYSTEM-TEST` line; the run ends with
# `power-on to first upload: N s`.
#
#   tests/system/run.sh --quick   boot, enroll (zero-touch), one department export uploaded
#
# The full run (DICOM push, the VPN, A/B update and rollback, power cut) is the next part of
# issue 14 (docs/image.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:---quick}
[ "$MODE" = "--quick" ] || { echo "run.sh: only --quick is implemented so far (docs/image.md)" >&2; exit 2; }
source scripts/ensure-deps.sh

WORK=${SYSTEM_TEST_DIR:-$PWD/target/system-test}
CACHE=${SYSTEM_TEST_CACHE:-$PWD/target/system-test-cache}
mkdir -p "$WORK" "$CACHE"
rm -rf "$WORK"/{hub,factory,export,tpm,guest,ops,rootfs.img,console.log}
mkdir -p "$WORK"/{hub,factory,export,tpm}
step() { echo "SYSTEM-TEST $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "${SYSTEM_TEST_KEEP:-0}" = 1 ] || rm -f "$WORK/rootfs.img"
}
trap cleanup EXIT

cargo build -q --workspace --bins && cargo build -q -p fgw-synth --example synth_department
BIN=$PWD/target/debug

# 1. The image: Debian packages the gateway links, systemd, the kernel; cached by package list.
PKGS=systemd-sysv,udev,kmod,linux-image-amd64,iproute2,ca-certificates,tpm-udev,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-mu0,libtss2-sys1,libtss2-tcti-device0,libmecab2,mecab-ipadic-utf8,libtesseract5,tesseract-ocr-jpn,tesseract-ocr-eng,rauc
KEY=$(printf '%s' "$PKGS" | sha256sum | cut -c1-16)
if [ ! -f "$CACHE/base-$KEY.tar" ]; then
  mmdebstrap --variant=minbase --include="$PKGS" bookworm "$CACHE/partial-$KEY.tar" >/dev/null 2>"$CACHE/mmdebstrap.log"
  mv "$CACHE/partial-$KEY.tar" "$CACHE/base-$KEY.tar"
fi
mkdir -p "$WORK/guest"
tar -xf "$CACHE/base-$KEY.tar" -C "$WORK/guest"
step "image: debian bookworm base ($(du -sh "$CACHE/base-$KEY.tar" | cut -f1)) with the board overlay"

# 2. The hub, with 10.0.2.2 (the host as the guest sees it) in its certificate.
PORT=$(free_port)
cat > "$WORK/hub/hub.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "data"
server_names = ["localhost", "127.0.0.1", "10.0.2.2"]
TOML
"$BIN/hub" init --config "$WORK/hub/hub.toml" >/dev/null
"$BIN/hub" issue-device --config "$WORK/hub/hub.toml" --device ops --facility F0001 --role operator --out "$WORK/ops" >/dev/null
"$BIN/hub" serve --config "$WORK/hub/hub.toml" 2> "$WORK/hub/hub.log" &
PIDS+=($!)

# 3. The factory: the identity key made in the box's TPM, its IDevID signed.
# The swtpm TCTI talks to the control channel on the next port: find two free in a row.
TPM_PORT=$(python3 -c '
import socket
for p in range(20000, 60000, 2):
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 1))
        print(p); break
    except OSError: pass')
CTRL_PORT=$((TPM_PORT + 1))
swtpm socket --tpm2 --server "type=tcp,bindaddr=127.0.0.1,port=$TPM_PORT" \
  --ctrl "type=tcp,bindaddr=127.0.0.1,port=$CTRL_PORT" --tpmstate "dir=$WORK/tpm" \
  --flags not-need-init,startup-clear 2> "$WORK/factory/swtpm.log" &
SWTPM=$!
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$TPM_PORT) 2>/dev/null && break; sleep 0.1; done
(exec 3<>/dev/tcp/127.0.0.1/$TPM_PORT) 2>/dev/null || { step "FAILED: swtpm did not start"; cat "$WORK/factory/swtpm.log"; exit 1; }
cat > "$WORK/factory/gateway.toml" <<TOML
facility_id = "F0001"
state_dir = "state"
[identity]
key_store = "tpm"
tpm_tcti = "swtpm:host=127.0.0.1,port=$TPM_PORT"
idevid_cert = "idevid.crt"
ca_cert = "ca.crt"
TOML
INIT=$("$BIN/gateway" --config "$WORK/factory/gateway.toml" identity init --json)
SERIAL=$(printf '%s' "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"])')
CSR=$(printf '%s' "$INIT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["csr"])')
"$BIN/hub" device add --config "$WORK/hub/hub.toml" --serial "$SERIAL" --facility F0001 --csr "$CSR" --out "$WORK/factory/out" >/dev/null
kill $SWTPM; wait $SWTPM 2>/dev/null || true
step "factory: serial $SERIAL, identity key in the TPM, IDevID signed"

# 4. The box's files: the gateway, the board's units, its configuration and IDevID.
G=$WORK/guest
install -D -m 0755 "$BIN/gateway" "$G/usr/bin/gateway"
cp -a board/common/rootfs-overlay/usr/lib/systemd/system/facility-gateway.service "$G/usr/lib/systemd/system/"
cp -a board/common/rootfs-overlay/etc/systemd/journald.conf.d "$G/etc/systemd/"
install -D -m 0644 "$WORK/factory/out/idevid.crt" "$G/etc/facility-gateway/factory/idevid.crt"
install -D -m 0644 "$WORK/factory/out/ca.crt" "$G/etc/facility-gateway/factory/ca.crt"
cat > "$G/etc/facility-gateway/gateway.toml" <<TOML
facility_id = "F0001"
state_dir = "/data/facility-gateway"
[identity]
key_store = "tpm"
tpm_tcti = "device:/dev/tpmrm0"
idevid_cert = "factory/idevid.crt"
ca_cert = "factory/ca.crt"
[export]
watch_dir = "/srv/export"
poll_interval_secs = 2
[uplink]
hub_url = "https://10.0.2.2:$PORT"
TOML
chroot "$G" useradd --system --no-create-home --home-dir /data/facility-gateway --shell /usr/sbin/nologin --groups tss fgw
install -d -o "$(chroot "$G" id -u fgw)" -g "$(chroot "$G" id -g fgw)" -m 0700 "$G/data/facility-gateway"
mkdir -p "$G/srv/export"
echo 'export /srv/export 9p trans=virtio,version=9p2000.L,ro,nofail 0 0' >> "$G/etc/fstab"
echo '/dev/vda / ext4 rw 0 1' >> "$G/etc/fstab"
printf '[Match]\nName=en*\n[Network]\nDHCP=yes\n' > "$G/etc/systemd/network/20-wired.network"
ln -sf /usr/lib/systemd/system/systemd-networkd.service "$G/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /usr/lib/systemd/system/facility-gateway.service "$G/etc/systemd/system/multi-user.target.wants/facility-gateway.service"
for unit in getty@.service serial-getty@.service console-getty.service autovt@.service; do ln -sf /dev/null "$G/etc/systemd/system/$unit"; done
echo facility-gateway > "$G/etc/hostname"
cp "$G"/boot/vmlinuz-* "$WORK/vmlinuz"; cp "$G"/boot/initrd.img-* "$WORK/initrd.img"
rm -f "$WORK/rootfs.img"; truncate -s 4G "$WORK/rootfs.img"
mkfs.ext4 -q -d "$G" "$WORK/rootfs.img"
rm -rf "$G"   # the disk image holds it now; CI's disk is small
step "image: gateway, units and configuration installed; no getty, no ssh"

# 5. Power on: OVMF, swtpm over a socket, the export share over 9p.
"$BIN/examples/synth_department" "$WORK/export" --exams 1 >/dev/null
swtpm socket --tpm2 --ctrl "type=unixio,path=$WORK/tpm/swtpm.sock" --tpmstate "dir=$WORK/tpm" \
  --flags startup-clear 2>> "$WORK/factory/swtpm.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/tpm/swtpm.sock" ] && break; sleep 0.1; done
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"
START=$(date +%s)
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,file="$WORK/vars.fd" \
  -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 systemd.show_status=1" \
  -drive file="$WORK/rootfs.img",format=raw,if=virtio \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
  -chardev socket,id=chrtpm,path="$WORK/tpm/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0 \
  -virtfs local,path="$WORK/export",mount_tag=export,security_model=none,readonly=on \
  -serial file:"$WORK/console.log" -monitor none -display none &
PIDS+=($!)
step "power on: QEMU (TCG) with OVMF and swtpm"

# 6. Wait for the upload at the hub; enrollment happens on the way.
DEADLINE=$((START + ${SYSTEM_TEST_TIMEOUT:-900}))
enrolled=0
while :; do
  show=$("$BIN/hub" device show --config "$WORK/hub/hub.toml" "$SERIAL" 2>/dev/null || true)
  if [ $enrolled = 0 ] && grep -q '"enrolled_at": "' <<< "$show"; then
    enrolled=1; step "zero-touch enrollment: operational certificate issued after $(( $(date +%s) - START )) s"
  fi
  n=$(curl -sS --cacert "$WORK/ops/ca.crt" --cert "$WORK/ops/device.crt" --key "$WORK/ops/device.key" \
        "https://127.0.0.1:$PORT/v1/facilities/F0001/exams" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
  if [ "${n:-0}" -ge 1 ]; then
    step "upload: $n exam(s) at the hub"
    break
  fi
  if [ "$(date +%s)" -gt $DEADLINE ]; then
    step "FAILED: no upload in time; console tail:"; tail -40 "$WORK/console.log"; exit 1
  fi
  sleep 3
done
echo "power-on to first upload: $(( $(date +%s) - START )) s"
