#!/usr/bin/env bash
# The sd-worker sample as a real process, through the local queen and
# directly: named events, a PNG that decodes to the requested size, seeded
# reproducibility, previews, bad parameters, cancel.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$SD_BIN" "$PNGINFO_BIN"

# image FILE OUT.png: the base64 PNG of the stream's complete event.
image() {
  sed -n 's/^data: {"type":"complete".*"image":"\([^"]*\)".*/\1/p' "$1" | "$PNGINFO_BIN" --base64 "$2"
}

step "start the queen and an sd-worker"
start_queen
start_worker t-sd "$SD_BIN" --model julia
wait_status t-sd ready
W=$(worker_url t-sd)

step "an image through the queen: progress per step, then complete"
job='{"model":"julia","operation":"image_generation","prompt":"a lighthouse at dusk","steps":6,"width":96,"height":64,"seed":3,"guidance_scale":7.5}'
stream "$QURL" "$job" "$TMP/a.sse"
[ "$(grep -c '^event: progress$' "$TMP/a.sse")" = 6 ] || fail "want 6 progress events"
assert_contains "$TMP/a.sse" '{"type":"progress","phase":"denoising","progress":1,"step":6,"total":6}' "last step"
assert_contains "$TMP/a.sse" 'event: complete' "complete event"
[ "$(tail -n 2 "$TMP/a.sse" | head -n 1)" = "data: [DONE]" ] || fail "no [DONE]"
size=$(image "$TMP/a.sse" "$TMP/a.png") || fail "the image does not decode"
[ "${size%% *}" = 96x64 ] || fail "image is $size, want 96x64"

step "the same seed gives the same image; another seed another"
stream "$W" "$job" "$TMP/b.sse"
image "$TMP/b.sse" "$TMP/b.png" >/dev/null || fail "second image does not decode"
cmp -s "$TMP/a.png" "$TMP/b.png" || fail "same seed, different image"
stream "$W" "${job/\"seed\":3/\"seed\":4}" "$TMP/c.sse"
image "$TMP/c.sse" "$TMP/c.png" >/dev/null || fail "third image does not decode"
cmp -s "$TMP/a.png" "$TMP/c.png" && fail "different seeds, same image"

step "previews every 2 steps"
stream "$W" "${job/\"steps\":6/\"steps\":6,\"preview_every\":2}" "$TMP/p.sse"
[ "$(grep -c '^event: preview$' "$TMP/p.sse")" = 2 ] || fail "want previews at steps 2 and 4"

step "bad parameters: an error event and [ERROR]"
for bad in '"width":100' '"width":4096' '"height":"big"' '"steps":0' '"steps":151' \
           '"guidance_scale":-1' '"prompt":""' '"prompt":7' '"seed":1.5'; do
  stream "$W" "{\"operation\":\"image_generation\",$bad,\"prompt\":\"x\"}" "$TMP/bad.sse"
  assert_contains "$TMP/bad.sse" 'event: error' "$bad"
  assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "$bad"
  assert_contains "$TMP/bad.sse" 'data: [ERROR] ' "$bad"
  [ "$(grep -c '"type":"error"' "$TMP/bad.sse")" = 1 ] || fail "$bad: want one error event"
done
stream "$W" '{"operation":"image_generation","prompt":"x","width":100}' "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'width must be a multiple of 8 from 64 to 2048 (got 100)' "width message"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$W/v1/jobs" -d '{"operation":"infer"}')" = 400 ] \
  || fail "an unserved operation is not a 400"

step "cancel a large image mid-way"
curl -s --max-time 10 -X POST "$W/v1/jobs" -d '{"operation":"image_generation","prompt":"big","width":2048,"height":2048,"steps":150}' >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/job.json")"
: >"$TMP/cancel.sse"
curl -s -N --max-time 120 "$W/v1/jobs/$id/stream" >"$TMP/cancel.sse" &
reader=$!
for _ in $(seq 600); do grep -q '^event: progress' "$TMP/cancel.sse" && break; sleep 0.1; done
grep -q '^event: progress' "$TMP/cancel.sse" || fail "no progress before the cancel"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$W/v1/jobs/$id")" = 202 ] || fail "DELETE"
wait "$reader" || true
assert_contains "$TMP/cancel.sse" 'data: [CANCELLED]' "cancelled"
grep -q 'event: complete' "$TMP/cancel.sse" && fail "a cancelled job completed"
step "a client that polls: the final PNG is the job's result"
curl -s --max-time 10 -X POST "$W/v1/jobs" \
  -d '{"operation":"image_generation","prompt":"poll","width":64,"height":64,"steps":2,"stream":false}' >"$TMP/poll.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/poll.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/poll.json")"
curl -s --max-time 70 "$W/v1/jobs/$id?wait=60" >"$TMP/poll-status.json"
assert_contains "$TMP/poll-status.json" '"state":"done"' "polled image done"
assert_contains "$TMP/poll-status.json" '"format":"png"' "result format"
sed -n 's/.*"image":"\([^"]*\)".*/\1/p' "$TMP/poll-status.json" | base64 -d >"$TMP/poll.png" 2>/dev/null ||
  fail "the result's image is not base64"
[ "$(head -c 8 "$TMP/poll.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "the result's image is not a PNG"
step "sd-worker's own metrics on /metrics"
curl -s "$W/metrics" >"$TMP/metrics.txt"
grep -qE '^sd_steps_total [1-9]' "$TMP/metrics.txt" || fail "sd_steps_total: $(grep sd_ "$TMP/metrics.txt")"
grep -qE '^sd_image_bytes_total\{kind="complete"\} [1-9]' "$TMP/metrics.txt" || fail "sd_image_bytes_total"
echo "all sd-worker checks passed"
