#!/usr/bin/env bash
# Prints the first Debian (not -security) mirror this machine's apt is
# configured with (/etc/apt/sources.list*), for debootstrap; exits 1 when
# there is none. Used by scripts/systemd-root.sh and
# deploy/container/make-base.sh, so that no mirror is named in the project.
set -euo pipefail
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
  [ -n "$m" ] && { echo "$m"; exit 0; }
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\// && $i !~ /security/) { print $i; exit } }' "$f")
  [ -n "$m" ] && { echo "$m"; exit 0; }
done
exit 1
