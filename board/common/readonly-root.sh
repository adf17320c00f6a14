# What a root tree needs to run read-only under dm-verity (docs/image.md): what must be
# writable is memory (tmp.mount, var-tmp.mount and var-lib-systemd.mount, from the overlay,
# enabled here) or /data (the journal, through /var/log/journal -> /data/journal); the
# machine ID is empty, so systemd makes a new one each boot. Sourced by
# board/common/post-build.sh (the board's target tree) and tests/system/lib.sh (the system
# test's image), so both roots are set up alike.
#
#   readonly_root ROOT

readonly_root() {
  local root=$1 unit
  mkdir -p "$root/etc/systemd/system/local-fs.target.wants"
  for unit in tmp.mount var-tmp.mount var-lib-systemd.mount; do
    ln -sf "/usr/lib/systemd/system/$unit" "$root/etc/systemd/system/local-fs.target.wants/$unit"
  done
  rm -rf "$root/var/log/journal"
  mkdir -p "$root/var/log" "$root/var/lib/systemd"
  ln -s /data/journal "$root/var/log/journal"
  : > "$root/etc/machine-id"
}
