#!/usr/bin/env bash
# Connection attacks on a real worker and the local queen over loopback,
# each bounded in count and time: 1000 connections held under `ulimit -n
# 256` (/health and /ready keep answering, no spin, no log flood, the cap
# and the deadlines in /metrics), a slow request (one byte a second), an
# idle kept-alive connection, and the queen's HEAD and Content-Length
# framing.
source "$(dirname "$0")/samples_lib.sh"
FLOOD=${RBEE_TEST_conn_flood:-$RBEE_BUILD_DIR/tests/conn_flood}
for b in "$QUEEN_BIN" "$LLM_BIN" "$FLOOD"; do [ -x "$b" ] || { echo "SKIP: $b not built"; exit 77; }; done
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 1100 ] || { echo "SKIP: the flood needs 1100 fds"; exit 77; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The queen runs under the same low fd limit as the worker.
REAL_QUEEN=$QUEEN_BIN
QUEEN_BIN=$TMP/queen-256
printf '#!/usr/bin/env bash\nulimit -n 256\nexec "%s" "$@"\n' "$REAL_QUEEN" >"$QUEEN_BIN"
chmod +x "$QUEEN_BIN"

ms() { curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 3 "$1"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# under_flood NAME URL PID LOG ROUTES: 1000 connections held for 8 s while
# the routes are probed; every probe 200 within 1.5 s, CPU and log bounded.
under_flood() {
  local name=$1 url=$2 pid=$3 log=$4 routes=$5 port=${2##*:} worst=0 bad=0 t0 t1 b0 b1 r code t m
  "$FLOOD" "$port" 1000 8 >"$TMP/$name.flood" &
  local fp=$!
  sleep 1
  t0=$(ticks "$pid"); b0=$(stat -c %s "$log")
  for _ in $(seq 12); do
    for r in $routes; do
      read -r code t < <(ms "$url/$r")
      [ "$code" = 200 ] || bad=$((bad + 1))
      m=$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000}')
      [ "$m" -gt "$worst" ] && worst=$m
    done
    sleep 0.4
  done
  t1=$(ticks "$pid"); b1=$(stat -c %s "$log")
  wait "$fp"
  echo "$name: $(cat "$TMP/$name.flood"); worst probe ${worst} ms, $bad failed;" \
    "$((t1 - t0)) CPU ticks and $((b1 - b0)) log bytes while held"
  [ "$bad" = 0 ] || fail "$name: $bad probes failed during the flood"
  [ "$worst" -lt 1500 ] || fail "$name: a probe took ${worst} ms during the flood"
  [ $((t1 - t0)) -lt 300 ] || fail "$name spun: $((t1 - t0)) ticks of CPU"
  [ $((b1 - b0)) -lt 20000 ] || fail "$name: log flood, $((b1 - b0)) bytes"
  kill -0 "$pid" || fail "$name died during the flood"
}

step "1000 connections held against a worker under ulimit -n 256"
start_queen --dead-after-ms 60000 --request-timeout 2000 --idle-timeout 3000
: >"$TMP/w.log"
( ulimit -n 256; exec "$LLM_BIN" --worker-id c-one --port 0 --queen-url "$QURL" --queen-token-file "$QTOKEN" \
  --heartbeat-interval 1 --model tiny --request-timeout 2 --idle-timeout 3 0<&- >"$TMP/w.out" 2>>"$TMP/w.log" ) &
W=$!
PIDS+=("$W")
wait_status c-one ready 60
WURL=$(worker_url c-one)
under_flood worker "$WURL" "$W" "$TMP/w.log" "health ready"
curl -s --max-time 5 "$WURL/metrics" >"$TMP/metrics"
max=$(sed -n 's/^rbee_http_connections_max \([0-9]*\)$/\1/p' "$TMP/metrics")
ev=$(sed -n 's/^rbee_http_connections_closed_total{reason="evicted"} \([0-9]*\)$/\1/p' "$TMP/metrics")
to=$(sed -n 's/^rbee_http_connections_closed_total{reason="timeout"} \([0-9]*\)$/\1/p' "$TMP/metrics")
echo "metrics: cap $max, evicted $ev, timed out $to"
[ -n "$max" ] && [ "$max" -le 224 ] || fail "the connection cap ($max) is not below the fd limit"
[ "${ev:-0}" -gt 0 ] || fail "no connection was closed to make room at the cap"
[ "${to:-0}" -gt 0 ] || fail "no held connection timed out"
assert_contains "$TMP/w.log" "http.connections" "the worker's log"

step "a request sent one byte a second is answered 408 and closed at its deadline"
for _ in $(seq 100); do # what the flood left queued is accepted, read as closed
  n=$(curl -s --max-time 5 "$WURL/metrics" | sed -n 's/^rbee_http_connections \([0-9]*\)$/\1/p')
  [ "${n:-99}" -le 5 ] && break
  sleep 0.2
done
"$FLOOD" "${WURL##*:}" 50 7 trickle >"$TMP/slow.flood"
cat "$TMP/slow.flood"
read -r _ est _ closed _ a408 _ _ _ last <"$TMP/slow.flood"
[ "$est" = 50 ] && [ "$closed" = 50 ] || fail "slow requests: $(cat "$TMP/slow.flood")"
[ "$a408" = 50 ] || fail "slow requests were not answered 408: $(cat "$TMP/slow.flood")"
awk -v l="$last" 'BEGIN {exit !(l < 5.5)}' || fail "the last slow request was closed after $last s (deadline 2 s)"

step "an idle kept-alive connection is closed after --idle-timeout"
idle_close() { # PORT: seconds until the server closes a kept-alive connection
  local fd s
  s=$(date +%s.%N)
  exec {fd}<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
  timeout 15 cat <&"$fd" >"$TMP/idle.out" || true
  exec {fd}>&-
  awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}'
}
secs=$(idle_close "${WURL##*:}")
echo "worker closed the idle connection after $secs s"
assert_contains "$TMP/idle.out" "HTTP/1.1 200 OK" "the answer before the idle close"
awk -v t="$secs" 'BEGIN {exit !(t >= 2.5 && t < 8)}' || fail "idle close after $secs s (want 3)"

# half_close PORT BODY: ten clients send a job and shutdown(SHUT_WR); each
# must get the whole stream.
half_close() {
  command -v python3 >/dev/null || { echo "(python3 missing: the half-close is not tried)"; return 0; }
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, body = int(sys.argv[1]), sys.argv[2].encode()
req = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
whole = 0
for i in range(10):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(req)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    whole += b"data: [DONE]" in data
print("half-closed clients with the whole stream: %d of 10" % whole)
sys.exit(0 if whole == 10 else 1)
PY
}
step "a client that half-closes (SHUT_WR) after its request gets its whole stream"
half_close "${WURL##*:}" '{"operation":"infer","prompt":"hi","max_tokens":300}' ||
  fail "a half-closed client's stream was cut"
half_close "${QURL##*:}" '{"model":"tiny","operation":"infer","prompt":"hi","max_tokens":300}' ||
  fail "a half-closed client's stream through the queen was cut"

step "1000 connections held against the queen under ulimit -n 256"
under_flood queen "$QURL" "$QPID" "$TMP/queen.log" "health v1/workers"
secs=$(idle_close "${QURL##*:}")
echo "queen closed the idle connection after $secs s"
awk -v t="$secs" 'BEGIN {exit !(t >= 2.5 && t < 8)}' || fail "queen idle close after $secs s (want 3)"
curl -s --max-time 5 "$QURL/health" | grep -q healthy || fail "the queen does not answer after the floods"

step "queen framing: HEAD has headers only, two Content-Length values are a 400"
raw() { # PORT REQUEST: the whole answer (the server closes)
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1"
  printf '%b' "$2" >&"$fd"
  timeout 5 cat <&"$fd" | tr -d '\r'
  exec {fd}>&-
}
QP=${QURL##*:}
raw "$QP" 'HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$TMP/head.out"
[ "$(grep -c '^HTTP/1.1 200' "$TMP/head.out")" = 2 ] || fail "HEAD then GET: $(cat "$TMP/head.out")"
[ "$(grep -c 'healthy' "$TMP/head.out")" = 1 ] || fail "the HEAD answer carried a body: $(cat "$TMP/head.out")"
grep -q '^Content-Length: 21$' "$TMP/head.out" || fail "HEAD without the GET's Content-Length"
st=$(raw "$QP" 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}' | head -n 1)
[ "$st" = "HTTP/1.1 400 Bad Request" ] || fail "queen, two Content-Length values: '$st'"
hs=$(curl -s -o /dev/null -w '%{http_code}' -I --max-time 5 "$QURL/v1/jobs/job-nope/stream")
[ "$hs" = 404 ] || fail "HEAD of an unknown job's stream: $hs"
echo "all connection checks passed"
