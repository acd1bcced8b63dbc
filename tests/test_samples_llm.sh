#!/usr/bin/env bash
# The llm-worker sample as a real process: directly and through the local
# queen. Token stream, seeded reproducibility, eos, cancel mid-stream,
# bad parameters, an unknown model, and a long generation.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$LLM_BIN"

step "an unknown model is a clear error, exit 69"
rc=0
"$LLM_BIN" --model no-such-model --port 0 >"$TMP/bad.out" 2>"$TMP/bad.log" || rc=$?
[ "$rc" = 69 ] || fail "exit $rc for an unknown model, want 69"
assert_contains "$TMP/bad.log" "unknown model 'no-such-model'" "unknown model message"

step "start the queen and two workers (tiny; a text file, paced)"
start_queen --dead-after-ms 5000
start_worker t-llm "$LLM_BIN" --model tiny
printf 'one two three' >"$TMP/three.txt"
start_worker t-three "$LLM_BIN" --model "$TMP/three.txt" --pace-tps 50 --stream-grace 3
wait_status t-llm ready
wait_status t-three ready
W=$(worker_url t-llm)
W3=$(worker_url t-three)
assert_contains "$TMP/t-llm.log" "model 'tiny' built" "build log"

step "on_init reports progress while it builds (600000 words from a file)"
seq 1 600000 | paste -sd' ' >"$TMP/numbers.txt"
start_worker t-big "$LLM_BIN" --model "$TMP/numbers.txt"
wait_status t-big ready
# The loop logs the progress it sees; a build this size is seen mid-way.
grep -qE 'loading [1-9][0-9]?%: (reading the text|counting [123]-grams)' "$TMP/t-big.log" ||
  fail "no progress between 0 and 100% in the log"
kill -TERM "$LAST_PID"

step "stream 30 tokens directly"
job='{"operation":"infer","prompt":"The fox","max_tokens":30,"seed":11,"temperature":0.9,"top_k":40,"top_p":0.95}'
stream "$W" "$job" "$TMP/a.sse"
[ "$(tokens "$TMP/a.sse" | wc -l)" = 30 ] || fail "want 30 tokens"
assert_contains "$TMP/a.sse" '"type":"started"' "started event"
assert_contains "$TMP/a.sse" '"i":29}' "token numbering"
assert_contains "$TMP/a.sse" '"tokens_out":30,' "end event"

step "llm-worker's own metrics on /metrics"
curl -s "$W/metrics" >"$TMP/metrics.txt"
grep -qE '^llm_tokens_generated_total (3[0-9]|[4-9][0-9]|[0-9]{3,})$' "$TMP/metrics.txt" ||
  fail "llm_tokens_generated_total missing or under 30: $(grep llm_ "$TMP/metrics.txt")"
grep -q '^llm_tokens_per_second_count [1-9]' "$TMP/metrics.txt" || fail "tokens-per-second histogram"
grep -q '^# TYPE llm_tokens_per_second histogram$' "$TMP/metrics.txt" || fail "histogram TYPE"
assert_contains "$TMP/a.sse" '"stop_reason":"max_tokens","seed":11}' "stop reason"
[ "$(tail -n 2 "$TMP/a.sse" | head -n 1)" = "data: [DONE]" ] || fail "the stream does not end with [DONE]"

step "the same seed gives the same tokens; another seed others"
stream "$W" "$job" "$TMP/b.sse"
cmp -s <(tokens "$TMP/a.sse") <(tokens "$TMP/b.sse") || fail "same seed, different tokens"
stream "$W" "${job/\"seed\":11/\"seed\":12}" "$TMP/c.sse"
cmp -s <(tokens "$TMP/a.sse") <(tokens "$TMP/c.sse") && fail "different seeds, same tokens"

step "through the queen: routed by model, relayed unchanged"
stream "$QURL" "${job/\{/\{\"model\":\"tiny\",}" "$TMP/q.sse"
cmp -s <(tokens "$TMP/a.sse") <(tokens "$TMP/q.sse") || fail "the queen's stream differs"
grep -qi '^X-Rbee-Worker: t-llm' "$TMP/q.sse.headers" || fail "not routed to t-llm"
[ "$(tail -n 2 "$TMP/q.sse" | head -n 1)" = "data: [DONE]" ] || fail "relayed stream not ended"

step "end of text: stop reason eos (model built from a file)"
stream "$W3" '{"operation":"infer","max_tokens":50,"temperature":0}' "$TMP/eos.sse"
[ "$(tokens "$TMP/eos.sse" | tr -d '\n')" = "one two three" ] || fail "eos text"
assert_contains "$TMP/eos.sse" '"stop_reason":"eos"' "eos"

step "bad parameters fail the job with INVALID_PARAMS"
for bad in '"max_tokens":"ten"' '"max_tokens":0' '"max_tokens":2.5' '"temperature":5' \
           '"top_p":0' '"top_k":-1' '"stream":"yes"' '"prompt":42' '"seed":-3'; do
  stream "$W" "{\"operation\":\"infer\",$bad}" "$TMP/bad.sse"
  assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "$bad"
  assert_contains "$TMP/bad.sse" 'data: [ERROR] ' "$bad"
  grep -q '"type":"token"' "$TMP/bad.sse" && fail "$bad: tokens were sent"
done
code=$(curl -s -o "$TMP/op.json" -w '%{http_code}' -X POST "$W/v1/jobs" -d '{"operation":"image_generation"}')
[ "$code" = 400 ] || fail "an unserved operation: HTTP $code, want 400"

step "cancel mid-stream (paced at 50 tokens/s, a million asked)"
curl -s --max-time 10 -X POST "$W3/v1/jobs" -H 'Content-Type: application/json' \
  -d '{"operation":"infer","max_tokens":1000000,"ignore_eos":true}' >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/job.json")"
: >"$TMP/cancel.sse"
curl -s -N --max-time 60 "$W3/v1/jobs/$id/stream" >"$TMP/cancel.sse" &
reader=$!
for _ in $(seq 300); do [ "$(tokens "$TMP/cancel.sse" | wc -l)" -ge 5 ] && break; sleep 0.1; done
[ "$(tokens "$TMP/cancel.sse" | wc -l)" -ge 5 ] || fail "the paced stream did not start"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$W3/v1/jobs/$id")
[ "$code" = 202 ] || fail "DELETE answered $code"
wait "$reader" || true
assert_contains "$TMP/cancel.sse" 'data: [CANCELLED]' "cancelled stream"
n=$(tokens "$TMP/cancel.sse" | wc -l)
[ "$n" -lt 1000000 ] || fail "all tokens came despite the cancel"
curl -s "$W3/v1/jobs/$id" | grep -q '"state":"cancelled"' || fail "job state is not cancelled"

step "through the queen: leave a stream, resume it with Last-Event-ID"
curl -s -N --max-time 1.5 -H 'Accept: text/event-stream' -X POST "$QURL/v1/jobs" \
  -d '{"model":"'"$TMP"'/three.txt","operation":"infer","max_tokens":150,"ignore_eos":true}' \
  >"$TMP/part.sse" || true
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/part.sse" | head -n 1)
[ -n "$id" ] || fail "no job id in the relayed stream"
# The last event that arrived whole.
last=$(awk '/^id: /{id=$2} /^data: [{].*[}]$/{done=id} END{print done}' "$TMP/part.sse")
[ -n "$last" ] && [ "$last" -ge 1 ] || fail "no whole event before leaving"
curl -s -N --max-time 30 -H "Last-Event-ID: $last" "$QURL/v1/jobs/$id/stream" >"$TMP/rest.sse"
[ "$(sed -n 's/^id: //p' "$TMP/rest.sse" | head -n 1)" = $((last + 1)) ] ||
  fail "resumed at $(sed -n 's/^id: //p' "$TMP/rest.sse" | head -n 1), want $((last + 1))"
assert_contains "$TMP/rest.sse" 'data: [DONE]' "resumed stream"
before=$(awk -v last="$last" '/^id: /{id=$2} /^data: [{]"type":"token"/{ if (id <= last) n++ } END{print n+0}' "$TMP/part.sse")
[ $((before + $(tokens "$TMP/rest.sse" | wc -l))) = 150 ] || fail "tokens lost or repeated across the resume"

step "through the queen: a job's status, cancel, and an unknown job"
curl -s "$QURL/v1/jobs/$id" | grep -q '"state":"done"' || fail "status through the queen"
: >"$TMP/qcancel.sse"
curl -s --max-time 10 -N -H 'Accept: text/event-stream' -X POST "$QURL/v1/jobs" \
  -d '{"model":"'"$TMP"'/three.txt","operation":"infer","max_tokens":100000,"ignore_eos":true}' \
  >"$TMP/qcancel.sse" &
reader=$!
for _ in $(seq 300); do [ "$(tokens "$TMP/qcancel.sse" | wc -l)" -ge 3 ] && break; sleep 0.1; done
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/qcancel.sse" | head -n 1)
[ -n "$id" ] || fail "no job id to cancel"
code=$(curl -s -o "$TMP/del.json" -w '%{http_code}' -X DELETE "$QURL/v1/jobs/$id")
[ "$code" = 202 ] || fail "DELETE through the queen: $code $(cat "$TMP/del.json")"
wait "$reader" || true
assert_contains "$TMP/qcancel.sse" 'data: [CANCELLED]' "cancel through the queen"
code=$(curl -s -o "$TMP/404.json" -w '%{http_code}' "$QURL/v1/jobs/job-nope")
[ "$code" = 404 ] && grep -q UNKNOWN_JOB "$TMP/404.json" || fail "unknown job: $code"

step "a client that leaves for good: the worker cancels the job after its grace (3 s)"
curl -s -N --max-time 1 -H 'Accept: text/event-stream' -X POST "$QURL/v1/jobs" \
  -d '{"model":"'"$TMP"'/three.txt","operation":"infer","max_tokens":1000000,"ignore_eos":true}' \
  >"$TMP/left.sse" || true
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/left.sse" | head -n 1)
[ -n "$id" ] || fail "no job id in the relayed stream"
for _ in $(seq 300); do
  curl -s "$QURL/v1/jobs/$id" | grep -q '"state":"cancelled"' && break
  sleep 0.1
done
curl -s "$QURL/v1/jobs/$id" | grep -q '"state":"cancelled"' || fail "the abandoned job kept running"

step "stream false: one text event"
curl -s --max-time 30 -H 'Accept: text/event-stream' -X POST "$W/v1/jobs" \
  -d '{"operation":"infer","max_tokens":5,"seed":1,"stream":false}' >"$TMP/nostream.sse"
assert_contains "$TMP/nostream.sse" '"type":"text","text":"' "text event"
grep -q '"type":"token"' "$TMP/nostream.sse" && fail "tokens with stream false"

step "a client that polls: stream false runs past the grace (3 s) unread; GET ?wait= has the result"
curl -s --max-time 10 -X POST "$W3/v1/jobs" -H 'Content-Type: application/json' \
  -d '{"operation":"infer","max_tokens":200,"ignore_eos":true,"stream":false}' >"$TMP/poll.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/poll.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/poll.json")"
curl -s --max-time 70 "$W3/v1/jobs/$id?wait=60" >"$TMP/poll-status.json"
assert_contains "$TMP/poll-status.json" '"state":"done"' "polled job done"
assert_contains "$TMP/poll-status.json" '"result":{"text":"' "result text"
assert_contains "$TMP/poll-status.json" '"stop_reason":"max_tokens","tokens_out":200' "result stop reason"

step "through the queen: Idempotency-Key and X-Rbee-Deadline-Ms reach the worker, ?wait= waits there"
qjob='{"model":"tiny","operation":"infer","max_tokens":7,"seed":3}'
curl -s -N --max-time 30 -D "$TMP/idem1.h" -H 'Accept: text/event-stream' -H 'Idempotency-Key: llm-idem-1' \
  -H 'X-Rbee-Deadline-Ms: 50000' -X POST "$QURL/v1/jobs" -d "$qjob" >"$TMP/idem1.sse"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/idem1.sse" | head -n 1)
[ -n "$id" ] || fail "no job id through the queen"
curl -s --max-time 40 "$QURL/v1/jobs/$id?wait=30" >"$TMP/idem-status.json"
assert_contains "$TMP/idem-status.json" '"state":"done"' "status through the queen"
assert_contains "$TMP/idem-status.json" '"deadline_ms":50000' "deadline header relayed"
assert_contains "$TMP/idem-status.json" '"stop_reason":"max_tokens","tokens_out":7' "result through the queen"
curl -s -N --max-time 30 -H 'Accept: text/event-stream' -H 'Idempotency-Key: llm-idem-1' \
  -X POST "$W/v1/jobs" -d "$qjob" >"$TMP/idem2.sse"
[ "$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/idem2.sse" | head -n 1)" = "$id" ] ||
  fail "a retry with the key got another job"
code=$(curl -s -o "$TMP/idem3.json" -w '%{http_code}' -H 'Idempotency-Key: llm-idem-1' \
  -X POST "$W/v1/jobs" -d '{"operation":"infer","max_tokens":8}')
[ "$code" = 409 ] && grep -q IDEMPOTENCY_MISMATCH "$TMP/idem3.json" || fail "mismatch: $code"

# A million in the plain build; a tenth under the sanitizers (slower).
LONG_TOKENS=1000000
[ -n "${RBEE_SANITIZE:-}" ] && LONG_TOKENS=100000
step "a long generation is served: $LONG_TOKENS tokens"
STREAM_TIMEOUT=280 stream "$W" '{"operation":"infer","max_tokens":'"$LONG_TOKENS"',"ignore_eos":true,"seed":5}' "$TMP/long.sse"
n=$(grep -c '^data: {"type":"token"' "$TMP/long.sse" || true)
[ "$n" = "$LONG_TOKENS" ] || fail "got $n of $LONG_TOKENS tokens"
assert_contains "$TMP/long.sse" "\"tokens_out\":$LONG_TOKENS," "long end event"
echo "all llm-worker checks passed"
