#!/usr/bin/env bash
# Builds the libFuzzer target for the local queen's heartbeat validator and
# registry, the relay's stream framing check and the worker's command line
# parser (tests/fuzz/fuzz_queen.c) with clang, and runs it briefly
# (RBEE_FUZZ_SECONDS, default 10) from its seed corpus.
set -euo pipefail
: "${RBEE_SOURCE_DIR:?}"
if [ -n "${RBEE_SANITIZE:-}" ] || [ "${RBEE_WITH_CUDA:-OFF}" = ON ]; then
  echo "SKIP: the fuzz target runs in the plain build only"
  exit 77
fi
if ! command -v clang >/dev/null; then
  echo "clang not installed: fuzz target not run (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
src=$RBEE_SOURCE_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
  -I"$src/include" -I"$src/src" -I"$src/tools/rbee-queen" \
  "$src/tests/fuzz/fuzz_queen.c" "$src/tools/rbee-queen/registry.c" \
  "$src/tools/rbee-queen/sse_check.c" "$src/src/info/json.c" "$src/src/info/info.c" \
  "$src/src/worker/cli.c" "$src/src/worker/options.c" "$src/src/util/errors.c" \
  "$src/src/util/str.c" "$src/src/util/time.c" "$src/src/util/utf8.c" "$src/src/util/log.c" \
  "$src/src/util/trace.c" "$src/src/util/rand.c" \
  "$src/src/util/version.c" "$src/src/device/device.c" "$src/src/device/registry.c" \
  "$src/src/device/host.c" "$src/src/device/device_cpu.c" \
  $(pkg-config --cflags --libs libcjson) -o "$tmp/fuzz_queen"
mkdir -p "$tmp/corpus"
cp "$src"/tests/fuzz/corpus_queen/* "$tmp/corpus/"
"$tmp/fuzz_queen" -max_total_time="${RBEE_FUZZ_SECONDS:-10}" -max_len=4096 \
  -print_final_stats=1 "$tmp/corpus" 2>&1 | tail -n 12
