#!/usr/bin/env bash
# A tiny run of every bench program (bench/), so that they do not rot:
# the baseline server, the load generator in each mode, the process probe,
# the bench queen (healthy and hung), the token latency client and, once
# built, the librbee bench worker. Counts are tiny and nothing is timed: make bench measures.
set -euo pipefail
bench=${RBEE_BUILD_DIR:?run from ctest}/bench
if [ ! -x "$bench/bench_baseline" ]; then
  echo "SKIP: no bench programs in $bench (this build has RBEE_BUILD_BENCH=OFF)"
  exit 77
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }

start() { # NAME CMD...: sets PORT once the program printed port=N
  local name=$1
  shift
  : >"$tmp/$name.out"
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  PID=$!
  PORT=""
  for _ in $(seq 100); do
    PORT=$(sed -n 's/^port=//p' "$tmp/$name.out")
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || fail "$name exited: $(cat "$tmp/$name.err")"
    sleep 0.1
  done
  fail "$name printed no port within 10 s"
}

# check_jobs PORT SUMMARY: health and job round trips with tiny counts,
# verified; SUMMARY is 1 for librbee, whose streams end with a summary
# event before [DONE], 0 for the baseline.
check_jobs() {
  local port=$1 sum=$2 l
  "$bench/bench_procstat" wait-ready --port "$port" -t 10 || fail "not ready on $port"
  l=$("$bench/bench_loadgen" health --port "$port" -c 2 -n 50 -t 10)
  [ "$(field "$l" units)" = 50 ] && [ "$(field "$l" errors)" = 0 ] || fail "health: $l"
  l=$("$bench/bench_loadgen" jobs --port "$port" -c 2 -n 10 -t 10 --tokens 3 --pid "$PID")
  # each job: started, 3 tokens, (summary,) [DONE]; the server's CPU per job is read
  [ "$(field "$l" units)" = 10 ] && [ "$(field "$l" events)" = $((50 + 10 * sum)) ] || fail "jobs: $l"
  awk -v v="$(field "$l" server_cpu_us)" 'BEGIN { exit !(v > 0) }' || fail "no server CPU: $l"
  l=$("$bench/bench_loadgen" jobs --port "$port" -n 2 -t 10 --tokens 1000 --sse)
  [ "$(field "$l" units)" = 2 ] && [ "$(field "$l" events)" = $((2004 + 2 * sum)) ] || fail "sse jobs: $l"
  # Paced, stamped tokens for bench_latency: every token arrives, each
  # stream ends [DONE].
  l=$("$bench/bench_latency" --port "$port" -c 3 --tokens 5 --pace-tps 100 -t 10) || fail "latency: $l"
  [ "$(field "$l" samples)" = 15 ] && [ "$(field "$l" errors)" = 0 ] || fail "latency: $l"
  if [ "$sum" = 0 ]; then # the baseline's tokens from job threads (--hop)
    l=$("$bench/bench_latency" --port "$port" -c 3 --tokens 5 --pace-tps 100 -t 10 --hop) || fail "hop: $l"
    [ "$(field "$l" samples)" = 15 ] && [ "$(field "$l" errors)" = 0 ] || fail "hop: $l"
  fi
  # CPU-heavy jobs fill the slots: /ready says busy (still ready: a job
  # would be queued), /health still answers (3 s: long enough for the
  # checks on a loaded machine).
  "$bench/bench_loadgen" jobs --port "$port" -c 2 -n 2 --spin-ms 3000 --submit-only \
    >"$tmp/submit.out" || fail "submit"
  grep -q '"sse_url":"/v1/jobs/job-' "$tmp/submit.out" || fail "submit: $(cat "$tmp/submit.out")"
  local body=""
  for _ in $(seq 50); do
    body=$(curl -s "http://127.0.0.1:$port/ready")
    [ "$body" = '{"ready":true,"state":"busy"}' ] && break
    sleep 0.02
  done
  [ "$body" = '{"ready":true,"state":"busy"}' ] || fail "/ready while every slot is busy: $body"
  l=$("$bench/bench_loadgen" health --port "$port" -n 20 -t 10)
  [ "$(field "$l" units)" = 20 ] || fail "health while busy: $l"
  "$bench/bench_procstat" wait-ready --idle --port "$port" -t 20 || fail "slots never freed"
}

# The baseline.
start baseline "$bench/bench_baseline" --port 0 --max-jobs 2
check_jobs "$PORT" 0
code=$(curl -s -o "$tmp/404" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/jobs/job-nope/stream")
[ "$code" = 404 ] && grep -q '"code":"UNKNOWN_JOB"' "$tmp/404" || fail "unknown job: $code"
code=$(curl -s -o "$tmp/400" -w '%{http_code}' -d '[1]' "http://127.0.0.1:$PORT/v1/jobs")
[ "$code" = 400 ] && grep -q '"code":"INVALID_REQUEST"' "$tmp/400" || fail "bad body: $code"
base_port=$PORT

# Bad command lines and a refused port are clear errors, not hangs.
set +e
"$bench/bench_loadgen" health --port 0 2>"$tmp/usage"; rc=$?
[ $rc = 64 ] && grep -q usage "$tmp/usage" || fail "loadgen usage: rc $rc"
kill -TERM "${pids[0]}"; wait "${pids[0]}"
timeout 20 "$bench/bench_loadgen" health --port "$base_port" -n 5 -t 5 >/dev/null 2>"$tmp/refused"
rc=$?
set -e
[ $rc = 1 ] && grep -q "is the server up" "$tmp/refused" || fail "refused port: rc $rc"

# The process probe.
l=$("$bench/bench_procstat" startup -r 2 -- "$bench/bench_baseline" --port '{port}')
[ "$(field "$l" runs)" = 2 ] || fail "startup: $l"
l=$("$bench/bench_procstat" idle -t 0.5 -- "$bench/bench_baseline" --port '{port}')
[ "$(field "$l" rss_kb)" -gt 0 ] && [ "$(field "$l" threads)" -ge 1 ] || fail "idle: $l"

# The queen, healthy and hung.
start queen "$bench/bench_queen" --port 0
body=$(curl -s -m 5 -d '{}' "http://127.0.0.1:$PORT/v1/worker-heartbeat")
[ "$body" = '{"status":"ok","message":"bench queen"}' ] || fail "queen answered: $body"
queen_port=$PORT
start hung "$bench/bench_queen" --port 0 --hung
set +e
curl -s -m 0.5 -d '{}' "http://127.0.0.1:$PORT/v1/worker-heartbeat" >/dev/null; rc=$?
set -e
[ $rc = 28 ] || fail "hung queen: curl rc $rc, not 28 (timeout)"

# The librbee bench worker, beside the healthy queen.
if [ -x "$bench/bench_worker" ]; then
  start worker "$bench/bench_worker" --port 0 --max-jobs 2 --max-queue 64 \
    --queen-url "http://127.0.0.1:$queen_port" --heartbeat-interval 1
  check_jobs "$PORT" 1
  # Token text reaches the stream escaped exactly as cJSON prints it: the
  # request's string literal comes back byte for byte.
  text='q\"b\\s\n\t\u0001\u001f/é 😀'
  want="data: {\"type\":\"token\",\"t\":\"$text\",\"i\":0}"
  got=$(curl -s -m 10 -H 'Accept: text/event-stream' \
    -d "{\"operation\":\"infer\",\"tokens\":1,\"text\":\"$text\"}" \
    "http://127.0.0.1:$PORT/v1/jobs" | grep '"type":"token"')
  [ "$got" = "$want" ] || fail "token escaping: got $got, want $want"
  l=$("$bench/bench_procstat" startup -r 2 -- "$bench/bench_worker" --port '{port}')
  [ "$(field "$l" runs)" = 2 ] || fail "worker startup: $l"
  kill -TERM "$PID"
  wait "$PID" || fail "bench_worker exited $? on SIGTERM"
  kill -TERM "${pids[-3]}" # the healthy queen
  wait "${pids[-3]}"
  grep -q '^beats=[1-9]' "$tmp/queen.out" || fail "no heartbeat reached the queen: $(cat "$tmp/queen.out")"
else
  fail "bench_worker missing beside bench_baseline in $bench"
fi

# The batching rows' worker, in both modes: 4 jobs of 5 tokens each.
for mode in batch slots; do
  start "engine_$mode" "$bench/bench_engine" --port 0 --engine $mode --max-jobs 4 --step-cost-ms 1
  "$bench/bench_procstat" wait-ready --port "$PORT" -t 10 || fail "bench_engine $mode not ready"
  l=$("$bench/bench_loadgen" jobs --port "$PORT" -c 4 -n 4 -w 0 -t 10 --tokens 5 --sse)
  [ "$(field "$l" units)" = 4 ] && [ "$(field "$l" errors)" = 0 ] || fail "bench_engine $mode: $l"
  kill -TERM "$PID"
  wait "$PID" || fail "bench_engine $mode exited $? on SIGTERM"
done
echo "bench smoke: ok"
