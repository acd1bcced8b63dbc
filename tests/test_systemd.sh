#!/usr/bin/env bash
# deploy/systemd/ under a real systemd (scripts/test-systemd.sh), only
# against the Debian root that command caches: building one takes minutes
# (debootstrap), more than CI's budget. SKIP (77) when not root or no
# root is cached.
here=$(cd "$(dirname "$0")/.." && pwd)
root=${RBEE_SYSTEMD_ROOT:-/var/cache/librbee/systemd-root}
if [ "$(id -u)" -ne 0 ]; then
  echo "test_systemd: SKIP: needs root (namespaces, mounts, chroot)"
  exit 77
fi
if [ ! -e "$root/.rbee-root-complete" ]; then
  echo "test_systemd: SKIP: no cached Debian root at $root; run scripts/test-systemd.sh (or make test-systemd) once to build it and run this test"
  exit 77
fi
if [ -n "${RBEE_SANITIZE:-}" ]; then
  echo "test_systemd: SKIP: a sanitizer build's worker needs its runtime in the root; the plain build runs this test"
  exit 77
fi
if [[ "${RBEE_WITH_CUDA:-}" =~ ^(ON|On|on|1|TRUE|true|YES|yes)$ ]]; then
  echo "test_systemd: SKIP: the CUDA build's worker needs the CUDA runtime (libcudart), which the root has not; the plain build runs this test"
  exit 77
fi
exec "$here/scripts/test-systemd.sh" --no-prepare
