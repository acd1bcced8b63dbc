#!/usr/bin/env bash
# The local queen against what workers send, over loopback: a worker's
# garbage stream is cut, not relayed; 1024 workers with 15 KiB heartbeats (the cap), one more is a
# 503, a 17 KiB beat is a 413; GET /v1/workers lists them all as one valid
# document while /health keeps answering; the queen's memory stays bounded.
source "$(dirname "$0")/samples_lib.sh"
[ -x "$QUEEN_BIN" ] || { echo "SKIP: $QUEEN_BIN not built"; exit 77; }
curl --help all 2>/dev/null | grep -q -- '--parallel' || { echo "SKIP: curl without --parallel"; exit 77; }

start_queen --insecure-open-registration --dead-after-ms 600000 --table
BAD=${RBEE_TEST_bad_worker:-$RBEE_BUILD_DIR/tests/bad_worker}
[ -x "$BAD" ] || { echo "SKIP: $BAD not built"; exit 77; }

step "a verified worker's stream with a garbage line is cut there, not relayed"
"$BAD" bad-1 badm >"$TMP/bad.port" 2>"$TMP/bad.log" &
PIDS+=("$!")
for _ in $(seq 50); do [ -s "$TMP/bad.port" ] && break; sleep 0.1; done
BP=$(cat "$TMP/bad.port")
[ -n "$BP" ] || fail "the bad worker did not start"
hb='{"worker":{"id":"bad-1","model_id":"badm","device":"cpu","port":'$BP',"status":"ready","implementation":"t","version":"0.1.0"},"timestamp":"2026-11-26T12:00:00Z"}'
for _ in $(seq 50); do
  curl -s -o /dev/null --max-time 5 -H 'Content-Type: application/json' -d "$hb" "$QURL/v1/worker-heartbeat"
  curl -s --max-time 5 "$QURL/v1/workers/bad-1" | grep -q '"verified":true' && break
  sleep 0.2
done
curl -s --max-time 5 "$QURL/v1/workers/bad-1" | grep -q '"verified":true' || fail "the bad worker was not verified"
curl -s --max-time 10 -H 'Content-Type: application/json' -d '{"model":"badm","operation":"infer"}' \
  "$QURL/v1/jobs" >"$TMP/bad.stream" || true
cat -v "$TMP/bad.stream"
assert_contains "$TMP/bad.stream" '"job_id":"job-bad-1"' "the well-formed first event"
if grep -q 'HELLO\|pwned' "$TMP/bad.stream" || grep -q "$(printf '\033')" "$TMP/bad.stream"; then
  fail "the garbage line was relayed"
fi
assert_contains "$TMP/bad.stream" "data: [ERROR] the queen lost the stream from bad-1: a control character in the stream" "the cut"
# Counted under its own name on the queen's table (redrawn every second).
for _ in $(seq 30); do grep -q 'streams cut: 1 ' "$TMP/queen.out" && break; sleep 0.1; done
assert_contains "$TMP/queen.out" "streams cut: 1 " "the cut stream counted"
pad=$(head -c 15000 /dev/zero | tr '\0' 'x')
beat() { # ID: a heartbeat with a 15 KiB extra field
  printf '{"worker":{"id":"%s","model_id":"m","device":"cpu","port":1,"status":"ready","implementation":"t","version":"0.1.0"},"timestamp":"2026-11-26T12:00:00Z","extra":"%s"}' "$1" "$pad"
}
step "2000 malformed heartbeats: refused, and a few log lines, not 2000"
b0=$(stat -c %s "$TMP/queen.log")
: >"$TMP/bad.cfg"
for i in $(seq 2000); do
  printf 'url = "%s/v1/worker-heartbeat"\nheader = "Content-Type: application/json"\ndata = "{\\"worker\\":{\\"id\\":\\"x%d\\"}}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$QURL" "$i" >>"$TMP/bad.cfg"
  [ "$i" = 2000 ] || echo next >>"$TMP/bad.cfg"
done
curl -s --no-progress-meter --parallel --parallel-max 16 --max-time 120 --config "$TMP/bad.cfg" >"$TMP/bad.codes"
n400=$(grep -c '^400$' "$TMP/bad.codes" || true)
sleep 1.2 # the next line passed says what was held back
curl -s -o /dev/null --max-time 5 -H 'Content-Type: application/json' -d '{}' "$QURL/v1/worker-heartbeat"
b1=$(stat -c %s "$TMP/queen.log")
echo "2000 malformed beats: $n400 answered 400, $((b1 - b0)) bytes of log"
[ "$n400" = 2000 ] || fail "malformed beats: $(sort "$TMP/bad.codes" | uniq -c | tr '\n' ' ')"
[ $((b1 - b0)) -lt 20000 ] || fail "log flood: $((b1 - b0)) bytes for 2000 malformed beats"
assert_contains "$TMP/queen.log" "more not logged" "the count of held-back lines"

step "1023 more workers with 15 KiB heartbeats: 1024 in all, the cap"
cfg=$TMP/beats.cfg
: >"$cfg"
for i in $(seq 1023); do
  beat "w-$i" >"$TMP/b"
  printf 'url = "%s/v1/worker-heartbeat"\nheader = "Content-Type: application/json"\ndata = "@%s/b%d"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$QURL" "$TMP" "$i" >>"$cfg"
  mv "$TMP/b" "$TMP/b$i"
  [ "$i" = 1023 ] || echo next >>"$cfg"
done
curl -s --no-progress-meter --parallel --parallel-max 16 --max-time 120 --config "$cfg" >"$TMP/codes"
n200=$(grep -c '^200$' "$TMP/codes" || true)
[ "$n200" = 1023 ] || fail "1023 beats: $n200 answered 200 ($(sort "$TMP/codes" | uniq -c | tr '\n' ' '))"
beat w-extra >"$TMP/one"
code=$(curl -s -o "$TMP/one.out" -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
  --data-binary "@$TMP/one" "$QURL/v1/worker-heartbeat")
[ "$code" = 503 ] || fail "worker 1025 answered $code, not 503"
assert_contains "$TMP/one.out" TOO_MANY_WORKERS "the 503"
head -c 17000 /dev/zero | tr '\0' 'y' >"$TMP/y"
printf '{"worker":{"id":"w-1","model_id":"m","device":"cpu","port":1,"status":"ready","implementation":"t","version":"0.1.0"},"timestamp":"2026-11-26T12:00:00Z","extra":"%s"}' "$(cat "$TMP/y")" >"$TMP/big"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
  --data-binary "@$TMP/big" "$QURL/v1/worker-heartbeat")
[ "$code" = 413 ] || fail "a 17 KiB heartbeat answered $code, not 413"

step "GET /v1/workers lists all 1024 while /health keeps answering"
curl -s --max-time 60 -o "$TMP/list.json" -w '%{http_code} %{time_total}\n' "$QURL/v1/workers" >"$TMP/list.code" &
lp=$!
worst=0
for _ in $(seq 10); do
  m=$(curl -s -o /dev/null -w '%{time_total}' --max-time 5 "$QURL/health" | awk '{printf "%d", $1 * 1000}')
  [ "$m" -gt "$worst" ] && worst=$m
  sleep 0.05
done
wait "$lp"
read -r code secs <"$TMP/list.code"
[ "$code" = 200 ] || fail "GET /v1/workers: $code"
size=$(stat -c %s "$TMP/list.json")
ids=$(grep -o '"id":"w-[0-9]*"' "$TMP/list.json" | sort -u | wc -l)
echo "list: $size bytes, $ids workers in $secs s; worst /health meanwhile ${worst} ms"
[ "$ids" = 1023 ] || fail "the list has $ids workers w-N (and bad-1), not 1023"
case "$(head -c 12 "$TMP/list.json")" in '{"workers":[') ;; *) fail "the list does not start as a document" ;; esac
tail -c 30 "$TMP/list.json" | grep -q '\],"dead_after_ms":600000}$' || fail "the list does not end as a document: $(tail -c 60 "$TMP/list.json")"
if command -v python3 >/dev/null && python3 -c 'import json' 2>/dev/null; then
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["workers"]) == 1024' "$TMP/list.json" ||
    fail "the list is not valid JSON"
fi
[ "$worst" -lt 1000 ] || fail "/health took ${worst} ms during the listing"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$QPID/status")
echo "queen RSS with 1024 workers of 15 KiB: $((rss / 1024)) MiB"
[ "$rss" -lt $((400 * 1024)) ] || fail "the queen holds $((rss / 1024)) MiB"
code=$(curl -s -o /dev/null -w '%{http_code}' -I --max-time 5 "$QURL/v1/workers")
[ "$code" = 200 ] || fail "HEAD /v1/workers: $code"
echo "all queen limit checks passed"
