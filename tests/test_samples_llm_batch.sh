#!/usr/bin/env bash
# llm-worker --engine batch as a real process beside the slots mode: the
# same tokens for the same seed (streamed and gathered, eos and
# max_tokens, several jobs in one batch), bad parameters, a cancel, and a
# drain with active sequences.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$LLM_BIN"

step "a bad --engine is a usage error"
rc=0
"$LLM_BIN" --engine turbo --port 0 >"$TMP/bad.out" 2>"$TMP/bad.log" || rc=$?
[ "$rc" = 64 ] || fail "exit $rc for --engine turbo, want 64"
assert_contains "$TMP/bad.log" "--engine: 'turbo' is neither slots nor batch" "--engine message"

step "start a slots worker and a batched one (step cost 1 ms)"
start_queen --dead-after-ms 5000
start_worker t-slots "$LLM_BIN" --model tiny --max-jobs 4 --step-cost-ms 1
start_worker t-batch "$LLM_BIN" --model tiny --max-jobs 8 --engine batch --step-cost-ms 1
BATCH_PID=$LAST_PID
wait_status t-slots ready
wait_status t-batch ready
WS=$(worker_url t-slots)
WB=$(worker_url t-batch)

step "the same seed gives the same tokens in both modes, 6 jobs at once"
# 400 tokens at 1 ms a step: the batched jobs overlap even when the forks
# of their clients are slow.
spids=()
for seed in 1 2 3 4 5 6; do
  job="{\"operation\":\"infer\",\"prompt\":\"The fox\",\"max_tokens\":400,\"ignore_eos\":true,\"seed\":$seed,\"temperature\":0.9,\"top_k\":40}"
  stream "$WS" "$job" "$TMP/s$seed.sse" &
  spids+=($!)
  stream "$WB" "$job" "$TMP/b$seed.sse" &
  spids+=($!)
done
for p in "${spids[@]}"; do wait "$p" || true; done
for seed in 1 2 3 4 5 6; do
  [ "$(tokens "$TMP/b$seed.sse" | wc -l)" = 400 ] || fail "seed $seed: want 400 batched tokens"
  cmp -s <(tokens "$TMP/s$seed.sse") <(tokens "$TMP/b$seed.sse") ||
    fail "seed $seed: batched tokens differ from the slots' ones"
  assert_contains "$TMP/b$seed.sse" '"stop_reason":"max_tokens","seed":'"$seed}" "end event"
  [ "$(grep -c '^data: \[' "$TMP/b$seed.sse")" = 1 ] || fail "seed $seed: not one terminal marker"
  [ "$(tail -n 2 "$TMP/b$seed.sse" | head -n 1)" = "data: [DONE]" ] || fail "seed $seed: no [DONE]"
done
cmp -s <(tokens "$TMP/b1.sse") <(tokens "$TMP/b2.sse") && fail "different seeds, same tokens"
curl -s "$WB/metrics" >"$TMP/metrics.txt"
steps=$(sed -n 's/^rbee_engine_steps_total \([0-9]*\)$/\1/p' "$TMP/metrics.txt")
sum=$(sed -n 's/^rbee_engine_batch_size_sum \([0-9]*\)$/\1/p' "$TMP/metrics.txt")
[ -n "$steps" ] && [ "$steps" -gt 0 ] || fail "no engine steps in /metrics"
[ "$sum" -gt "$steps" ] || fail "no step had more than one sequence ($sum over $steps steps)"

step "stream false and eos give the same text in both modes"
job='{"operation":"infer","max_tokens":100000,"seed":7,"stream":false}'
stream "$WS" "$job" "$TMP/ts.sse"
stream "$WB" "$job" "$TMP/tb.sse"
grep '"type":"text"' "$TMP/ts.sse" >"$TMP/ts.txt"
grep '"type":"text"' "$TMP/tb.sse" >"$TMP/tb.txt"
[ -s "$TMP/tb.txt" ] || fail "no text event from the batched worker"
cmp -s "$TMP/ts.txt" "$TMP/tb.txt" || fail "stream false: texts differ"
assert_contains "$TMP/tb.sse" '"stop_reason":"eos"' "eos"

step "bad parameters fail the job with INVALID_PARAMS"
stream "$WB" '{"operation":"infer","max_tokens":0}' "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "max_tokens 0"
assert_contains "$TMP/bad.sse" 'data: [ERROR] ' "max_tokens 0"

step "cancel one sequence; the one beside it ends [DONE]"
curl -s --max-time 10 -X POST "$WB/v1/jobs" -d '{"operation":"infer","max_tokens":1000000,"ignore_eos":true}' >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
curl -s -N --max-time 60 "$WB/v1/jobs/$id/stream" >"$TMP/cancel.sse" &
reader=$!
stream "$WB" '{"operation":"infer","max_tokens":200,"seed":3}' "$TMP/beside.sse" &
beside=$!
sleep 0.3
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$WB/v1/jobs/$id")
[ "$code" = 202 ] || fail "DELETE: HTTP $code"
wait "$reader" || true
wait "$beside" || true
[ "$(tail -n 2 "$TMP/cancel.sse" | head -n 1)" = "data: [CANCELLED]" ] || fail "cancelled stream end"
[ "$(tokens "$TMP/beside.sse" | wc -l)" = 200 ] || fail "the job beside lost tokens"

step "SIGTERM drains: active sequences finish (2 s each: still running at the signal)"
stream "$WB" '{"operation":"infer","max_tokens":2000,"ignore_eos":true,"seed":9}' "$TMP/d1.sse" &
d1=$!
stream "$WB" '{"operation":"infer","max_tokens":2000,"ignore_eos":true,"seed":8}' "$TMP/d2.sse" &
d2=$!
for _ in $(seq 200); do # both admitted and streaming before the signal
  [ "$(tokens "$TMP/d1.sse" 2>/dev/null | wc -l)" -gt 0 ] &&
    [ "$(tokens "$TMP/d2.sse" 2>/dev/null | wc -l)" -gt 0 ] && break
  sleep 0.05
done
kill -TERM "$BATCH_PID"
wait "$d1" || true
wait "$d2" || true
for f in d1 d2; do
  [ "$(tokens "$TMP/$f.sse" | wc -l)" = 2000 ] || fail "$f: the drain cut the sequence"
  [ "$(tail -n 2 "$TMP/$f.sse" | head -n 1)" = "data: [DONE]" ] || fail "$f: no [DONE]"
done
rc=0
wait "$BATCH_PID" || rc=$?
[ "$rc" = 0 ] || fail "the batched worker exited $rc after the drain"
echo "ok"
