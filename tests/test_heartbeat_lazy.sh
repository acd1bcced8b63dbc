#!/usr/bin/env bash
# libcurl is loaded only when a heartbeat is used: librbee.so does not link
# it, a worker without --queen-url never maps it, a worker with a queen
# maps it once it heartbeats, and a libcurl that cannot be loaded is a
# clear RBEE_ENOTSUP (RBEE_CURL_LIBRARY names the library to load).
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$LLM_BIN"
SEND=${RBEE_TEST_heartbeat_send:?RBEE_TEST_heartbeat_send is not set (run through ctest)}
LIB=$RBEE_BUILD_DIR/src/librbee.so

# maps PID: the shared objects a live process has mapped, one a line.
maps() { awk '$6 ~ /\.so/ { print $6 }' "/proc/$1/maps" | sort -u; }

step "librbee.so links no libcurl"
[ -e "$LIB" ] || fail "$LIB is not built"
ldd "$LIB" >"$TMP/ldd.txt" || fail "ldd $LIB failed"
assert_contains "$TMP/ldd.txt" "libevent" "ldd of librbee.so"
if grep -q 'libcurl' "$TMP/ldd.txt"; then fail "librbee.so links libcurl: $(grep libcurl "$TMP/ldd.txt")"; fi

step "a worker without --queen-url never maps libcurl"
: >"$TMP/solo.log"
"$LLM_BIN" --model tiny --port 0 >"$TMP/solo.out" 2>"$TMP/solo.log" &
solo=$!
PIDS+=("$solo")
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1 port=\([0-9]*\).*/\1/p' "$TMP/solo.log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$solo" 2>/dev/null || fail "the worker exited at start"
  sleep 0.1
done
[ -n "$port" ] || fail "the worker did not say where it listens"
code=""
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/ready" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
[ "$code" = 200 ] || fail "GET /ready: HTTP $code"
maps "$solo" >"$TMP/solo.maps"
assert_contains "$TMP/solo.maps" "librbee.so" "the worker's mappings"
if grep -q 'libcurl' "$TMP/solo.maps"; then fail "a worker without a queen mapped $(grep libcurl "$TMP/solo.maps")"; fi
echo "solo worker: $(wc -l <"$TMP/solo.maps") shared objects, no libcurl"

step "a worker with a queen maps libcurl once it heartbeats"
start_queen --insecure-open-registration # heartbeat_send has no token
start_worker lazy "$LLM_BIN" --model tiny
lazy=$LAST_PID
wait_status lazy ready
maps "$lazy" >"$TMP/lazy.maps"
assert_contains "$TMP/lazy.maps" "libcurl.so.4" "the heartbeating worker's mappings"

step "libcurl missing: the worker stops with a clear error"
missing=$TMP/nowhere/libcurl.so.4
: >"$TMP/nocurl.log"
rc=0
RBEE_CURL_LIBRARY=$missing timeout 60 "$LLM_BIN" --model tiny --port 0 --queen-url "$QURL" \
  >"$TMP/nocurl.out" 2>"$TMP/nocurl.log" || rc=$?
[ "$rc" = 69 ] || fail "a worker without libcurl exited with $rc, not 69 (unavailable)"
assert_contains "$TMP/nocurl.log" \
  "$missing not found: install libcurl4 (Debian) to send heartbeats: $missing: cannot open shared object file" \
  "the worker's log"

step "libcurl missing: rbee_heartbeat_send_once says RBEE_ENOTSUP"
rc=0
RBEE_CURL_LIBRARY=$missing "$SEND" "$QURL" >"$TMP/send.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "heartbeat_send exited with $rc"
assert_contains "$TMP/send.out" \
  "error RBEE_ENOTSUP: heartbeat: $missing not found: install libcurl4 (Debian) to send heartbeats: " \
  "heartbeat_send"

step "a library that is not libcurl: RBEE_ENOTSUP naming the missing function"
cjson=$(ldd "$LIB" | awk '/libcjson/ { print $3 }')
[ -n "$cjson" ] || fail "no libcjson in ldd of librbee.so"
rc=0
RBEE_CURL_LIBRARY=$cjson "$SEND" "$QURL" >"$TMP/notcurl.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "heartbeat_send exited with $rc"
assert_contains "$TMP/notcurl.out" "error RBEE_ENOTSUP: heartbeat: $cjson has no curl_global_init" \
  "heartbeat_send"

step "the real libcurl again: the same program is acknowledged"
"$SEND" "$QURL" >"$TMP/ok.out" 2>&1 || fail "heartbeat_send failed: $(cat "$TMP/ok.out")"
assert_contains "$TMP/ok.out" "ok " "heartbeat_send"
echo "lazy libcurl: ok"
