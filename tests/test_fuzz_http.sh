#!/usr/bin/env bash
# Builds the libFuzzer target for route and job-body parsing with clang and
# runs it briefly (RBEE_FUZZ_SECONDS, default 10) from the seed corpus.
set -euo pipefail
: "${RBEE_SOURCE_DIR:?}"
# One short run per CI pass is enough: the plain build runs it.
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
  -I"$src/include" -I"$src/src" \
  "$src/tests/fuzz/fuzz_http.c" "$src/src/http/route.c" "$src/src/util/utf8.c" \
  "$src/src/util/errors.c" "$src/src/util/str.c" \
  $(pkg-config --cflags --libs libcjson) -o "$tmp/fuzz_http"
mkdir -p "$tmp/corpus"
cp "$src"/tests/fuzz/corpus/* "$tmp/corpus/"
"$tmp/fuzz_http" -max_total_time="${RBEE_FUZZ_SECONDS:-10}" -max_len=4096 \
  -print_final_stats=1 "$tmp/corpus" 2>&1 | tail -n 12
