#!/usr/bin/env bash
# rbee-device-info: text and JSON for cpu, --list, exit codes 64 (usage, bad
# spec) and 69 (device unavailable), and the accelerator's clear errors:
# ENOTSUP naming the CMake option in a CPU build; in a CUDA build the
# no-driver/no-device error, or a verified GPU where one is present.
set -euo pipefail
: "${RBEE_BUILD_DIR:?}"
tool="$RBEE_BUILD_DIR/tools/rbee-device-info/rbee-device-info"
[ -x "$tool" ] || { echo "missing $tool (configure with RBEE_BUILD_SAMPLES=ON)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE ARGS...: run the tool, stdout to $tmp/out, stderr to $tmp/err.
expect() {
  local want=$1 rc=0
  shift
  "$tool" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "rbee-device-info $* exited $rc, expected $want: $(cat "$tmp/err")"
}
has() { grep -qF -- "$2" "$tmp/$1" || fail "$1 lacks '$2': $(cat "$tmp/$1")"; }

expect 0 --help
has out "usage: rbee-device-info"
expect 64 --bogus
has err "unknown option --bogus"
expect 64 cpu cuda:0
has err "too many arguments"
for bad in gpu:0 cuda: cuda:-1 cuda:99999999999 "cuda:0 " ""; do
  expect 64 "$bad"
  has err "device spec"
done
expect 64 --json gpu:0
has out '"code":"RBEE_EINVAL"'

expect 0 cpu
has out "verify       ok"
has out "health       healthy"
expect 0 --json
has out '"device":"cpu"'
has out '"verified":true'
has out '"healthy":true'
grep -qE '"cpu_cores":[1-9]' "$tmp/out" || fail "no cpu_cores: $(cat "$tmp/out")"
RBEE_DEVICE=cpu:1 expect 69
has err "cpu:1 requested, 1 device present"
expect 0 --no-verify --json cpu
grep -q '"verified"' "$tmp/out" && fail "--no-verify still verified"
expect 0 --list --json
has out '"kind":"cpu","built":true,"count":1'
expect 0 --list
has out "cpu    cpu"

if [ "${RBEE_WITH_CUDA:-OFF}" = ON ]; then
  rc=0
  "$tool" --json cuda:0 >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "${RBEE_TEST_EXPECT_GPU:-}" = 1 ] || [ $rc -eq 0 ]; then
    [ $rc -eq 0 ] || fail "cuda:0 exited $rc: $(cat "$tmp/out")"
    has out '"verified":true'
    has out '"healthy":true'
    echo "cuda:0 verified: $(cat "$tmp/out")"
  else
    [ $rc -eq 69 ] || fail "cuda:0 without a GPU exited $rc, expected 69"
    grep -qE 'CUDA driver not found or too old: cuda|cuda:0 requested, 0 devices present' \
      "$tmp/out" || fail "unclear no-GPU error: $(cat "$tmp/out")"
    echo "no GPU here, as reported: $(cat "$tmp/out")"
  fi
else
  expect 69 cuda:0
  has err "-DRBEE_WITH_CUDA=ON"
fi
expect 69 metal:0
has err "RBEE_WITH_METAL=ON"
echo "rbee-device-info: ok"
