#!/usr/bin/env bash
# Attacks on a real queen and worker over loopback, each bounded, each
# asserting the fix: forged registration, closed stdio with control
# characters in logged input, an unread stderr pipe, a log file on a full
# disk (/dev/full).
source "$(dirname "$0")/samples_lib.sh"
for b in "$QUEEN_BIN" "$LLM_BIN"; do [ -x "$b" ] || { echo "SKIP: $b not built"; exit 77; }; done
[ -w /dev/full ] || { echo "SKIP: no /dev/full"; exit 77; }
hb() { # hb ID MODEL PORT STATUS
  printf '{"worker":{"id":"%s","model_id":"%s","device":"cpu","port":%s,"status":"%s","implementation":"t","version":"0.1.0"},"timestamp":"2026-11-26T12:00:00Z"}' "$@"
}
code() { curl -s -o "$TMP/last.json" -w '%{http_code}' --max-time 5 "$@"; }
health_ms() { curl -s -o /dev/null -w '%{time_total}' --max-time 2 "$1/health" | awk '{printf "%d", $1 * 1000}'; }

step "the queen refuses a heartbeat without its generated registration token"
start_queen --dead-after-ms 60000
[ -n "$QTOKEN" ] && [ -f "$QTOKEN" ] || fail "no registration token file"
[ "$(stat -c %a "$QTOKEN")" = 600 ] || fail "token file mode $(stat -c %a "$QTOKEN")"
J=(-H 'Content-Type: application/json')
A=(-H "Authorization: Bearer $(cat "$QTOKEN")")
[ "$(code "${J[@]}" -d "$(hb evil tiny 1 ready)" "$QURL/v1/worker-heartbeat")" = 401 ] || fail "forged beat accepted"
[ "$(code "${J[@]}" "${A[@]}" -d "$(hb 'e\u001b[31m' tiny 1 ready)" "$QURL/v1/worker-heartbeat")" = 400 ] ||
  fail "an id with an escape accepted"
start_worker h-one "$LLM_BIN" --model tiny
wait_status h-one ready 60
[ "$(code "${J[@]}" "${A[@]}" -d "$(hb h-one tiny 1 stopped)" "$QURL/v1/worker-heartbeat")" = 409 ] ||
  fail "a forged stopped for a live id from another port was accepted"
wait_status h-one ready 5
WURL=$(worker_url h-one)
# A beat (with the token) naming a real worker's port under another id:
# its GET /info says h-one, so "fake" is never verified, never routed.
[ "$(code "${J[@]}" "${A[@]}" -d "$(hb fake tiny "${WURL##*:}" ready)" "$QURL/v1/worker-heartbeat")" = 200 ] ||
  fail "the beat for fake was refused outright"
for _ in $(seq 30); do grep -q 'fake at .* not verified' "$TMP/queen.log" && break; sleep 0.1; done
assert_contains "$TMP/queen.log" "not verified: its GET /info names another id" "the queen's log"
case "$(worker_json fake)" in *'"verified":false'*) ;; *) fail "fake is verified: $(worker_json fake)" ;; esac
case "$(worker_json h-one)" in *'"verified":true'*) ;; *) fail "h-one is not verified" ;; esac

step "framing: two Content-Length values, two Authorization headers: 400"
raw() { # raw PORT REQUEST: the status line of the answer
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1"
  printf '%b' "$2" >&"$fd"
  timeout 3 head -n 1 <&"$fd" | tr -d '\r'
  exec {fd}>&-
}
WPORT=${WURL##*:}
st=$(raw "$WPORT" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}')
[ "$st" = "HTTP/1.1 400 Bad Request" ] || fail "two Content-Length values: '$st'"
st=$(raw "$WPORT" 'GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n')
[ "$st" = "HTTP/1.1 400 Bad Request" ] || fail "two Authorization headers: '$st'"
st=$(raw "$WPORT" 'GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n')
[ "$st" = "HTTP/1.1 200 OK" ] || fail "two equal Content-Length values: '$st'"

step "out of fds (ulimit -n 64, 120 connections held): no spin, no log flood"
: >"$TMP/fd.log"
( ulimit -n 64; exec "$LLM_BIN" --worker-id h-fd --port 0 --queen-url "$QURL" --queen-token-file "$QTOKEN" \
  --heartbeat-interval 1 --model tiny 0<&- >"$TMP/fd.out" 2>>"$TMP/fd.log" ) &
fdw=$!
PIDS+=("$fdw")
wait_status h-fd ready 60
FURL=$(worker_url h-fd)
held=()
for _ in $(seq 120); do exec {c}<>"/dev/tcp/127.0.0.1/${FURL##*:}" || break; held+=("$c"); done
sleep 0.5
t0=$(awk '{print $14 + $15}' "/proc/$fdw/stat"); b0=$(stat -c %s "$TMP/fd.log")
sleep 3
t1=$(awk '{print $14 + $15}' "/proc/$fdw/stat"); b1=$(stat -c %s "$TMP/fd.log")
echo "held ${#held[@]} connections: $((t1 - t0)) CPU ticks and $((b1 - b0)) log bytes in 3 s"
[ $((t1 - t0)) -lt 60 ] || fail "the worker spun: $((t1 - t0)) ticks of CPU in 3 s"
[ $((b1 - b0)) -lt 20000 ] || fail "log flood: $((b1 - b0)) bytes in 3 s"
# The cap (kept below the fd limit) or the accept pause: one of them said so.
grep -qE 'accept failed|http.connections' "$TMP/fd.log" || fail "the held connections were not reported"
for c in "${held[@]}"; do exec {c}>&-; done
ok=0
for _ in $(seq 30); do [ "$(code "$FURL/health")" = 200 ] && { ok=1; break; }; sleep 0.1; done
[ "$ok" = 1 ] || fail "/health did not come back once the connections were released"
kill -TERM "$fdw"; wait "$fdw" || true

step "closed stdio: control characters in logged input do not become signals"
: >"$TMP/cq.out"
"$QUEEN_BIN" --port 0 --no-table --insecure-open-registration 0<&- 2>&- >"$TMP/cq.out" &
cq=$!
PIDS+=("$cq")
for _ in $(seq 100); do grep -q listening "$TMP/cq.out" && break; sleep 0.1; done
CQ=$(sed -n 's/^rbee-local-queen listening on \(http:.*\)$/\1/p' "$TMP/cq.out")
[ -n "$CQ" ] || fail "the stdio-closed queen did not start"
for _ in 1 2 3; do code "${J[@]}" -d "$(hb x '\u000f\u000f' 1 ready)" "$CQ/v1/worker-heartbeat" >/dev/null; done
sleep 0.5
kill -0 "$cq" || fail "the queen with closed stdio died on a logged control character"
[ "$(code "$CQ/health")" = 200 ] || fail "the stdio-closed queen does not answer"
kill -TERM "$cq"; wait "$cq" || fail "the stdio-closed queen exited $? on SIGTERM"

step "an unread stderr pipe does not freeze the worker's loop"
fifo=$TMP/err.fifo
mkfifo "$fifo"
exec 3<>"$fifo"
head -c 65536 /dev/zero >&3 # the pipe is full before the worker starts
"$LLM_BIN" --worker-id h-pipe --port 0 --queen-url "$QURL" --queen-token-file "$QTOKEN" \
  --heartbeat-interval 1 --model tiny 0<&- >"$TMP/pipe.out" 2>&3 &
pw=$!
PIDS+=("$pw")
wait_status h-pipe ready 60
PURL=$(worker_url h-pipe)
worst=0
for i in $(seq 200); do # ~100 KiB of log: more than the log's 64 KiB buffer
  code -H 'Content-Type: application/json' -H 'Accept: text/event-stream' -d '{"operation":"infer","prompt":"hi","max_tokens":2}' "$PURL/v1/jobs" >/dev/null || true
  [ $((i % 10)) = 0 ] || continue
  ms=$(health_ms "$PURL"); [ -n "$ms" ] || ms=9999
  [ "$ms" -gt "$worst" ] && worst=$ms
done
echo "worst /health with stderr full: ${worst} ms"
[ "$worst" -lt 1000 ] || fail "/health took ${worst} ms while stderr was full"
timeout 2 cat <&3 >"$TMP/drained.bin" || true
: >"$TMP/pipe.log"
# Readable again: the next lines flush what waited, then the count.
for _ in 1 2 3 4 5; do
  code -H 'Content-Type: application/json' -H 'Accept: text/event-stream' -d '{"operation":"infer","prompt":"hi","max_tokens":2}' "$PURL/v1/jobs" >/dev/null || true
  timeout 1 cat <&3 >>"$TMP/pipe.log" || true
  grep -aq 'lines\? dropped' "$TMP/pipe.log" && break
done
grep -aq 'lines\? dropped' "$TMP/pipe.log" || fail "no count of dropped lines once readable"
grep -ah 'dropped' "$TMP/pipe.log" | head -n 2
kill -TERM "$pw"; wait "$pw" || true
exec 3>&-

step "a log file on a full disk is reported, and the worker keeps serving"
"$LLM_BIN" --worker-id h-full --port 0 --queen-url "$QURL" --queen-token-file "$QTOKEN" \
  --heartbeat-interval 1 --model tiny --log-file /dev/full >"$TMP/full.out" 2>"$TMP/full.log" &
fw=$!
PIDS+=("$fw")
wait_status h-full ready 60
assert_contains "$TMP/full.log" "cannot write the log file: No space left on device" "stderr"
[ "$(code "$(worker_url h-full)/health")" = 200 ] || fail "the worker logging to /dev/full does not answer"
step "a password in --queen-url is never logged"
QHOSTPORT=${QURL#http://}
: >"$TMP/redact.log"
"$LLM_BIN" --worker-id h-red --port 0 --queen-url "http://user:pw-s3cret@$QHOSTPORT" \
  --queen-token-file "$QTOKEN" --heartbeat-interval 1 --model tiny >"$TMP/redact.out" 2>"$TMP/redact.log" &
rw=$!
PIDS+=("$rw")
wait_status h-red ready 60
kill -TERM "$rw"; wait "$rw" || true
"$LLM_BIN" --worker-id h-red2 --port 0 --queen-url "http://user:pw-s3cret@127.0.0.1:1" \
  --heartbeat-interval 1 --model tiny >"$TMP/redact2.out" 2>"$TMP/redact2.log" &
rw2=$!
PIDS+=("$rw2")
sleep 2
kill -TERM "$rw2"; wait "$rw2" || true
if grep -q 's3cret' "$TMP/redact.log" "$TMP/redact2.log"; then fail "the password was logged: $(grep -h s3cret "$TMP"/redact*.log | head -n 3)"; fi
assert_contains "$TMP/redact.log" "http://***@" "the redacted queen URL"
step "a libcurl that is there but cannot be loaded is not called missing"
echo "not an ELF file" >"$TMP/libcurl-bad.so"
rc=0
RBEE_CURL_LIBRARY=$TMP/libcurl-bad.so timeout 60 "$LLM_BIN" --model tiny --port 0 --queen-url "$QURL" \
  >"$TMP/badcurl.out" 2>"$TMP/badcurl.log" || rc=$?
[ "$rc" = 69 ] || fail "exit $rc, not 69"
assert_contains "$TMP/badcurl.log" "cannot load $TMP/libcurl-bad.so: " "the worker's log"
if grep -q "not found: install" "$TMP/badcurl.log"; then fail "a present library was called missing"; fi
step "a SIGTERM storm: the worker exits 143 by itself, not killed by a later signal"
if command -v python3 >/dev/null && python3 -c 'import subprocess' 2>/dev/null; then
  python3 - "$LLM_BIN" "$TMP/storm.log" <<'PY' || fail "SIGTERM storm: $(tail -n 3 "$TMP/storm.log")"
import os, signal, subprocess, sys, time
log = open(sys.argv[2], "w")
# A forced exit (second signal) skips the model's teardown: not what this checks.
env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
p = subprocess.Popen([sys.argv[1], "--model", "tiny", "--port", "0"], stdout=log, stderr=log, env=env)
up = time.time() + 30  # its handlers are in place once it listens
while "worker.listen" not in open(sys.argv[2]).read() and p.poll() is None and time.time() < up:
    time.sleep(0.05)
end = time.time() + 3
sent = 0
while p.poll() is None and time.time() < end:  # signals until it is gone, 3 s at most
    try:
        p.send_signal(signal.SIGTERM)
        sent += 1
    except ProcessLookupError:
        break
rc = p.wait(timeout=20)
print("storm: %d SIGTERMs, exit %d%s" % (sent, rc, " (killed by a signal)" if rc < 0 else ""))
sys.exit(0 if rc == 143 else 1)
PY
else
  echo "(python3 missing: the storm is not run)"
fi
echo "all hardening checks passed"
