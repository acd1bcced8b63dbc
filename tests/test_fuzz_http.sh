#!/usr/bin/env bash
# Builds the libFuzzer target for route and job-body parsing with clang and
# runs it briefly (RBEE_FUZZ_SECONDS, default 10) from the seed corpus.
set -euo pipefail
: "${RBEE_SOURCE_DIR:?}"
source "$(dirname "$0")/fuzz/fuzz_lib.sh"
fuzz_run fuzz_http corpus \
  "$src/tests/fuzz/fuzz_http.c" "$src/src/http/route.c" "$src/src/util/utf8.c" \
  "$src/src/util/errors.c" "$src/src/util/str.c"
