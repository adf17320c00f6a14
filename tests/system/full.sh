# The full system test (sourced by tests/system/run.sh --full): an A/B disk booted by GRUB,
# and the six steps of issue 14. Each step prints `SYSTEM-TEST step N: PASSED|FAILED: ...`
# and the run goes on after a failure where it can. docs/image.md, "The full run".

IMG_DIR=tests/system/image
FAILED_STEPS=0

# Host tools for the disk (no loop devices: sfdisk on a file, file systems made as images),
# the standalone GRUB, and the network names of this run.
host_tools_full() {
  local missing=()
  for t in sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools grub-mkstandalone:grub-efi-amd64-bin img2dcm:dcmtk gpg:gpg; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
  done
  [ -d /usr/lib/grub/x86_64-efi ] || missing+=(grub-efi-amd64-bin)
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # The hub's tunnel: a name and a /24 of this run only (other runs may share the host).
  local n=$(( $$ % 200 + 20 ))
  HUB_IF=fgwsys$(( $$ % 100000 ))
  VPN_HUB_ADDR=10.213.$n.1
  WG_PORT=$(free_port)
  DICOM_PORT=$(free_port)
  make_update_key
}

passed() { step "step $1: PASSED: $2"; }
failed() { step "step $1: FAILED: $2"; FAILED_STEPS=$((FAILED_STEPS + 1)); }

# What differs from the quick image: the ESP and /data mounted, RAUC with the grub backend,
# the health check, the DICOM listener, the tunnel, updates from the hub's rollouts.
install_box_full() {
  cat >> "$G/etc/facility-gateway/gateway.toml" <<TOML
[dicom_scp]
mode = "enabled"
listen = "0.0.0.0:11112"
ae_title = "FGW"
# QEMU's user network: the host's storescu arrives from the gateway address.
allowed_peers = ["10.0.2.2/32"]
[vpn]
mode = "wireguard"
[fleet]
heartbeat_secs = 10
[update]
check_secs = 10
os_install = "rauc"
# The run happens at any hour; a real box keeps the night window.
maintenance_window = "00:00-23:59"
TOML
  # Board files the quick image does not need.
  cp -a board/common/rootfs-overlay/usr/lib/systemd/system/facility-gateway-health.service "$G/usr/lib/systemd/system/"
  ln -sf /usr/lib/systemd/system/facility-gateway-health.service "$G/etc/systemd/system/multi-user.target.wants/"
  install -D -m 0644 "$IMG_DIR/rauc-system.conf" "$G/etc/rauc/system.conf"
  install -D -m 0755 board/common/rootfs-overlay/usr/lib/facility-gateway/rauc-post-install "$G/usr/lib/facility-gateway/rauc-post-install"
  install -D -m 0644 "$WORK/keys/update.crt" "$G/etc/rauc/keyring.pem"
  mkdir -p "$G/usr/share/facility-gateway"
  hub_cfg release root --out "$G/usr/share/facility-gateway/tuf-root.json" >/dev/null 2>&1
  # The board's kernel has WireGuard built in; Debian's has it as a module, loaded at boot
  # (the daemon's sandbox may not load modules).
  echo wireguard > "$G/etc/modules-load.d/wireguard.conf"
  # Test only: the booted slot and the health verdict on the serial console.
  install -D -m 0644 "$IMG_DIR/fgw-test-report.service" "$G/usr/lib/systemd/system/fgw-test-report.service"
  ln -sf /usr/lib/systemd/system/fgw-test-report.service "$G/etc/systemd/system/multi-user.target.wants/"
  install -D -m 0644 "$IMG_DIR/fgw-test-usb.service" "$G/usr/lib/systemd/system/fgw-test-usb.service"
  install -D -m 0755 "$IMG_DIR/usb-apply" "$G/usr/lib/fgw-test/usb-apply"
  ln -sf /usr/lib/systemd/system/fgw-test-usb.service "$G/etc/systemd/system/multi-user.target.wants/"
  mkdir -p "$G/srv/usb"
  install -D -m 0644 "$IMG_DIR/health-console.conf" "$G/etc/systemd/system/facility-gateway-health.service.d/console.conf"
  cat >> "$G/etc/fstab" <<'FSTAB'
usb /srv/usb 9p trans=virtio,version=9p2000.L,ro,nofail 0 0
PARTLABEL=esp /boot/efi vfat umask=0077 0 2
FSTAB
  mkdir -p "$G/boot/efi"
}

# The update signing key (the society's, in production) and the TUF root the image trusts;
# the boot key GRUB checks kernels, initramfs and verity parameters against: the board's
# helper (board/common/boot-key.sh: boot_sign), which makes a throwaway OpenPGP key when the
# society's is not given, as here.
make_update_key() {
  mkdir -p "$WORK/keys"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=fgw-system-test-update -keyout "$WORK/keys/update.key" -out "$WORK/keys/update.crt" 2>/dev/null
  rm -rf "$WORK/keys/fgw-boot-key"
  BUILD_DIR=$WORK/keys source board/common/boot-key.sh 2>/dev/null
  gpg --batch --quiet --export "$BOOT_KEY" > "$WORK/keys/boot.pub"
}

# A slot image of the guest tree with /etc/fgw-test-version = $2 ($3: extra tweak function):
# ext4 and its dm-verity hash tree, which fit the slot; $1.verity holds the parameters.
slot_image() {
  local out=$1 version=$2 tweak=${3:-} f
  echo "$version" > "$G/etc/fgw-test-version"
  [ -n "$tweak" ] && "$tweak"
  # GRUB reads the kernel and initramfs before anything is verified: signed, as the release
  # machine signs them.
  for f in vmlinuz initrd.img; do
    rm -f "$G/boot/$f.sig"; boot_sign "$(readlink -f "$G/boot/$f")"
    mv "$(readlink -f "$G/boot/$f").sig" "$G/boot/$f.sig"
  done
  verity_image "$out" $((ROOT_MB - 32))
  boot_sign "$out.verity"
}

# The broken release: the daemon's unit cannot start (its ExecStart exits 1). The health
# check (the same gateway binary, run by its own unit) then finds the daemon not active.
break_daemon() {
  mkdir -p "$G/etc/systemd/system/facility-gateway.service.d"
  printf '[Service]\nExecStart=\nExecStart=/usr/bin/false\n' > "$G/etc/systemd/system/facility-gateway.service.d/broken.conf"
}

# A RAUC bundle (verity format) of a slot image and its signed dm-verity parameters (which
# RAUC's post-install handler puts on the ESP), signed with the update key.
make_bundle() {
  local name=$1 version=$2 image=$3 dir=$WORK/bundle-$1
  rm -rf "$dir"; mkdir -p "$dir"
  mv "$image" "$dir/rootfs.img"; mv "$image.verity" "$dir/rootfs.img.verity"
  mv "$image.verity.sig" "$dir/rootfs.img.verity.sig"
  printf '[update]\ncompatible=fgw-gateway-x86_64\nversion=%s\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.img\n' \
    "$version" > "$dir/manifest.raucm"
  rm -f "$WORK/$name.raucb"
  # zstd at level 1: a quarter of the default's time on a busy 2-core host, a similar size
  # (the guest's kernel reads zstd squashfs).
  rauc bundle --mksquashfs-args="-comp zstd -Xcompression-level 1" --cert "$WORK/keys/update.crt" --key "$WORK/keys/update.key" "$dir" "$WORK/$name.raucb" >/dev/null 2>"$WORK/$name.rauc.log"
  rm -rf "$dir"
}

# GPT: ESP, root-a, root-b, data; each file system made as its own image and written at
# its partition's offset into a sparse file (no loop devices, no root-only mounts).
ESP_MB=64; ROOT_MB=1800; DATA_MB=2048
make_ab_disk() {
  local a=1 b c d total
  b=$((a + ESP_MB)); c=$((b + ROOT_MB)); d=$((c + ROOT_MB)); total=$((d + DATA_MB + 1))
  rm -f "$WORK/disk.img"; truncate -s "${total}M" "$WORK/disk.img"
  sfdisk -q "$WORK/disk.img" <<EOF
label: gpt
start=$((a * 2048)), size=$((ESP_MB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$((b * 2048)), size=$((ROOT_MB * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root-a
start=$((c * 2048)), size=$((ROOT_MB * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root-b
start=$((d * 2048)), size=$((DATA_MB * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data
EOF
  make_esp "$WORK/esp.img" "$WORK/root-a.img.verity"
  # The data partition stays blank: the first boot makes it LUKS2, bound to the TPM.
  put "$WORK/esp.img" $a; put "$WORK/root-a.img" $b
  rm -f "$WORK/esp.img" "$WORK/root-a.img" "$WORK/root-a.img.verity" "$WORK/root-a.img.verity.sig"
  DATA_AT=$d
}
put() { dd if="$1" of="$WORK/disk.img" bs=1M seek="$2" conv=notrunc,sparse status=none; }

# The ESP: a standalone GRUB as the removable-media boot path with the board's grub.cfg
# (and the test's wrapper: the serial console) and the boot key built in; slot A's signed
# verity parameters $2 as EFI/fgw/A.verity (B's come with its first bundle); grubenv: slot A
# good.
make_esp() {
  local esp=$1 tmp=$WORK/esp-files
  rm -rf "$tmp"; mkdir -p "$tmp"
  cp "$IMG_DIR/grub-test.cfg" "$tmp/grub.cfg"; cp board/fgw-x86_64/grub.cfg "$tmp/fgw.cfg"
  boot_sign "$tmp/grub.cfg"; boot_sign "$tmp/fgw.cfg"
  source board/common/grub-standalone.sh
  grub_standalone "$tmp/BOOTX64.EFI" "$WORK/keys/boot.pub" \
    "boot/grub/grub.cfg=$tmp/grub.cfg" "boot/grub/grub.cfg.sig=$tmp/grub.cfg.sig" \
    "boot/grub/fgw.cfg=$tmp/fgw.cfg" "boot/grub/fgw.cfg.sig=$tmp/fgw.cfg.sig"
  grub-editenv "$tmp/grubenv" create
  grub-editenv "$tmp/grubenv" set ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
  rm -f "$esp"; mkfs.vfat -n ESP -C "$esp" $((ESP_MB * 1024)) >/dev/null
  mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/fgw
  mcopy -i "$esp" "$tmp/BOOTX64.EFI" "$tmp/grubenv" ::/EFI/BOOT/
  mcopy -i "$esp" "$2" ::/EFI/fgw/A.verity
  mcopy -i "$esp" "$2.sig" ::/EFI/fgw/A.verity.sig
  rm -rf "$tmp"
}

build_full_image() {
  slot_image "$WORK/root-a.img" 1; ROOT_HASH_1=$ROOT_HASH
  slot_image "$WORK/root-v2.img" 2; ROOT_HASH_2=$ROOT_HASH
  make_bundle good 2.0.0 "$WORK/root-v2.img"
  slot_image "$WORK/root-v3.img" 3 break_daemon
  make_bundle broken 3.0.0 "$WORK/root-v3.img"
  make_ab_disk
  rm -rf "$G"
  step "image: A/B disk (ESP with GRUB, root-a and root-b read-only under dm-verity, data); bundles 2.0.0 ($(du -h "$WORK/good.raucb" | cut -f1)) and 3.0.0 (broken) signed"
}

# One power-on: a fresh swtpm on the same state, QEMU until the guest reboots (-no-reboot
# makes QEMU exit then) or is killed. The DICOM port is forwarded from the host.
boot_full() {
  start_swtpm
  [ -f "$WORK/vars.fd" ] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"
  qemu_common
  CONSOLE=$WORK/console-$1.log
  qemu-system-x86_64 "${QEMU_ARGS[@]}" \
    -drive file="$WORK/disk.img",format=raw,if=virtio \
    -virtfs local,path="$WORK/usb",mount_tag=usb,security_model=none,readonly=on \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:$DICOM_PORT-:11112,hostfwd=tcp:127.0.0.1:$ECHO_PORT-:7 -device virtio-net-pci,netdev=n0 \
    -serial file:"$CONSOLE" 2>>"$WORK/qemu.log" &
  QEMU_PID=$!
  PIDS+=($QEMU_PID)
}
running() { kill -0 "$QEMU_PID" 2>/dev/null; }
stopped() { ! running; }
power_cut() { kill -9 "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; stop_swtpm; }
stop_swtpm() { kill "$SWTPM_PID" 2>/dev/null || true; wait "$SWTPM_PID" 2>/dev/null || true; }
# The guest rebooted by itself (QEMU exits on a reboot with -no-reboot).
wait_reboot() {
  if wait_until "$1" stopped; then wait "$QEMU_PID" 2>/dev/null || true; stop_swtpm; return 0; fi
  return 1
}
# The slot and version the report unit printed this boot, e.g. "B 2".
booted() { console_line 'FGW-TEST booted' | sed -n 's/.*slot=\([AB]\) version=\([0-9]*\).*/\1 \2/p'; }

# 2: a department export (in the share before power-on) and a DICOM push from the host.
make_dicom() {
  local jpg
  jpg=$(find "$WORK/export" -name '*.jpg' | sort | head -1)
  img2dcm -i JPEG -k "PatientName=KABURAGI^RURIKO" -k PatientID=00987123 -k AccessionNumber=E2026120500077 \
    -k Modality=ES -k "StudyDescription=EGD" "$jpg" "$WORK/push.dcm"
}
push_dicom() {
  storescu -xy -aet ENDO1 -aec FGW 127.0.0.1 "$DICOM_PORT" "$WORK/push.dcm" >"$WORK/storescu.log" 2>&1
}
has_dicom() { [ "$(dicom_count)" -ge 1 ]; }

step_export_and_dicom() {
  make_dicom
  if ! wait_until "$TIMEOUT" push_dicom; then
    failed 2 "storescu never got the object to the box's SCP: $(tail -2 "$WORK/storescu.log" | tr '\n' ' ')"; return
  fi
  wait_until "$TIMEOUT" has_exams 1 && FIRST_UPLOAD=$(( $(date +%s) - START ))
  if has_exams 1 && wait_until 300 has_dicom; then
    passed 2 "the export's exam and the pushed DICOM object (storescu -xy, JPEG baseline) are at the hub: $(exam_count) exam(s), $(dicom_count) DICOM object(s)"
  else
    failed 2 "at the hub after $TIMEOUT s: $(exam_count) exam(s), $(dicom_count) DICOM object(s)"
  fi
}

# 3: the API is only inside the tunnel, so arrivals came through it; the hub's interface
# counted the bytes from the box's peer.
step_vpn() {
  local rx
  rx=$(wg show "$HUB_IF" transfer 2>/dev/null | awk '{s += $2} END {print s + 0}')
  if [ "$(exam_count)" -ge 1 ] && [ "${rx:-0}" -gt 0 ]; then
    passed 3 "uploads through WireGuard: the hub's $HUB_IF received $rx bytes from the box's peer; the API listens only at $VPN_HUB_ADDR:8443 inside the tunnel"
  else
    failed 3 "hub interface $HUB_IF: ${rx:-0} bytes from the box; box log: $(grep -a -i 'vpn\|tunnel\|wireguard' "$CONSOLE" | tail -2 | tr '\n' ' ')"
  fi
}

# An OS release the product way: published in the hub's TUF repository, rolled out; the
# daemon downloads it (TUF), verifies it (RAUC keyring) and `rauc install`s it.
release_os() {
  hub_cfg release publish --kind os --version "$1" "$WORK/$2.raucb" >/dev/null
  ROLLOUT=$(hub_cfg rollout create --release "$1" --kind os | json 'd["id"]')
}
# The box took it (it rebooted); stop offering it, as the test's box runs the same gateway
# version in every slot and would otherwise take the release again on every boot.
pause_rollout() { hub_cfg rollout pause "$ROLLOUT" >/dev/null 2>&1 || true; }
health_done() { console_has 'FGW-TEST health'; }
# The OS outcome the box's newest heartbeat reports for version $1 (empty if none yet).
os_outcome() {
  hub_cfg fleet --json 2>/dev/null | V="$1" python3 -c '
import json, os, sys
d = json.load(sys.stdin)
o = ((d[0]["heartbeat"].get("updates") or {}).get("os") or {}) if d else {}
print(o.get("outcome", "") if o.get("version") == os.environ["V"] else "")' 2>/dev/null || true
}
# The box gave up on version $1 (refused or failed), or rebooted into it.
os_settled() { stopped || case "$(os_outcome "$1")" in refused|failed) true ;; *) false ;; esac; }

# The USB path (docs/fleet.md): a copy of the release repository on the stick share, and
# the version to apply; the test image's fgw-test-usb.service runs `gateway update apply
# --from` once.
usb_apply() {
  # The share's folder itself stays: QEMU holds it open, a new one would not be seen.
  rm -rf "$WORK/usb/repo"
  cp -al "$WORK/hub/data/tuf/repo" "$WORK/usb/repo"
  echo "$1" > "$WORK/usb/APPLY"
}
usb_clear() { rm -f "$WORK/usb/APPLY"; }

# Delivers OS release $1 (bundle $2): the hub's rollout first; if the box refuses the
# download, the USB path, and DELIVERY says which and why. True once the box rebooted.
deliver_os() {
  release_os "$1" "$2"
  DELIVERY="published on the hub, rolled out, downloaded by the daemon through the tunnel (TUF), rauc install"
  wait_until "$TIMEOUT" os_settled "$1" || true
  if running; then
    pause_rollout
    local outcome
    outcome=$(os_outcome "$1")
    usb_apply "$1"
    # The box's reason is in its journal, on the encrypted /data: fgw-test-usb prints it.
    wait_until 60 console_has "FGW-TEST usb apply $1" || true
    DELIVERY="the hub's rollout was ${outcome:-not taken} by the box (its reason: $(console_line "FGW-TEST usb apply $1" | sed 's/.*reason: //; s/)$//')); delivered by the USB path instead: a copy of the TUF repository over 9p, gateway update apply --from (TUF, RAUC keyring), rauc install"
  fi
  local ok=0
  wait_reboot "$TIMEOUT" || ok=1
  pause_rollout; usb_clear
  return $ok
}

step_update() {
  if ! deliver_os 2.0.0 good; then
    failed 4 "the box did not install 2.0.0 and reboot in $TIMEOUT s ($DELIVERY); console: $(console_line 'FGW-TEST usb\|rauc' | cut -c1-200)"
    return 1
  fi
  boot_full b1
  wait_until "$TIMEOUT" health_done || true
  local slot health
  slot=$(booted); health=$(console_line 'FGW-TEST health')
  # RAUC's handler wrote the bundle's verity table for B: the new root is verified too.
  check_root "$ROOT_HASH_2"
  if [ "$slot" = "B 2" ] && grep -q 'result=success' <<< "$health" && grep -q 'B_OK=1' <<< "$health" && grep -q 'B_TRY=0' <<< "$health" && [ "$ROOT_OK" = 1 ]; then
    passed 4 "OS release 2.0.0 ($DELIVERY) moved the box from slot A to slot B, whose root is read-only under dm-verity with the bundle's root hash; the health check marked B good (${health#*env=})"
  else
    failed 4 "after the install: booted '${slot:-nothing reported}'; health: '${health:-none}'; root: $ROOT_WHY"
    return 1
  fi
}

health_or_reboot() { health_done || stopped; }
step_rollback() {
  if ! deliver_os 3.0.0 broken; then
    failed 5 "the box did not install 3.0.0 and reboot in $TIMEOUT s ($DELIVERY)"; return 1
  fi
  boot_full a2
  local tried health back env good
  # The health unit reboots the box when it fails: its console line may not make it out.
  wait_until 600 health_or_reboot || true
  tried=$(booted); health=$(console_line 'FGW-TEST health')
  if ! wait_reboot 300; then
    failed 5 "booted '$tried' with the broken release; health '${health:-none}'; the box did not reboot by itself"; power_cut; return 1
  fi
  boot_full b2
  wait_until "$TIMEOUT" health_done || true
  back=$(booted)
  env=$(console_line 'FGW-TEST booted' | sed 's/.*env=//')
  good=$(console_line 'FGW-TEST health')
  if [ "$tried" = "A 3" ] && grep -q 'A_OK=0' <<< "$env" && [ "$back" = "B 2" ] && grep -q 'result=success' <<< "$good"; then
    passed 5 "broken release 3.0.0 (delivered as 2.0.0 was) booted in slot A, its health check failed (daemon not active), RAUC marked A bad and the box rebooted by itself into slot B (2), marked good again (${good#*env=})"
  else
    failed 5 "broken release: booted '$tried', health '${health:-none}'; then booted '$back' with grubenv '$env', health '${good:-none}'"
  fi
}

# 6: a larger export; QEMU killed while uploads are in flight; power on again; every exam
# at the hub exactly once.
# Exams in the share: distinct exam folders (synth_department numbers exams per day, so a
# new batch may export an exam of an earlier one again: its next revision), and exports.
share_exams() { find "$WORK/export" -mindepth 3 -maxdepth 3 -path '*/images/*' -type d -printf '%f\n' | sort -u | wc -l; }
share_exports() { find "$WORK/export" -mindepth 3 -maxdepth 3 -path '*/images/*' -type d | wc -l; }
# The hub's exams: rows, distinct exams, and the sum of their revisions (an exam ingested
# twice, e.g. a batch read again after the cut, would show as one revision too many).
hub_exams() { hub_cfg list --facility F0001 2>/dev/null | json '"%d %d %d" % (len(d), len({e["exam_pid"] for e in d}), sum(e["revision"] for e in d))' 2>/dev/null || echo "0 0 0"; }
step_power_cut() {
  local before n=${SYSTEM_TEST_CUT_EXAMS:-8} total exports mid got
  before=$(exam_count)
  "$BIN/examples/synth_department" "$WORK/export" --exams "$n" --seed 606 --batch power-cut >/dev/null
  total=$(share_exams); exports=$(share_exports)
  mid_upload() { [ "$(exam_count)" -gt "$before" ]; }
  if ! wait_until "$TIMEOUT" mid_upload; then
    failed 6 "no exam of the new export arrived before the cut"; return
  fi
  mid=$(exam_count)
  power_cut
  boot_full c1
  wait_exams "$total" || true
  sleep 30   # anything sent twice would arrive now
  got=$(hub_exams)
  if [ "$mid" -lt "$total" ] && [ "$got" = "$total $total $exports" ]; then
    passed 6 "power cut (QEMU killed) with $mid of $total exams at the hub; after the reboot all $total are there, each once ($exports exports, revisions summing to $exports: nothing ingested or sent twice)"
  else
    failed 6 "cut at $mid of $total exams; after the reboot the hub has rows/distinct/revision-sum '$got', expected '$total $total $exports'"
  fi
}

# The root hash is the society's: with the box off, the running slot's verity parameters
# on the ESP are given another root hash (as for a root of someone else's making). GRUB
# must refuse the file (its signature no longer matches) and start no kernel.
step_tampered_esp() {
  local f=$WORK/tampered.verity slot
  slot=$(booted | cut -d' ' -f1)
  power_cut
  mcopy -n -i "$WORK/disk.img@@1M" "::/EFI/fgw/$slot.verity" "$f"
  sed -i "s/^ROOT_HASH=.*/ROOT_HASH=$(printf 'a root of someone else' | sha256sum | cut -c1-64)/" "$f"
  mcopy -o -n -i "$WORK/disk.img@@1M" "$f" "::/EFI/fgw/$slot.verity"
  boot_full tampered
  # GRUB decides within seconds; a kernel it started would report within two minutes.
  wait_until 150 stopped || true
  power_cut
  local grub_said
  grub_said=$(grep -ao 'slot [AB]: its verity parameters were refused[^;]*' "$CONSOLE" | tail -1 || true)
  if [ -n "$grub_said" ] && ! console_has 'Linux version' && ! console_has "FGW-TEST booted slot=$slot"; then
    passed tampered-esp "slot $slot's verity parameters on the ESP given another root hash with the box off: GRUB refused them and started no kernel (GRUB: '$grub_said')"
  else
    failed tampered-esp "slot $slot's altered parameters: GRUB said '${grub_said:-nothing}'; a kernel started: $(console_has 'Linux version' && echo yes || echo no); slot $slot booted: $(console_has "FGW-TEST booted slot=$slot" && echo yes || echo no)"
  fi
}

run_full() {
  mkdir -p "$WORK/usb"
  build_full_image
  "$BIN/examples/synth_department" "$WORK/export" --exams 1 >/dev/null
  START=$(date +%s)
  boot_full a1
  step "power on: QEMU (TCG) with OVMF, GRUB, slot A, and swtpm"
  if wait_until "$TIMEOUT" enrolled; then
    passed 1 "zero-touch enrollment: operational certificate issued after $(( $(date +%s) - START )) s"
  else
    failed 1 "no enrollment in $TIMEOUT s"; fail_console "the box never enrolled"
  fi
  check_root "$ROOT_HASH_1"
  if [ "$ROOT_OK" = 1 ]; then
    passed root "slot A's root is read-only under dm-verity; GRUB built its table from the signed parameters on the ESP ($ROOT_WHY)"
  else
    failed root "$ROOT_WHY"
  fi
  FIRST_UPLOAD=none
  step_export_and_dicom
  step_vpn
  check_firewall
  if [ "$FIREWALL_OK" = 1 ]; then
    passed firewall "default deny in and out; the allow-lists from gateway.toml admitted the hub, the tunnel and the DICOM push, and nothing else ($FIREWALL_WHY)"
  else
    failed firewall "$FIREWALL_WHY"
  fi
  wait_until 300 health_done || true
  if step_update; then step_rollback || true; else failed 5 "skipped: step 4 did not leave the box on slot B"; fi
  running || boot_full c0
  step_power_cut
  check_data_volume "$WORK/disk.img" "$DATA_AT" "$DATA_MB" lost+found facility-gateway KABURAGI 00987123 "$(export_patient_id)"
  if [ "$DATA_OK" = 1 ]; then
    passed data "/data is LUKS2, made on the first boot, its only key sealed to the TPM (swtpm) by systemd-cryptenroll and unlocked by it on every boot since, in both slots ($DATA_WHY)"
  else
    failed data "$DATA_WHY"
  fi
  step_tampered_esp
  echo "power-on to first upload: $FIRST_UPLOAD s"
  [ "$FAILED_STEPS" = 0 ]
}
