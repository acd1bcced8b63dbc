#!/usr/bin/env bash
# Out of memory while parsing the command line, or allocating the worker,
# says so and exits 70 (docs/worker.md): each allocation after the first
# getopt_long() call is failed in turn by an LD_PRELOAD shim built here,
# until the failure reaches the worker's own allocation.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$LLM_BIN"
if [ -n "${RBEE_SANITIZE:-}" ]; then
  echo "skipped: an LD_PRELOAD malloc shim does not mix with the sanitizer runtime ($RBEE_SANITIZE)"
  exit 77
fi
SHIM=$TMP/fail_alloc.so
if ! ${CC:-cc} -shared -fPIC -O1 -o "$SHIM" "$RBEE_SOURCE_DIR/tests/shims/fail_alloc.c" -ldl \
  2>"$TMP/cc.err"; then
  echo "skipped: cannot build the allocation shim: $(head -3 "$TMP/cc.err")"
  exit 77
fi

step "each allocation of the parse fails in turn"
parse_oom=0
reached=""
for n in $(seq 1 40); do
  rc=0
  LD_PRELOAD=$SHIM RBEE_FAIL_ALLOC_AT=$n timeout 20 "$LLM_BIN" --worker-id oom --model tiny \
    --device cpu --bind 127.0.0.1 --port 0 --queen-url http://127.0.0.1:9 --nope \
    >"$TMP/oom.out" 2>"$TMP/oom.err" || rc=$?
  msg=$(head -c 300 "$TMP/oom.err" | head -1)
  echo "allocation $n: exit $rc: $msg"
  case "$rc" in
  64) # the failure came after the parse's allocations
    assert_contains "$TMP/oom.err" "unknown option '--nope'" "exit 64"
    reached=$n
    break ;;
  70)
    assert_contains "$TMP/oom.err" "llm-worker: out of memory while parsing the command line" "exit 70"
    if grep -q "see --help" "$TMP/oom.err"; then fail "an allocation failure sends the user to --help"; fi
    parse_oom=$((parse_oom + 1)) ;;
  *) fail "allocation $n failed: exit $rc (want 70, or 64 once past the parse): $msg" ;;
  esac
done
[ "$parse_oom" -ge 3 ] || fail "only $parse_oom allocation failures hit the parse"
[ -n "$reached" ] || fail "40 allocations and the parse never got past them"

step "the worker's own allocation fails"
# Without --nope the parse succeeds; the allocation after it is the worker's.
rc=0
LD_PRELOAD=$SHIM RBEE_FAIL_ALLOC_AT=$reached timeout 20 "$LLM_BIN" --worker-id oom --model tiny \
  --device cpu --bind 127.0.0.1 --port 0 --queen-url http://127.0.0.1:9 \
  >"$TMP/w.out" 2>"$TMP/w.err" || rc=$?
echo "allocation $reached without --nope: exit $rc: $(head -1 "$TMP/w.err")"
[ "$rc" = 70 ] || fail "a failed worker allocation exited with $rc, not 70"
assert_contains "$TMP/w.err" "out of memory allocating the worker" "the worker's log"
echo "ok: $parse_oom parse allocations failed one by one, each named; the worker's too"
