#!/usr/bin/env bash
# Builds (once) the Debian root that scripts/test-systemd.sh boots with
# systemd as PID 1: debootstrap --variant=minbase bookworm plus systemd,
# curl and the worker's runtime libraries. The mirror is the one this
# machine's apt already uses (read from /etc/apt/sources.list*). Needs root.
#
#   scripts/systemd-root.sh [DIR]   (default $RBEE_SYSTEMD_ROOT or
#                                    /var/cache/librbee/systemd-root)
set -euo pipefail

root=${1:-${RBEE_SYSTEMD_ROOT:-/var/cache/librbee/systemd-root}}
if [ -e "$root/.rbee-root-complete" ]; then
  echo "systemd-root: $root is ready"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "systemd-root: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "systemd-root: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# The first Debian (not -security) mirror apt is configured with.
mirror=$("$(dirname "$0")/apt-mirror.sh") || { echo "systemd-root: no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }

pkgs=systemd,systemd-sysv,dbus,curl,ca-certificates,libevent-2.1-7,libevent-pthreads-2.1-7,libcurl4,libcjson1,procps
echo "systemd-root: debootstrap bookworm into $root from the configured mirror (a few minutes)"
rm -rf "$root"
mkdir -p "$root"
debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  echo "systemd-root: debootstrap failed; the end of $root.log:" >&2
  tail -20 "$root.log" >&2
  exit 1
}
# Nothing the test does not need: no getty, no network setup, no logins.
chroot "$root" systemctl mask getty.target console-getty.service systemd-logind.service \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  fstrim.timer systemd-tmpfiles-clean.timer >/dev/null 2>&1 || true
echo "rbee-systemd-test" >"$root/etc/hostname"
touch "$root/.rbee-root-complete"
echo "systemd-root: $root is ready"
