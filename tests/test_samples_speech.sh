#!/usr/bin/env bash
# The speech samples as real processes: text -> tts-worker -> WAV ->
# asr-worker -> text over twelve sentences, word error rate per voice (the
# best must be at most 25%), bad inputs of each, cancel mid-way, and the
# drain with a running job. Skips (77) when flite or pocketsphinx is absent.
source "$(dirname "$0")/samples_lib.sh"
TTS_BIN=$RBEE_BUILD_DIR/samples/tts-worker/tts-worker
ASR_BIN=$RBEE_BUILD_DIR/samples/asr-worker/asr-worker
for b in "$QUEEN_BIN" "$TTS_BIN" "$ASR_BIN"; do
  [ -x "$b" ] || { echo "skipped: $b is not built (flite1-dev, libpocketsphinx-dev?)"; exit 77; }
done

SENTENCES=(
  "The weather is nice today."
  "Please open the door for me."
  "I would like a cup of coffee."
  "The children are playing in the park."
  "We will meet again next week."
  "My brother works at the hospital."
  "She reads a book every night."
  "The train leaves at seven in the morning."
  "Can you help me find my keys?"
  "It is going to rain this afternoon."
  "They bought a new car last year."
  "The dog is sleeping on the floor."
)

# post URL BODYFILE OUT: a job from a file (bodies past the argument limit).
post() {
  curl -sS -N --max-time 120 -H 'Content-Type: application/json' -H 'Accept: text/event-stream' \
    -X POST "$1/v1/jobs" --data-binary @"$2" >"$3" || true
}
audio_of() { sed -n 's/^data: {"type":"audio".*"audio":"\([^"]*\)".*/\1/p' "$1"; }
transcript_of() { sed -n 's/^data: {"type":"transcript","text":"\([^"]*\)".*/\1/p' "$1"; }
words() { tr 'A-Z' 'a-z' | tr -c 'a-z\n' ' ' | tr -s ' ' '\n' | grep -v '^$' || true; }
# wer REF HYP: word error rate in percent (Levenshtein over words).
wer() {
  awk -v r="$(printf '%s' "$1" | words | tr '\n' ' ')" -v h="$(printf '%s' "$2" | words | tr '\n' ' ')" 'BEGIN {
    n = split(r, a, " "); m = split(h, b, " ")
    for (j = 0; j <= m; j++) d[0, j] = j
    for (i = 1; i <= n; i++) { d[i, 0] = i
      for (j = 1; j <= m; j++) { c = d[i-1, j-1] + (a[i] != b[j])
        if (d[i-1, j] + 1 < c) c = d[i-1, j] + 1
        if (d[i, j-1] + 1 < c) c = d[i, j-1] + 1
        d[i, j] = c } }
    printf "%.1f\n", n ? 100 * d[n, m] / n : 0 }'
}
# asr_job B64FILE OUT: the base64 WAV in B64FILE through the asr-worker.
asr_job() {
  { printf '{"operation":"asr","audio":"'; cat "$1"; printf '"}'; } >"$TMP/asr.json"
  post "$A" "$TMP/asr.json" "$2"
}
# mkwav FORMAT CHANNELS RATE BITS DATA_BYTES: a WAV of silence, base64.
mkwav() {
  local f=$1 ch=$2 hz=$3 bits=$4 n=$5 align=$(($2 * $4 / 8))
  le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
  le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"; }
  { printf 'RIFF'; le32 $((36 + n)); printf 'WAVEfmt '; le32 16; le16 "$f"; le16 "$ch"; le32 "$hz"
    le32 $((hz * align)); le16 $align; le16 "$bits"; printf 'data'; le32 "$n"
    head -c "$n" /dev/zero; } | base64 -w0
}

step "start the queen, a tts-worker and an asr-worker"
start_queen
start_worker t-tts "$TTS_BIN" --model flite
start_worker t-asr "$ASR_BIN" --model en-us
asr_pid=$LAST_PID
wait_status t-tts ready
wait_status t-asr ready
T=$(worker_url t-tts)
A=$(worker_url t-asr)

step "round trip over ${#SENTENCES[@]} sentences, per voice"
ref="${SENTENCES[*]}"
best=100
for v in rms slt awb kal; do
  printf '{"model":"flite","operation":"tts","voice":"%s","sample_rate":16000,"text":"%s"}' "$v" "$ref" >"$TMP/tts.json"
  t0=$(date +%s.%N)
  post "$QURL" "$TMP/tts.json" "$TMP/tts-$v.sse"
  t1=$(date +%s.%N)
  [ "$(grep -c '^event: progress$' "$TMP/tts-$v.sse")" = "${#SENTENCES[@]}" ] || fail "$v: want a progress event per sentence"
  assert_contains "$TMP/tts-$v.sse" '"format":"wav","sample_rate":16000,"channels":1' "$v audio event"
  audio_of "$TMP/tts-$v.sse" >"$TMP/$v.b64"
  [ -s "$TMP/$v.b64" ] || fail "$v: no audio"
  ms=$(sed -n 's/.*"duration_ms":\([0-9]*\),"voice".*/\1/p' "$TMP/tts-$v.sse")
  { printf '{"model":"en-us","operation":"asr","audio":"'; cat "$TMP/$v.b64"; printf '"}'; } >"$TMP/asr.json"
  post "$QURL" "$TMP/asr.json" "$TMP/asr-$v.sse"
  t2=$(date +%s.%N)
  assert_contains "$TMP/asr-$v.sse" 'event: segment' "$v segments"
  hyp=$(transcript_of "$TMP/asr-$v.sse")
  e=$(wer "$ref" "$hyp")
  awk -v v="$v" -v e="$e" -v ms="$ms" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    printf "voice %s: WER %s%%, %.1f s of audio; RTF tts %.1fx, asr %.1fx real time (through the queen)\n",
      v, e, ms / 1000, ms / 1000 / (b - a), ms / 1000 / (c - b) }'
  echo "  heard: $hyp"
  best=$(awk -v a="$best" -v b="$e" 'BEGIN { print (b < a ? b : a) }')
done
awk -v b="$best" 'BEGIN { exit !(b <= 25) }' || fail "best voice WER $best% is above 25%"
echo "best voice WER: $best%"

step "tts bad inputs: INVALID_PARAMS with the sentence"
head -c 100000 /dev/zero | tr '\0' 'a' >"$TMP/big.txt"
printf '{"operation":"tts","text":"%s"}' "$(cat "$TMP/big.txt")" >"$TMP/big.json"
post "$T" "$TMP/big.json" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "100 KB text"
for bad in '"text":""|text is required' '"text":"hi","voice":"bob"|voice must be one of rms, slt, awb, kal (got \"bob\")' \
           '"text":"hi","rate":10|rate must be' '"text":"hi","rate":1000|rate must be' \
           '"text":"hi","sample_rate":100|sample_rate must be' '"text":7|text'; do
  printf '{"operation":"tts",%s}' "${bad%%|*}" >"$TMP/b.json"
  post "$T" "$TMP/b.json" "$TMP/bad.sse"
  assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "$bad"
  assert_contains "$TMP/bad.sse" "${bad##*|}" "$bad"
  assert_contains "$TMP/bad.sse" 'data: [ERROR] ' "$bad"
done

step "asr bad inputs: INVALID_AUDIO with the sentence"
printf 'not base64!' >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'audio is not base64' "not base64"
printf 'aGVsbG8gd29ybGQ=' >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'audio is not a WAV file' "not a WAV"
: >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'audio is required' "empty audio"
mkwav 1 1 16000 8 16000 >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'unsupported WAV encoding (format 1, 8-bit)' "8-bit"
mkwav 1 1 16000 16 0 >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'the WAV has no samples (0 seconds of audio)' "0 s"
mkwav 1 1 8000 16 9600000 >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" 'audio is 600.0 s long: the limit is 300 s' "10 minutes"
grep -c '"code":"INVALID_AUDIO"' "$TMP/bad.sse" >/dev/null || fail "no INVALID_AUDIO code"
step "asr accepts stereo 44.1 kHz and 32-bit float (mixed down, resampled)"
mkwav 1 2 44100 16 176400 >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/ok.sse"
assert_contains "$TMP/ok.sse" '"type":"transcript"' "stereo"
mkwav 3 1 48000 32 192000 >"$TMP/x.b64"; asr_job "$TMP/x.b64" "$TMP/ok.sse"
assert_contains "$TMP/ok.sse" '"type":"transcript"' "float"

step "cancel a long synthesis between sentences"
long=$(for _ in $(seq 25); do printf '%s ' "${SENTENCES[@]}"; done)
printf '{"operation":"tts","text":"%s"}' "${long:0:9990}" >"$TMP/long.json"
curl -s --max-time 10 -X POST "$T/v1/jobs" --data-binary @"$TMP/long.json" >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/job.json")"
curl -s -N --max-time 120 "$T/v1/jobs/$id/stream" >"$TMP/tcancel.sse" &
reader=$!
for _ in $(seq 300); do grep -q '^event: progress' "$TMP/tcancel.sse" && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$T/v1/jobs/$id")" = 202 ] || fail "tts DELETE"
wait "$reader" || true
assert_contains "$TMP/tcancel.sse" 'data: [CANCELLED]' "tts cancelled"
grep -q '^event: audio' "$TMP/tcancel.sse" && fail "a cancelled synthesis gave audio"

step "cancel a long recognition mid-way"
# Six copies of the rms WAV as one: the first header, the data of all.
printf '%s' "$(cat "$TMP/rms.b64")" | base64 -d >"$TMP/one.wav"
{ head -c 44 "$TMP/one.wav"; for _ in $(seq 6); do tail -c +45 "$TMP/one.wav"; done; } >"$TMP/six.wav"
sz=$(($(stat -c %s "$TMP/six.wav") - 44))
printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((sz & 255)) $((sz >> 8 & 255)) $((sz >> 16 & 255)) $((sz >> 24 & 255)))" |
  dd of="$TMP/six.wav" bs=1 seek=40 conv=notrunc status=none
base64 -w0 "$TMP/six.wav" >"$TMP/six.b64"
{ printf '{"operation":"asr","audio":"'; cat "$TMP/six.b64"; printf '"}'; } >"$TMP/six.json"
curl -s --max-time 10 -X POST "$A/v1/jobs" --data-binary @"$TMP/six.json" >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
[ -n "$id" ] || fail "no job id in $(cat "$TMP/job.json")"
curl -s -N --max-time 120 "$A/v1/jobs/$id/stream" >"$TMP/cancel.sse" &
reader=$!
for _ in $(seq 300); do grep -q '^event: progress' "$TMP/cancel.sse" && break; sleep 0.1; done
grep -q '^event: progress' "$TMP/cancel.sse" || fail "no progress before the cancel"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$A/v1/jobs/$id")" = 202 ] || fail "DELETE"
wait "$reader" || true
assert_contains "$TMP/cancel.sse" 'data: [CANCELLED]' "cancelled"
grep -q '"type":"transcript"' "$TMP/cancel.sse" && fail "a cancelled job gave a transcript"

step "drain: SIGTERM with a recognition running lets it finish"
printf '{"operation":"tts","text":"%s"}' "${SENTENCES[*]:0:3}" >"$TMP/tts.json"
post "$T" "$TMP/tts.json" "$TMP/short.sse"
{ printf '{"operation":"asr","audio":"'; audio_of "$TMP/short.sse"; printf '"}'; } >"$TMP/short.json"
curl -s --max-time 10 -X POST "$A/v1/jobs" --data-binary @"$TMP/short.json" >"$TMP/job.json"
id=$(sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p' "$TMP/job.json")
curl -s -N --max-time 120 "$A/v1/jobs/$id/stream" >"$TMP/drain.sse" &
reader=$!
for _ in $(seq 300); do grep -q '^event: progress' "$TMP/drain.sse" && break; sleep 0.1; done
kill -TERM "$asr_pid"
wait "$reader" || true
assert_contains "$TMP/drain.sse" '"type":"transcript"' "the running job finished"
for _ in $(seq 100); do kill -0 "$asr_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$asr_pid" 2>/dev/null && fail "the asr-worker did not exit after the drain"
echo "all speech sample checks passed"
