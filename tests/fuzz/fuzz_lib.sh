# shellcheck shell=bash
# Shared by tests/test_fuzz_*.sh (sourced, after their own check of
# RBEE_SOURCE_DIR): skip (exit 77) outside the plain build, need clang, and
# fuzz_run to build one libFuzzer target and run it briefly
# (RBEE_FUZZ_SECONDS, default 10) from its seed corpus.
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

# fuzz_run NAME CORPUS CLANG_ARGS...: build $tmp/NAME with clang from
# CLANG_ARGS (more -I, the target and the sources it needs), then run it on
# a copy of tests/fuzz/CORPUS; prints the end of libFuzzer's report.
fuzz_run() {
  local name=$1 corpus=$2
  shift 2
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split
  clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
    -I"$src/include" -I"$src/src" "$@" \
    $(pkg-config --cflags --libs libcjson) -o "$tmp/$name"
  mkdir -p "$tmp/corpus"
  cp "$src/tests/fuzz/$corpus"/* "$tmp/corpus/"
  "$tmp/$name" -max_total_time="${RBEE_FUZZ_SECONDS:-10}" -max_len=4096 \
    -print_final_stats=1 "$tmp/corpus" 2>&1 | tail -n 12
}
