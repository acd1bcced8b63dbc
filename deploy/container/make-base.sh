#!/usr/bin/env bash
# Makes the base image deploy/container/Containerfile builds on, without
# any image registry: debootstrap --variant=minbase bookworm with the
# worker's runtime libraries and curl (the health check), from the mirror
# apt is configured with, imported into podman as localhost/rbee-base.
#
#   deploy/container/make-base.sh [TAG]   (root; default localhost/rbee-base:bookworm)
set -euo pipefail
tag=${1:-localhost/rbee-base:bookworm}
dir=${RBEE_BASE_ROOT:-/var/cache/librbee/container-base}
[ "$(id -u)" -eq 0 ] || { echo "make-base: needs root (debootstrap)" >&2; exit 1; }
mirror=$("$(dirname "$0")/../../scripts/apt-mirror.sh") || { echo "make-base: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
if [ ! -e "$dir/.rbee-root-complete" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  debootstrap --variant=minbase \
    --include=libevent-2.1-7,libevent-pthreads-2.1-7,libcjson1,libcurl4,curl,ca-certificates \
    bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
  # No package manager caches or docs in a runtime image.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  touch "$dir/.rbee-root-complete"
fi
tar --exclude=./.rbee-root-complete -C "$dir" -c . | podman import - "$tag" >/dev/null
echo "make-base: $tag ($(du -sh "$dir" | cut -f1) root)"
