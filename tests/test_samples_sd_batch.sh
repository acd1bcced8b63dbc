#!/usr/bin/env bash
# sd-worker --engine batch as a real process beside the slots mode: the
# same events and the same PNG for the same request, several images
# stepped together, previews, bad parameters, a cancel beside a running
# image; in a CUDA build without a GPU, cuda:0 is a clear error.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$SD_BIN" "$PNGINFO_BIN"

image() { # FILE OUT.png: the complete event's PNG
  sed -n 's/^data: {"type":"complete".*"image":"\([^"]*\)".*/\1/p' "$1" | "$PNGINFO_BIN" --base64 "$2"
}
strip_times() { sed -e 's/"duration_ms":[0-9]*/"duration_ms":T/' -e 's/"started_at":"[^"]*"/"started_at":T/' \
  -e 's/"job_id":"[^"]*"/"job_id":J/' -e '/"type":"summary"/d' "$1"; } # the summary has timings and trace ids

step "start a slots sd-worker and a batched one"
start_queen
start_worker t-slots "$SD_BIN" --model julia --max-jobs 4
start_worker t-batch "$SD_BIN" --model julia --max-jobs 8 --engine batch
BATCH_PID=$LAST_PID
wait_status t-slots ready
wait_status t-batch ready
WS=$(worker_url t-slots)
WB=$(worker_url t-batch)

step "4 images at once: each the same, event for event, as on_job's"
spids=()
for seed in 1 2 3 4; do
  job="{\"operation\":\"image_generation\",\"prompt\":\"a lighthouse\",\"steps\":8,\"width\":96,\"height\":64,\"seed\":$seed,\"preview_every\":3}"
  stream "$WS" "$job" "$TMP/s$seed.sse" &
  spids+=($!)
  stream "$WB" "$job" "$TMP/b$seed.sse" &
  spids+=($!)
done
for p in "${spids[@]}"; do wait "$p" || true; done
for seed in 1 2 3 4; do
  [ "$(grep -c '^event: progress$' "$TMP/b$seed.sse")" = 8 ] || fail "seed $seed: want 8 progress events"
  [ "$(grep -c '^event: preview$' "$TMP/b$seed.sse")" = 2 ] || fail "seed $seed: want 2 previews"
  [ "$(grep -c '^data: \[' "$TMP/b$seed.sse")" = 1 ] || fail "seed $seed: not one terminal marker"
  [ "$(tail -n 2 "$TMP/b$seed.sse" | head -n 1)" = "data: [DONE]" ] || fail "seed $seed: no [DONE]"
  image "$TMP/b$seed.sse" "$TMP/b$seed.png" >/dev/null || fail "seed $seed: the image does not decode"
  image "$TMP/s$seed.sse" "$TMP/s$seed.png" >/dev/null || fail "seed $seed: slots image"
  cmp -s "$TMP/s$seed.png" "$TMP/b$seed.png" || fail "seed $seed: batched image differs"
  cmp -s <(strip_times "$TMP/s$seed.sse") <(strip_times "$TMP/b$seed.sse") ||
    fail "seed $seed: batched stream differs from on_job's"
done
cmp -s "$TMP/b1.png" "$TMP/b2.png" && fail "different seeds, same image"

step "bad parameters: an error event and [ERROR]"
stream "$WB" '{"operation":"image_generation","prompt":"x","width":100}' "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'event: error' "error event"
assert_contains "$TMP/bad.sse" 'width must be a multiple of 8 from 64 to 2048 (got 100)' "message"
[ "$(grep -c '"type":"error"' "$TMP/bad.sse")" = 1 ] || fail "want one error event"
assert_contains "$TMP/bad.sse" 'data: [ERROR] ' "[ERROR]"

step "cancel a large image; the small one beside it completes"
curl -s --max-time 10 -X POST "$WB/v1/jobs" -d '{"operation":"image_generation","prompt":"big","width":1024,"height":1024,"steps":150}' >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/job.json")"
curl -s -N --max-time 120 "$WB/v1/jobs/$id/stream" >"$TMP/cancel.sse" &
reader=$!
stream "$WB" '{"operation":"image_generation","prompt":"small","steps":20,"width":64,"height":64,"seed":5}' "$TMP/beside.sse" &
beside=$!
for _ in $(seq 600); do grep -q '^event: progress' "$TMP/cancel.sse" && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$WB/v1/jobs/$id")" = 202 ] || fail "DELETE"
wait "$reader" || true
wait "$beside" || true
assert_contains "$TMP/cancel.sse" 'data: [CANCELLED]' "cancelled"
grep -q 'event: complete' "$TMP/cancel.sse" && fail "a cancelled job completed"
[ "$(tail -n 2 "$TMP/beside.sse" | head -n 1)" = "data: [DONE]" ] || fail "the image beside did not complete"

step "SIGTERM: the batched worker drains and exits 0"
kill -TERM "$BATCH_PID"
rc=0
wait "$BATCH_PID" || rc=$?
[ "$rc" = 0 ] || fail "the batched worker exited $rc"
grep -q 'batched: [0-9]* steps' "$TMP/t-batch.log" || fail "no step summary in the log"

if [ "${RBEE_WITH_CUDA:-}" = ON ] && ! nvidia-smi -L >/dev/null 2>&1; then
  step "a CUDA build without a GPU: --device cuda:0 --engine batch is a clear error, exit 69"
  rc=0
  "$SD_BIN" --device cuda:0 --engine batch --port 0 >"$TMP/nocuda.out" 2>"$TMP/nocuda.log" || rc=$?
  [ "$rc" = 69 ] || fail "exit $rc, want 69"
  grep -qi 'cuda' "$TMP/nocuda.log" || fail "no word of CUDA in: $(cat "$TMP/nocuda.log")"
fi
echo "ok"
