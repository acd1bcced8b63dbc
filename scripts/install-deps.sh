#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing librbee needs,
# only when one is missing. Safe to run again. Needs root (or sudo).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libevent-dev            # event loop, evhttp, pthreads support
  libcurl4-openssl-dev    # heartbeat client (multi-socket interface)
  libcjson-dev            # JSON
  check                   # unit test framework
  libpng-dev              # sd-worker sample writes PNG
  curl                    # shell tests and make demo
  clang libclang-rt-14-dev  # sanitizer build and fuzz target (libFuzzer)
  openssl                 # TLS test queen (tests/test_heartbeat_tls.sh)
  valgrind                # memcheck runs of the heartbeat and the worker process
  flite1-dev              # tts-worker sample (speech synthesis)
  libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us  # asr-worker sample
  python3 python3-yaml    # the Kubernetes manifests' test (tests/test_deploy_kubernetes.sh)
  debootstrap util-linux  # the systemd test's Debian root (scripts/test-systemd.sh), unshare
)
[ "${RBEE_BENCH:-0}" = 1 ] && pkgs+=(gnuplot-nox)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: these packages are missing: ${missing[*]}" >&2
    echo "install-deps: installing them needs root, and sudo is not installed: run this script" \
      "as root (su -c ./scripts/install-deps.sh), or as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
