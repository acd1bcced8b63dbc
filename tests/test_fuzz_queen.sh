#!/usr/bin/env bash
# Builds the libFuzzer target for the local queen's heartbeat validator and
# registry, the relay's stream framing check and the worker's command line
# parser (tests/fuzz/fuzz_queen.c) with clang, and runs it briefly
# (RBEE_FUZZ_SECONDS, default 10) from its seed corpus.
set -euo pipefail
: "${RBEE_SOURCE_DIR:?}"
source "$(dirname "$0")/fuzz/fuzz_lib.sh"
fuzz_run fuzz_queen corpus_queen -I"$src/tools/rbee-queen" \
  "$src/tests/fuzz/fuzz_queen.c" "$src/tools/rbee-queen/registry.c" \
  "$src/tools/rbee-queen/sse_check.c" "$src/src/info/json.c" "$src/src/info/info.c" \
  "$src/src/worker/cli.c" "$src/src/worker/options.c" "$src/src/util/errors.c" \
  "$src/src/util/str.c" "$src/src/util/time.c" "$src/src/util/utf8.c" "$src/src/util/log.c" \
  "$src/src/util/trace.c" "$src/src/util/rand.c" \
  "$src/src/util/version.c" "$src/src/device/device.c" "$src/src/device/registry.c" \
  "$src/src/device/host.c" "$src/src/device/device_cpu.c"
