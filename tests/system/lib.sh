# Shared parts of tests/system/run.sh (sourced): the image, the hub, the factory, the box's
# files, power on, and waits. Uses WORK, CACHE, BIN, TIMEOUT, PIDS from run.sh.

step() { echo "SYSTEM-TEST $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The board's dm-verity helper: the host formats and tables the test's roots with it, and the
# image carries it too (RAUC's post-install handler).
VERITY_TABLE=board/common/rootfs-overlay/usr/lib/facility-gateway/verity-table

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # The hub may take its time over a graceful stop (the tunnel); it must not outlive the run.
  sleep 2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ "${SYSTEM_TEST_KEEP:-0}" = 1 ] || rm -f "$WORK/rootfs.img" "$WORK/rootfs.img.verity" "$WORK/data.img" "$WORK/disk.img" "$WORK"/*.raucb
}

fail_console() {
  step "FAILED: $1; console tail:"
  tail -40 "${CONSOLE:-$WORK/console.log}"
  exit 1
}

# The Debian packages the gateway links, systemd, the kernel, RAUC (and its D-Bus service),
# wg(8) for the tunnel, grub-editenv for RAUC's grub backend, nft for the firewall,
# cryptsetup and dmsetup (its udev rules make /dev/mapper devices known to systemd) for
# /data's LUKS2 volume; cached by package list.
PKGS=systemd-sysv,udev,kmod,linux-image-amd64,iproute2,ca-certificates,tpm-udev,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-mu0,libtss2-rc0,libtss2-sys1,libtss2-tcti-device0,libmecab2,mecab-ipadic-utf8,libtesseract5,tesseract-ocr-jpn,tesseract-ocr-eng,rauc,rauc-service,wireguard-tools,grub-common,e2fsprogs,nftables,cryptsetup-bin,dmsetup

make_base() {
  local key
  key=$(printf '%s' "$PKGS" | sha256sum | cut -c1-16)
  if [ ! -f "$CACHE/base-$key.tar" ]; then
    mmdebstrap --variant=minbase --include="$PKGS" bookworm "$CACHE/partial-$key.tar" >/dev/null 2>"$CACHE/mmdebstrap.log"
    mv "$CACHE/partial-$key.tar" "$CACHE/base-$key.tar"
  fi
  G=$WORK/guest
  mkdir -p "$G"
  tar -xf "$CACHE/base-$key.tar" -C "$G"
  step "image: debian bookworm base ($(du -sh "$CACHE/base-$key.tar" | cut -f1)) with the board overlay"
}

# The hub, with 10.0.2.2 (the host as the guest sees it) in its certificate. The full run
# adds [vpn]: enrollment on the public address, the API only inside the WireGuard tunnel.
start_hub() {
  PORT=$(free_port)
  local names='"localhost", "127.0.0.1", "10.0.2.2"'
  [ "$1" = --full ] && names="$names, \"$VPN_HUB_ADDR\""
  cat > "$WORK/hub/hub.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "data"
server_names = [$names]
# Explicit: a hub.toml without [store] reads pool_size 0 and is refused (issue 15's store
# settings: the section's serde default is not applied when the section is absent).
[store]
pool_size = 16
TOML
  if [ "$1" = --full ]; then
    cat >> "$WORK/hub/hub.toml" <<TOML
[vpn]
address = "$VPN_HUB_ADDR/24"
endpoint = "10.0.2.2:$WG_PORT"
listen_port = $WG_PORT
interface = "$HUB_IF"
reconcile_secs = 2
TOML
  fi
  "$BIN/hub" init --config "$WORK/hub/hub.toml" >/dev/null 2>"$WORK/hub/init.log"
  "$BIN/hub" issue-device --config "$WORK/hub/hub.toml" --device ops --facility F0001 --role operator --out "$WORK/ops" >/dev/null
  "$BIN/hub" serve --config "$WORK/hub/hub.toml" 2> "$WORK/hub/hub.log" &
  PIDS+=($!)
}

hub_cfg() { local c=$1; shift; "$BIN/hub" "$c" "$@" --config "$WORK/hub/hub.toml"; }

# The factory: the identity key made in the box's TPM, its IDevID signed. The swtpm TCTI
# talks to the control channel on the next port: find two free in a row.
make_factory_identity() {
  local tpm_port swtpm init csr
  tpm_port=$(python3 -c '
import socket
for p in range(20000, 60000, 2):
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 1))
        print(p); break
    except OSError: pass')
  swtpm socket --tpm2 --server "type=tcp,bindaddr=127.0.0.1,port=$tpm_port" \
    --ctrl "type=tcp,bindaddr=127.0.0.1,port=$((tpm_port + 1))" --tpmstate "dir=$WORK/tpm" \
    --flags not-need-init,startup-clear 2> "$WORK/factory/swtpm.log" &
  swtpm=$!
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$tpm_port) 2>/dev/null && break; sleep 0.1; done
  (exec 3<>/dev/tcp/127.0.0.1/$tpm_port) 2>/dev/null || { step "FAILED: swtpm did not start"; cat "$WORK/factory/swtpm.log"; exit 1; }
  cat > "$WORK/factory/gateway.toml" <<TOML
facility_id = "F0001"
state_dir = "state"
[identity]
key_store = "tpm"
tpm_tcti = "swtpm:host=127.0.0.1,port=$tpm_port"
idevid_cert = "idevid.crt"
ca_cert = "ca.crt"
TOML
  init=$("$BIN/gateway" --config "$WORK/factory/gateway.toml" identity init --json)
  SERIAL=$(printf '%s' "$init" | json 'd["serial"]')
  csr=$(printf '%s' "$init" | json 'd["csr"]')
  "$BIN/hub" device add --config "$WORK/hub/hub.toml" --serial "$SERIAL" --facility F0001 --csr "$csr" --out "$WORK/factory/out" >/dev/null
  kill $swtpm; wait $swtpm 2>/dev/null || true
  step "factory: serial $SERIAL, identity key in the TPM, IDevID signed"
}

# The box's files: the gateway, the board's units, its configuration and IDevID.
install_box() {
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
  install_data_volume
  mkdir -p "$G/srv/export"
  echo 'export /srv/export 9p trans=virtio,version=9p2000.L,ro,nofail 0 0' >> "$G/etc/fstab"
  printf '[Match]\nName=en*\n[Network]\nDHCP=yes\n' > "$G/etc/systemd/network/20-wired.network"
  ln -sf /usr/lib/systemd/system/systemd-networkd.service "$G/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  ln -sf /usr/lib/systemd/system/facility-gateway.service "$G/etc/systemd/system/multi-user.target.wants/facility-gateway.service"
  for unit in getty@.service serial-getty@.service console-getty.service autovt@.service; do ln -sf /dev/null "$G/etc/systemd/system/$unit"; done
  echo facility-gateway > "$G/etc/hostname"
  install_firewall
  install_readonly_root
  [ "$1" = --full ] && install_box_full
  step "image: gateway, units and configuration installed; no getty, no ssh"
}

# The board's read-only root: the mounts of what must stay writable (tmpfs; the journal
# links to /data), the verity helper RAUC's handler uses, and, for Debian's kernel (dm-verity
# as a module), an initramfs that loads the root's table from the same dm-mod.create= the
# board's kernel reads itself. The kernel and initramfs are where grub.cfg looks
# (/boot/vmlinuz, /boot/initrd.img); the root is read-only from the first boot on.
install_readonly_root() {
  local O=board/common/rootfs-overlay unit v
  for unit in tmp.mount var-tmp.mount var-lib-systemd.mount; do
    install -m 0644 $O/usr/lib/systemd/system/$unit "$G/usr/lib/systemd/system/$unit"
  done
  mkdir -p "$G/usr/lib/systemd/system/systemd-journal-flush.service.d"
  install -m 0644 $O/usr/lib/systemd/system/systemd-journal-flush.service.d/data.conf \
    "$G/usr/lib/systemd/system/systemd-journal-flush.service.d/data.conf"
  install -D -m 0755 "$VERITY_TABLE" "$G/usr/lib/facility-gateway/verity-table"
  # The board's own set-up: the mounts enabled, the journal on /data, an empty machine-id.
  source board/common/readonly-root.sh
  readonly_root "$G"
  install -D -m 0755 tests/system/image/initramfs/hook-verity "$G/etc/initramfs-tools/hooks/fgw-verity"
  install -D -m 0755 tests/system/image/initramfs/local-top-verity "$G/etc/initramfs-tools/scripts/local-top/fgw-verity"
  chroot "$G" update-initramfs -u -k all >"$WORK/initramfs.log" 2>&1 \
    || { step "FAILED: update-initramfs in the image"; tail -20 "$WORK/initramfs.log"; exit 1; }
  v=$(basename "$G"/boot/vmlinuz-* | sed 's/^vmlinuz-//')
  ln -sf "vmlinuz-$v" "$G/boot/vmlinuz"; ln -sf "initrd.img-$v" "$G/boot/initrd.img"
  install -m 0644 tests/system/image/fgw-test-root.service "$G/usr/lib/systemd/system/fgw-test-root.service"
  install -D -m 0755 tests/system/image/root-report "$G/usr/lib/fgw-test/root-report"
  ln -sf /usr/lib/systemd/system/fgw-test-root.service "$G/etc/systemd/system/multi-user.target.wants/"
}

# An ext4 image of the guest tree, $2 MiB of file system, with its dm-verity hash tree
# appended (verity-table format: $1.verity holds the parameters; ROOT_HASH is set).
verity_image() {
  local out=$1 mb=$2
  rm -f "$out" "$out.verity"; truncate -s "${mb}M" "$out"
  mkfs.ext4 -q -b 4096 -L fgw-root -d "$G" "$out"
  "$VERITY_TABLE" format "$out"
  ROOT_HASH=$(sed -n 's/^ROOT_HASH=//p' "$out.verity")
}

# ROOT_OK and ROOT_WHY from the newest root report on the console: / is /dev/dm-0 read-only,
# its table is verity with root hash $1 and the status valid (V), and a write is refused.
check_root() {
  local line
  ROOT_OK=0
  wait_until 300 console_has 'FGW-TEST root' || { ROOT_WHY="no root report on the console"; return; }
  line=$(console_line 'FGW-TEST root'); ROOT_WHY=${line#*FGW-TEST root }
  if grep -q 'source=/dev/\(dm-0\|mapper/root\) ' <<< "$line" && grep -q 'options=ro[, ]' <<< "$line" \
    && grep -q "roothash=$1 " <<< "$line" && grep -q 'status=V ' <<< "$line" \
    && grep -q 'write=refused' <<< "$line"; then
    ROOT_OK=1
  fi
}

# The board's /data: LUKS2 on the partition labelled `data`, formatted (ext4 inside) on the
# first boot and its key sealed to the TPM (swtpm here) by systemd-cryptenroll, opened by
# crypttab with the TPM, mounted by fstab; the state directories by tmpfiles.
install_data_volume() {
  local O=board/common/rootfs-overlay
  install -D -m 0755 $O/usr/lib/facility-gateway/data-volume "$G/usr/lib/facility-gateway/data-volume"
  install -m 0644 $O/usr/lib/systemd/system/facility-gateway-data-volume.service "$G/usr/lib/systemd/system/"
  install -m 0644 $O/etc/crypttab "$G/etc/crypttab"
  install -D -m 0644 $O/usr/lib/tmpfiles.d/facility-gateway.conf "$G/usr/lib/tmpfiles.d/facility-gateway.conf"
  mkdir -p "$G/etc/systemd/system/cryptsetup.target.wants" "$G/data"
  ln -sf /usr/lib/systemd/system/facility-gateway-data-volume.service "$G/etc/systemd/system/cryptsetup.target.wants/"
  echo '/dev/mapper/data /data ext4 defaults,nosuid,nodev,nofail,x-systemd.before=systemd-tmpfiles-setup.service 0 2' >> "$G/etc/fstab"
}

# DATA_OK and DATA_WHY for the data partition of disk image $1 at $2 MiB, $3 MiB long: a
# LUKS2 header whose only key slot is the TPM's (systemd-tpm2 token, PCR 7), and none of the
# strings $4... (an ext4 directory name, the exam's identifiers) anywhere in the partition.
check_data_volume() {
  local disk=$1 at=$2 size=$3 hdr=$WORK/data-header.img dump token slots m found=""
  shift 3
  DATA_OK=0
  dd if="$disk" of="$hdr" bs=1M skip="$at" count=32 status=none
  dump=$(cryptsetup luksDump "$hdr" 2>&1 || true)
  token=$(cryptsetup token export --token-id 0 "$hdr" 2>/dev/null \
    | json '"%s pcrs=%s" % (d["type"], "+".join(map(str, d.get("tpm2-pcrs", []))))' 2>/dev/null || echo none)
  rm -f "$hdr"
  slots=$(sed -n '/^Keyslots:/,/^Tokens:/p' <<< "$dump" | grep -cE '^ +[0-9]+: luks2' || true)
  # One read of the partition for every marker (each match printed, then deduplicated).
  local patterns=()
  for m in "$@"; do patterns+=(-e "$m"); done
  found=$(grep -aoF "${patterns[@]}" < <(dd if="$disk" bs=1M skip="$at" count="$size" status=none) \
    | sort -u | tr '\n' ' ' || true)
  found=${found% }
  DATA_WHY="LUKS$(sed -n 's/^Version: *//p' <<< "$dump" | tr -d '\t ') with $slots key slot(s), token: $token; plaintext found: ${found:-none}"
  if grep -qE '^Version:\s*2$' <<< "$dump" && [ "$token" = "systemd-tpm2 pcrs=7" ] \
    && [ "$slots" = 1 ] && [ -z "$found" ]; then
    DATA_OK=1
  fi
}

# The patient ID of the first exam in the export share (the CSV's second column; ASCII
# digits in a Shift_JIS file), a string that must never be readable on the box's disks.
export_patient_id() { find "$WORK/export" -name exams.csv | sort | head -1 | xargs sed -n 2p | cut -d, -f2; }

# The board's firewall (default deny; allow-lists from gateway.toml), and the test's view of
# it: an echo listener the firewall does not admit (QEMU forwards ECHO_PORT to it), a host
# port outside the allow-lists the box tries to reach (PROBE_PORT; its listener counts
# connections), and a report on the console.
install_firewall() {
  local unit
  cp board/common/rootfs-overlay/etc/nftables.conf "$G/etc/nftables.conf"
  for unit in facility-gateway-firewall.service facility-gateway-firewall.timer; do
    cp board/common/rootfs-overlay/usr/lib/systemd/system/$unit "$G/usr/lib/systemd/system/"
  done
  for unit in nftables.service facility-gateway-firewall.service; do
    ln -sf /usr/lib/systemd/system/$unit "$G/etc/systemd/system/multi-user.target.wants/$unit"
  done
  mkdir -p "$G/etc/systemd/system/timers.target.wants" "$G/etc/systemd/system/sockets.target.wants"
  ln -sf /usr/lib/systemd/system/facility-gateway-firewall.timer "$G/etc/systemd/system/timers.target.wants/"
  for unit in fgw-test-firewall.service fgw-test-echo.socket fgw-test-echo@.service; do
    install -m 0644 tests/system/image/$unit "$G/usr/lib/systemd/system/$unit"
  done
  ln -sf /usr/lib/systemd/system/fgw-test-firewall.service "$G/etc/systemd/system/multi-user.target.wants/"
  ln -sf /usr/lib/systemd/system/fgw-test-echo.socket "$G/etc/systemd/system/sockets.target.wants/"
  install -D -m 0755 tests/system/image/firewall-report "$G/usr/lib/fgw-test/firewall-report"
  ECHO_PORT=$(free_port); PROBE_PORT=$(free_port)
  echo "$PROBE_PORT" > "$G/etc/fgw-test-probe-port"
  : > "$WORK/probe.log"
  python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept()
    open(sys.argv[2], "a").write("connection\n"); c.close()' "$PROBE_PORT" "$WORK/probe.log" &
  PIDS+=($!)
}

# What the host sees of the firewall: the echo listener through QEMU's forward ("echo" if
# it answered, "none" if not).
host_echo_probe() {
  python3 -c '
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
    s.sendall(b"fgw-echo\n"); s.settimeout(8)
    print("echo" if s.recv(64) else "none")
except OSError:
    print("none")' "$ECHO_PORT"
}

# FIREWALL_OK and FIREWALL_WHY: the box's report (default deny both ways, the hub in the
# allow-lists with its port, the echo listener answering locally, the probe out blocked) and
# the host's view (the echo listener unreachable, no connection at the probe port).
check_firewall() {
  local line host_echo want_hub="hub4=10.0.2.2 hub_ports=$PORT"
  FIREWALL_OK=0
  wait_until 300 console_has 'FGW-TEST firewall' || { FIREWALL_WHY="no firewall report on the console"; return; }
  line=$(console_line 'FGW-TEST firewall'); line=${line#*FGW-TEST firewall }
  host_echo=$(host_echo_probe)
  FIREWALL_WHY="box: $line; host probe of the echo listener: $host_echo; connections at the probe port: $(wc -l < "$WORK/probe.log")"
  if grep -q 'policies=drop/drop ' <<< "$line" && grep -q "$want_hub" <<< "$line" \
    && grep -q 'local-echo=ok' <<< "$line" && grep -q 'egress-probe=blocked' <<< "$line" \
    && [ "$host_echo" = none ] && [ ! -s "$WORK/probe.log" ]; then
    FIREWALL_OK=1
  fi
}

# The quick run's disk: the root (ext4 + its hash tree) on its own disk, booted with QEMU's
# -kernel/-initrd and the table on the command line as GRUB would give it.
make_quick_disk() {
  cp "$G"/boot/vmlinuz-* "$WORK/vmlinuz"; cp "$G"/boot/initrd.img-* "$WORK/initrd.img"
  verity_image "$WORK/rootfs.img" 1800
  QUICK_TABLE=$("$VERITY_TABLE" table "$WORK/rootfs.img.verity" /dev/vda)
  # Where the daemon's binary lies in the file system, for the tampering check.
  GATEWAY_BLOCK=$(debugfs -R "bmap /usr/bin/gateway 0" "$WORK/rootfs.img" 2>/dev/null)
  [ -n "$GATEWAY_BLOCK" ] || { step "FAILED: /usr/bin/gateway not found in the root image"; exit 1; }
  rm -rf "$G"   # the disk image holds it now; CI's disk is small
  # /data's disk: one blank GPT partition labelled `data` (the first boot encrypts it).
  rm -f "$WORK/data.img"; truncate -s $((QUICK_DATA_MB + 2))M "$WORK/data.img"
  printf 'label: gpt\nstart=2048, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data\n' \
    $((QUICK_DATA_MB * 2048)) | sfdisk -q "$WORK/data.img"
}
QUICK_DATA_MB=512

# swtpm over a UNIX socket, one per power-on (the state directory persists).
start_swtpm() {
  rm -f "$WORK/tpm/swtpm.sock"
  swtpm socket --tpm2 --ctrl "type=unixio,path=$WORK/tpm/swtpm.sock" --tpmstate "dir=$WORK/tpm" \
    --flags startup-clear 2>> "$WORK/factory/swtpm.log" &
  SWTPM_PID=$!
  PIDS+=($SWTPM_PID)
  for _ in $(seq 100); do [ -S "$WORK/tpm/swtpm.sock" ] && break; sleep 0.1; done
}

# QEMU's common arguments: q35, TCG, OVMF, the TPM, the export share over 9p.
qemu_common() {
  QEMU_ARGS=(-machine q35 -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
    -drive if=pflash,format=raw,file="$WORK/vars.fd"
    -chardev socket,id=chrtpm,path="$WORK/tpm/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0
    -virtfs local,path="$WORK/export",mount_tag=export,security_model=none,readonly=on
    -monitor none -display none)
}

boot_quick() {
  start_swtpm
  [ -f "$WORK/vars.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"
  qemu_common
  CONSOLE=$WORK/${1:-console}.log
  qemu-system-x86_64 "${QEMU_ARGS[@]}" \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -append "\"dm-mod.create=root,,,ro,$QUICK_TABLE\" root=/dev/dm-0 ro fsck.mode=skip lockdown=integrity panic=10 console=ttyS0 systemd.show_status=1" \
    -drive file="$WORK/rootfs.img",format=raw,if=virtio \
    -drive file="$WORK/data.img",format=raw,if=virtio \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$ECHO_PORT-:7 -device virtio-net-pci,netdev=n0 \
    -serial file:"$CONSOLE" 2>>"$WORK/qemu.log" &
  QEMU_PID=$!
  PIDS+=($QEMU_PID)
}

# The quick run's tampering check: with the box off, the first block of the daemon's binary
# is overwritten on the root's disk (as someone with the disk in hand would); on the next
# power-on dm-verity must refuse that block, so the daemon never starts. TAMPER_OK/WHY.
verity_corrupted() { console_has 'verity.*corrupted'; }
check_tampering() {
  TAMPER_OK=0
  power_cut
  printf 'fgw-system-test: altered on the disk' | dd of="$WORK/rootfs.img" bs=4096 seek="$GATEWAY_BLOCK" conv=notrunc status=none
  boot_quick console-tampered
  if ! wait_until 600 verity_corrupted; then
    TAMPER_WHY="no dm-verity error on the console after the daemon's binary was altered"; return
  fi
  sleep 15   # the daemon's restarts would show within this
  local daemon='never started'
  console_has 'Started .*Facility gateway' && daemon=started || TAMPER_OK=1
  TAMPER_WHY="$(console_line 'verity.*corrupted' | sed 's/^\[[^]]*\] *//'); the daemon $daemon"
  power_cut
}

console_has() { grep -qa "$1" "$CONSOLE" 2>/dev/null; }
console_line() { grep -a "$1" "$CONSOLE" | tail -1 | tr -d '\r'; }

# Exams (current packages) the hub holds for F0001, read from its metadata store.
exam_count() { hub_cfg list --facility F0001 2>/dev/null | json 'len(d)' 2>/dev/null || echo 0; }
dicom_count() { hub_cfg list --facility F0001 --kind dicom 2>/dev/null | json 'len(d)' 2>/dev/null || echo 0; }

# wait_until SECONDS CMD...: polls CMD every 3 s; false if it never succeeded.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 3
  done
}

enrolled() { hub_cfg device show "$SERIAL" 2>/dev/null | grep -q '"enrolled_at": "'; }
wait_enrolled() {
  wait_until "$TIMEOUT" enrolled || fail_console "no enrollment in time"
  step "zero-touch enrollment: operational certificate issued after $(( $(date +%s) - START )) s"
}
has_exams() { [ "$(exam_count)" -ge "$1" ]; }
wait_exams() { wait_until "${2:-$TIMEOUT}" has_exams "$1"; }
