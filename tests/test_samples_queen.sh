#!/usr/bin/env bash
# The local queen with real sample workers: routing (ready before busy),
# 503 without a worker, a drained worker seen stopping then stopped, and a
# worker that stops heartbeating dropped after --dead-after-ms.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$LLM_BIN"

step "queen with a 3 s liveness rule, two paced workers on one model"
start_queen --dead-after-ms 3000
start_worker q-one "$LLM_BIN" --model tiny --pace-tps 20
one=$LAST_PID
wait_status q-one ready
start_worker q-two "$LLM_BIN" --model tiny --pace-tps 20
two=$LAST_PID
wait_status q-two ready

step "--table redraws a table of the workers on stdout"
: >"$TMP/table.out"
"$QUEEN_BIN" --port 0 --table >"$TMP/table.out" 2>"$TMP/table.log" &
tpid=$!
PIDS+=("$tpid")
for _ in $(seq 100); do grep -q '^WORKER ' "$TMP/table.out" && break; sleep 0.1; done
assert_contains "$TMP/table.out" "no worker yet" "the empty table"
kill -TERM "$tpid"
wait "$tpid" || fail "the table queen exited with $?"

step "no worker for a model: 503 with a clear error"
code=$(curl -s -o "$TMP/503.json" -w '%{http_code}' -X POST "$QURL/v1/jobs" -d '{"model":"big","operation":"infer"}')
[ "$code" = 503 ] || fail "HTTP $code, want 503"
assert_contains "$TMP/503.json" '"code":"NO_WORKER"' "503 body"

step "a long job busies q-one; the next job goes to the ready q-two"
: >"$TMP/long.sse"
curl -s -N --max-time 60 -H 'Accept: text/event-stream' -X POST "$QURL/v1/jobs" \
  -D "$TMP/long.headers" -d '{"model":"tiny","operation":"infer","max_tokens":400,"ignore_eos":true}' >"$TMP/long.sse" &
long=$!
wait_status q-one busy 30
stream "$QURL" '{"model":"tiny","operation":"infer","max_tokens":3}' "$TMP/short.sse"
grep -qi '^X-Rbee-Worker: q-two' "$TMP/short.sse.headers" || fail "the short job did not go to q-two"
grep -qi '^X-Rbee-Worker: q-one' "$TMP/long.headers" || fail "the long job did not go to q-one"
kill "$long" 2>/dev/null || true
wait "$long" 2>/dev/null || true

step "SIGTERM: the queen sees q-two go stopping, then stopped"
kill -TERM "$two"
for _ in $(seq 300); do kill -0 "$two" 2>/dev/null || break; sleep 0.1; done
kill -0 "$two" 2>/dev/null && fail "q-two did not exit on SIGTERM"
wait "$two" || fail "q-two exited with $?"
wait_status q-two stopped 10
hist=$(worker_json q-two | grep -o '"status":"[a-z]*","at"' | sed 's/"status":"\([a-z]*\)".*/\1/' | tr '\n' ' ')
case "$hist" in *"stopping stopped "*) ;; *) fail "history: $hist" ;; esac
echo "q-two as the queen saw it: $hist"

step "SIGKILL: q-one stops heartbeating and the queen drops it"
kill -KILL "$one"
wait "$one" 2>/dev/null || true
for _ in $(seq 300); do [ -z "$(worker_json q-one)" ] && break; sleep 0.1; done
[ -z "$(worker_json q-one)" ] || fail "the queen still lists q-one"
assert_contains "$TMP/queen.log" "q-one dropped: no heartbeat" "the queen's log"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$QURL/v1/jobs" -d '{"model":"tiny","operation":"infer"}')
[ "$code" = 503 ] || fail "after both left: HTTP $code, want 503"
step "SIGTERM to the queen: streams in flight end with a last [ERROR] line"
start_worker q-three "$LLM_BIN" --model tiny --pace-tps 20
wait_status q-three ready
: >"$TMP/cut.sse"
curl -s -N --max-time 60 -H 'Accept: text/event-stream' -X POST "$QURL/v1/jobs" \
  -d '{"model":"tiny","operation":"infer","max_tokens":1000}' >"$TMP/cut.sse" &
reader=$!
for _ in $(seq 300); do [ "$(tokens "$TMP/cut.sse" | wc -l)" -ge 3 ] && break; sleep 0.1; done
kill -TERM "$QPID"
wait "$QPID" || fail "the queen exited with $? on SIGTERM"
wait "$reader" || true
[ "$(grep '^data: ' "$TMP/cut.sse" | tail -n 1)" = "data: [ERROR] the queen is shutting down" ] ||
  fail "the relayed stream did not end with the shutdown line: $(tail -n 3 "$TMP/cut.sse")"
echo "all queen checks passed"
