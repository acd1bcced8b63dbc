#!/usr/bin/env bash
# A worker written against the installed library: librbee is installed to a
# temporary prefix, tests/out_of_tree/worker.c is built with pkg-config and
# only the public headers, and each part an author needs is exercised as a
# real process on 127.0.0.1: a bad flag value (its sentence on stderr, exit
# 64, the metavar in --help), loading progress in /ready, an on_init
# failure (its sentence in the log and the heartbeat, exit 69), a bad parameter (INVALID_PARAMS with
# its sentence), binary output in one event and in pieces, one-call progress.
set -euo pipefail
: "${RBEE_BUILD_DIR:?}" "${RBEE_SOURCE_DIR:?}"
cmake=${CMAKE_COMMAND:-cmake}
STUB=${RBEE_TEST_queen_stub:-$RBEE_BUILD_DIR/tests/queen_stub}
[ -x "$STUB" ] || { echo "skipped: $STUB is not built"; exit 77; }
command -v base64 >/dev/null || { echo "skipped: no base64 tool"; exit 77; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }
step() { printf '== %s\n' "$*"; }

step "install to a temporary prefix; build the worker with pkg-config"
"$cmake" --install "$RBEE_BUILD_DIR" --prefix "$tmp/prefix" >/dev/null
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$RBEE_BUILD_DIR/CMakeCache.txt")
san=()
[ -n "${RBEE_SANITIZE:-}" ] && san=("-fsanitize=$RBEE_SANITIZE")
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# Only the installed headers: no -I into the source tree.
"${cc:-cc}" -std=c11 -Wall -Wextra -Werror "${san[@]}" "$RBEE_SOURCE_DIR/tests/out_of_tree/worker.c" \
  -o "$tmp/speaker" $(pkg-config --cflags --libs rbee) 2>"$tmp/cc.log" || fail "the worker does not build"
export LD_LIBRARY_PATH="$tmp/prefix/lib"
W=$tmp/speaker

step "a bad flag value: its sentence on stderr, exit 64; the metavar in --help"
"$W" --help >"$tmp/help.out"
grep -q -- '--voice-speed X ' "$tmp/help.out" || fail "--help lacks '--voice-speed X': $(cat "$tmp/help.out")"
grep -q -- '--init-gate FILE ' "$tmp/help.out" || fail "--help lacks '--init-gate FILE'"
rc=0
"$W" --voice-speed 9 --port 0 2>"$tmp/flag.log" || rc=$?
[ "$rc" = 64 ] || fail "a bad flag value exits $rc, want 64"
grep -q -- "--voice-speed: '9' is not a number from 0.5 to 2" "$tmp/flag.log" \
  || fail "the flag's sentence is not on stderr: $(cat "$tmp/flag.log")"

step "on_init fails: its sentence in the log and the heartbeat (what /health said), exit 69"
# The worker closes its HTTP front as it exits, so the reason its /health
# gave is read where the queen reads it: the last heartbeat.
"$STUB" ok >"$tmp/queen.out" &
qpid=$!
pids+=("$qpid")
for _ in $(seq 100); do QURL=$(head -n 1 "$tmp/queen.out"); [ -n "$QURL" ] && break; sleep 0.05; done
[ -n "$QURL" ] || fail "the test queen did not start"
: >"$tmp/init.log"
"$W" --model missing --port 0 --queen-url "$QURL" --init-gate "$tmp/gate" 2>"$tmp/init.log" &
wpid=$!
pids+=("$wpid")
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/.*listening on .* port=\([0-9]*\).*/\1/p' "$tmp/init.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || fail "the worker did not listen"
# While on_init waits: the one-call loading progress in /ready.
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$port/ready" >"$tmp/ready.json" || true
  grep -q '"progress":0.5' "$tmp/ready.json" && break
  sleep 0.05
done
grep -q '"progress":0.5' "$tmp/ready.json" || fail "/ready lacks the loading progress: $(cat "$tmp/ready.json")"
grep -qF 'opening the voice' "$tmp/ready.json" || fail "/ready lacks the phase: $(cat "$tmp/ready.json")"
touch "$tmp/gate"
want='on_init failed: voice file /nonexistent/missing.voice cannot be read'
rc=0
wait "$wpid" || rc=$?
[ "$rc" = 69 ] || fail "on_init failure exits $rc, want 69"
grep -qF "$want" "$tmp/init.log" || fail "the log lacks the reason"
kill -TERM "$qpid"
wait "$qpid" || true
grep -F '"status":"stopped"' "$tmp/queen.out" | grep -qF "\"reason\":\"$want\"" \
  || fail "the last heartbeat lacks the reason: $(tail -n 1 "$tmp/queen.out")"
grep -F '"status":"stopped"' "$tmp/queen.out" | grep -qF '"health":"unhealthy"' \
  || fail "the last heartbeat is not unhealthy"

step "a worker that loads: parameters, progress, binary output"
: >"$tmp/ok.log"
"$W" --model voice --port 0 --voice-speed 1.5 2>"$tmp/ok.log" &
pids+=("$!")
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/.*listening on .* port=\([0-9]*\).*/\1/p' "$tmp/ok.log" | head -n 1)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.05
done
[ -n "$port" ] || fail "the worker did not get ready"
job() { curl -s -N --max-time 30 -H 'Accept: text/event-stream' -X POST "http://127.0.0.1:$port/v1/jobs" -d "$1"; }

for bad in '{"operation":"speak","text":"hi","rate":9}|rate must be a number from 0.5 to 2 (got 9)' \
           '{"operation":"speak","text":"hi","format":"mp3"}|format must be one of raw, chunked (got \"mp3\")' \
           '{"operation":"speak"}|text is required: a string of at most 1000 bytes' \
           '{"operation":"speak","text":"hi","size":1.5}|size must be an integer from 0 to 16777216 (got 1.5)' \
           '{"operation":"speak","text":"hi","loud":"yes"}|loud must be true or false (got a string)'; do
  job "${bad%%|*}" >"$tmp/bad.sse"
  grep -q '"code":"INVALID_PARAMS"' "$tmp/bad.sse" || fail "${bad%%|*}: no INVALID_PARAMS: $(cat "$tmp/bad.sse")"
  grep -qF "${bad##*|}" "$tmp/bad.sse" || fail "${bad%%|*}: the sentence is missing: $(cat "$tmp/bad.sse")"
  grep -q '^data: \[ERROR\] ' "$tmp/bad.sse" || fail "${bad%%|*}: the stream does not end [ERROR]"
done

job '{"operation":"speak","text":"hello world","loud":true}' >"$tmp/one.sse"
grep -q '^data: \[DONE\]' "$tmp/one.sse" || fail "the job did not end [DONE]: $(cat "$tmp/one.sse")"
grep -q '^event: progress$' "$tmp/one.sse" || fail "no progress event"
grep -qF '{"type":"progress","phase":"synthesizing","progress":0.5}' "$tmp/one.sse" \
  || fail "progress lacks phase and fraction: $(cat "$tmp/one.sse")"
grep -qF '"rate":1.5,"state":"running"' "$tmp/one.sse" || fail "the flag's default rate or the job state is missing"
id=$(sed -n 's/^data: {"type":"started","job_id":"\([^"]*\)".*/\1/p' "$tmp/one.sse")
[ -n "$id" ] || fail "no job id in the stream"
curl -s "http://127.0.0.1:$port/v1/jobs/$id" >"$tmp/status.json"
grep -qF '"progress":1,"phase":"done"' "$tmp/status.json" || fail "GET /v1/jobs/{id} lacks the phase: $(cat "$tmp/status.json")"
b64=$(sed -n 's/^data: {"format":"text".*"bytes":11,"audio":"\([^"]*\)"}$/\1/p' "$tmp/one.sse")
[ -n "$b64" ] || fail "no audio event of 11 bytes: $(cat "$tmp/one.sse")"
[ "$(printf '%s' "$b64" | base64 -d)" = "HELLO WORLD" ] || fail "the audio does not decode to the text"

# 200000 bytes in 64 KiB pieces (rounded down to 65535): 4 events.
job '{"operation":"speak","text":"abc","format":"chunked","size":200000}' >"$tmp/big.sse"
grep -q '^data: \[DONE\]' "$tmp/big.sse" || fail "the chunked job did not end [DONE]"
[ "$(grep -c '^event: audio$' "$tmp/big.sse")" = 4 ] || fail "want 4 audio pieces, got $(grep -c '^event: audio$' "$tmp/big.sse")"
[ "$(grep -c '"final":true' "$tmp/big.sse")" = 1 ] || fail "want one final piece"
grep -q '"offset":196605,"total_bytes":200000,"final":true,"bytes":3395' "$tmp/big.sse" \
  || fail "the last piece's offset and size are wrong"
sed -n 's/^data: {"format":"text".*"audio":"\([^"]*\)"}$/\1/p' "$tmp/big.sse" |
  while read -r piece; do printf '%s' "$piece" | base64 -d; done >"$tmp/big.bin"
(set +o pipefail; yes abc | tr -d '\n' | head -c 200000) >"$tmp/want.bin"
cmp -s "$tmp/big.bin" "$tmp/want.bin" || fail "the pieces do not join to the payload ($(wc -c <"$tmp/big.bin") bytes)"
echo "out-of-tree worker: all checks passed"
