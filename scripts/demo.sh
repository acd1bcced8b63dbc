#!/usr/bin/env bash
# make demo: the whole thing end to end on this machine. Starts the local
# queen and the sample LLM worker on free loopback ports, streams one job's
# tokens through the queen, renders one image with the sample SD worker,
# speaks a sentence with the tts-worker and hears it back with the
# asr-worker (when built), then stops the LLM worker with SIGTERM and shows
# what the queen saw.
# Every process it starts is stopped on exit, on failure and on Ctrl-C.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
QUEEN=$build/tools/rbee-queen/rbee-local-queen
LLM=$build/samples/llm-worker/llm-worker
SD=$build/samples/sd-worker/sd-worker
PNGINFO=$build/samples/sd-worker/sd-png-info
TTS=$build/samples/tts-worker/tts-worker
ASR=$build/samples/asr-worker/asr-worker
OUT=${RBEE_DEMO_OUT:-$PWD/out}
tmp=$(mktemp -d)
pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
  printf '\ndemo: %s\n' "$*" >&2
  local f
  for f in "$tmp"/*.log; do [ -s "$f" ] && { echo "--- ${f##*/}:" >&2; tail -n 8 "$f" >&2; }; done
  exit 1
}
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, stopping everything"; exit 130' INT TERM

for b in "$QUEEN" "$LLM" "$SD" "$PNGINFO"; do
  [ -x "$b" ] || die "$b is missing: build first (make build)"
done

# wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local secs=$1 what=$2 _
  shift 2
  for _ in $(seq $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  die "timed out after ${secs}s waiting for $what"
}
worker() { curl -s --max-time 5 "$qurl/v1/workers/$1" || true; }
is_status() { case "$(worker "$1")" in *"\"status\":\"$2\""*) return 0 ;; esac; return 1; }
queen_port_known() {
  qurl=$(sed -n 's/^rbee-local-queen listening on \(http:.*\)$/\1/p' "$tmp/queen.out")
  qtoken=$(sed -n 's/^rbee-local-queen registration token in \(.*\)$/\1/p' "$tmp/queen.out")
  [ -n "$qurl" ] && [ -n "$qtoken" ]
}

say "1. start the local queen on a free loopback port"
: >"$tmp/queen.out" # before the child opens it: we may read it first
"$QUEEN" --port 0 --no-table >"$tmp/queen.out" 2>"$tmp/queen.log" &
pids+=($!)
wait_for 10 "the queen to listen" queen_port_known
echo "queen: $qurl"

say "2. start the LLM sample worker (model: tiny, a word n-gram model; paced at 25 tokens/s)"
"$LLM" --worker-id demo-llm --model tiny --port 0 --queen-url "$qurl" \
  --queen-token-file "$qtoken" --heartbeat-interval 2 --pace-tps 25 >"$tmp/llm.out" 2>"$tmp/llm.log" &
llm_pid=$!
pids+=("$llm_pid")
wait_for 60 "the queen to list demo-llm as ready" is_status demo-llm ready
echo "the queen lists demo-llm as ready:"
worker demo-llm | sed -n 's/.*"id":"\([^"]*\)","model_id":"\([^"]*\)","device":"\([^"]*\)","port":\([0-9]*\),"status":"\([a-z]*\)".*/  id \1, model \2, device \3, port \4, status \5/p'

say "3. one job through the queen: tokens as they arrive"
job='{"model":"tiny","operation":"infer","prompt":"The fox","max_tokens":60,"temperature":0.8,"top_k":40,"top_p":0.95,"seed":7}'
echo "POST $qurl/v1/jobs $job"
printf '\nThe fox'
curl -sS -N --max-time 60 -H 'Accept: text/event-stream' -X POST "$qurl/v1/jobs" -d "$job" |
  while IFS= read -r line; do
    case "$line" in
    'data: {"type":"token"'*)
      t=${line#*\"t\":\"}
      t=${t%\",\"i\":*}
      printf '%b' "${t//\\\"/\"}"
      ;;
    'data: {"type":"end"'*) printf '\n\nend of job: %s\n' "${line#data: }" ;;
    'data: [ERROR]'*) printf '\n%s\n' "$line"; exit 1 ;;
    esac
  done || die "the job failed"

say "4. one image with the SD sample worker (a fractal refined over 20 steps)"
"$SD" --worker-id demo-sd --model julia --port 0 --queen-url "$qurl" \
  --queen-token-file "$qtoken" --heartbeat-interval 2 >"$tmp/sd.out" 2>"$tmp/sd.log" &
pids+=($!)
wait_for 60 "the queen to list demo-sd as ready" is_status demo-sd ready
ijob='{"model":"julia","operation":"image_generation","prompt":"a lighthouse at dusk","steps":20,"width":512,"height":384,"seed":42}'
echo "POST $qurl/v1/jobs $ijob"
curl -sS -N --max-time 120 -H 'Accept: text/event-stream' -X POST "$qurl/v1/jobs" -d "$ijob" \
  >"$tmp/image.sse" || die "the image job failed"
steps=$(grep -c '^event: progress$' "$tmp/image.sse" || true)
echo "progress events: $steps steps"
grep -q '^event: complete$' "$tmp/image.sse" || die "no image came back: $(grep -m1 ERROR "$tmp/image.sse")"
mkdir -p "$OUT"
png=$OUT/demo-lighthouse.png
info=$(sed -n 's/^data: {"type":"complete".*"image":"\([^"]*\)".*/\1/p' "$tmp/image.sse" |
  "$PNGINFO" --base64 "$png") || die "the image does not decode"
echo "saved $png: ${info%% *} pixels, ${info##* } bytes (decoded with libpng)"

say "4b. speech round trip: text -> tts-worker (flite) -> WAV -> asr-worker (pocketsphinx) -> text"
if [ -x "$TTS" ] && [ -x "$ASR" ]; then
  "$TTS" --worker-id demo-tts --model flite --port 0 --queen-url "$qurl" \
    --queen-token-file "$qtoken" --heartbeat-interval 2 >"$tmp/tts.out" 2>"$tmp/tts.log" &
  pids+=($!)
  "$ASR" --worker-id demo-asr --model en-us --port 0 --queen-url "$qurl" \
    --queen-token-file "$qtoken" --heartbeat-interval 2 >"$tmp/asr.out" 2>"$tmp/asr.log" &
  pids+=($!)
  wait_for 60 "the queen to list demo-tts as ready" is_status demo-tts ready
  wait_for 60 "the queen to list demo-asr as ready" is_status demo-asr ready
  said="The quick brown fox jumps over the lazy dog. Please call me back this afternoon."
  curl -sS -N --max-time 60 -H 'Accept: text/event-stream' -X POST "$qurl/v1/jobs" \
    -d "{\"model\":\"flite\",\"operation\":\"tts\",\"voice\":\"rms\",\"text\":\"$said\"}" \
    >"$tmp/tts.sse" || die "the tts job failed"
  { printf '{"model":"en-us","operation":"asr","audio":"'
    sed -n 's/^data: {"type":"audio".*"audio":"\([^"]*\)".*/\1/p' "$tmp/tts.sse"
    printf '"}'; } >"$tmp/asr.json"
  echo "spoken: $(sed -n 's/.*"type":"audio".*"duration_ms":\([0-9]*\).*/\1/p' "$tmp/tts.sse") ms of 16 kHz WAV"
  curl -sS -N --max-time 120 -H 'Accept: text/event-stream' -X POST "$qurl/v1/jobs" \
    --data-binary @"$tmp/asr.json" >"$tmp/asr.sse" || die "the asr job failed"
  heard=$(sed -n 's/^data: {"type":"transcript","text":"\([^"]*\)".*/\1/p' "$tmp/asr.sse")
  [ -n "$heard" ] || die "no transcript came back: $(grep -m1 ERROR "$tmp/asr.sse")"
  echo "text in:  $said"
  echo "text out: $heard"
else
  echo "skipped: the speech samples are not built (scripts/install-deps.sh installs flite and pocketsphinx)"
fi

say "5. stop the LLM worker with SIGTERM and watch the queen"
kill -TERM "$llm_pid"
wait_for 30 "demo-llm to exit" bash -c "! kill -0 $llm_pid 2>/dev/null"
rc=0
wait "$llm_pid" || rc=$?
echo "demo-llm exited with status $rc"
wait_for 10 "the queen to see demo-llm stopped" is_status demo-llm stopped
hist=$(worker demo-llm | grep -o '"status":"[a-z]*","at":"[^"]*"' |
  sed 's/"status":"\([a-z]*\)","at":"\([^"]*\)"/\2  \1/')
echo "demo-llm as the queen saw it:"
echo "$hist" | sed 's/^/    /'
case "$hist" in *stopping*stopped*) ;; *) die "the queen did not see stopping then stopped" ;; esac
[ "$rc" = 0 ] || die "demo-llm exited with $rc"

say "done: every process stops now"
