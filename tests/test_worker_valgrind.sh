#!/usr/bin/env bash
# The test worker as a real process under valgrind: start, stream jobs
# (one cancelled by DELETE, one left by its client), SIGTERM drain, clean
# exit; then the drain deadline with a job that never returns. No invalid
# access, no definite or indirect leak, exit 0 both times.
set -euo pipefail
if [ -n "${RBEE_SANITIZE:-}" ]; then
  echo "SKIP: sanitizer build (RBEE_SANITIZE=$RBEE_SANITIZE); valgrind cannot run it, ASan checks leaks there"
  exit 77
fi
if ! command -v valgrind >/dev/null; then
  echo "SKIP: valgrind is not installed"
  exit 77
fi
worker=${RBEE_TEST_test_worker:?RBEE_TEST_test_worker is not set (run through ctest)}
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# Start under valgrind; sets pid and port.
start() {
  : >"$tmp/log"
  valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "$worker" --port 0 "$@" 2>"$tmp/log" &
  pid=$!
  port=""
  for _ in $(seq 600); do
    port=$(sed -n 's/.*worker\.listen.* port=\([0-9]*\).*/\1/p' "$tmp/log" | head -n 1 || true)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return 0
    sleep 0.1
  done
  cat "$tmp/log" >&2
  echo "worker did not become ready under valgrind" >&2
  exit 1
}

# Wait for the exit; fail unless it is 0.
stop() {
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  if [ "$rc" != 0 ]; then
    cat "$tmp/log" >&2
    echo "worker exited $rc under valgrind (99: valgrind found errors)" >&2
    exit 1
  fi
}

# 1. Jobs of every kind, then a drain.
start --max-jobs 2 --emit 50 --job-ms 500
for i in 1 2 3; do
  curl -sN --max-time 60 "http://127.0.0.1:$port/v1/jobs" -H 'Accept: text/event-stream' \
    -d '{"operation":"infer"}' >"$tmp/s$i" &
done
id=$(curl -sf "http://127.0.0.1:$port/v1/jobs" -d '{"operation":"infer"}' |
  sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
curl -s -X DELETE "http://127.0.0.1:$port/v1/jobs/$id" >/dev/null
# A client that hangs up at once.
curl -sN --max-time 0.2 "http://127.0.0.1:$port/v1/jobs" -H 'Accept: text/event-stream' \
  -d '{"operation":"infer"}' >/dev/null || true
curl -sf "http://127.0.0.1:$port/metrics" >/dev/null
kill -TERM "$pid"
stop
wait # the stream clients
for i in 1 2 3; do
  grep -q '^data: \[DONE\]$' "$tmp/s$i" || { cat "$tmp/s$i" >&2; echo "stream $i did not end with [DONE]" >&2; exit 1; }
done

# 2. A job that ignores the cancel: the deadline gives up on it.
start --ignore-cancel --drain-timeout 0.5
curl -sN --max-time 60 "http://127.0.0.1:$port/v1/jobs" -H 'Accept: text/event-stream' \
  -d '{"operation":"infer"}' >"$tmp/stuck" &
for _ in $(seq 300); do
  grep -q '"type":"started"' "$tmp/stuck" && break
  sleep 0.1
done
kill -TERM "$pid"
stop
wait
grep -q '^data: \[CANCELLED\]$' "$tmp/stuck" || { cat "$tmp/stuck" >&2; exit 1; }
echo "test worker under valgrind: clean drain and clean deadline"
