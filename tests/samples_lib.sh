# shellcheck shell=bash disable=SC2034
# Shared by tests/test_samples_*.sh (sourced): start the local queen and
# sample workers as real processes on loopback with kernel-chosen ports,
# wait for them through the queen, and clean every process up on exit.
set -euo pipefail
: "${RBEE_BUILD_DIR:?}" "${RBEE_SOURCE_DIR:?}"
QUEEN_BIN=$RBEE_BUILD_DIR/tools/rbee-queen/rbee-local-queen
LLM_BIN=$RBEE_BUILD_DIR/samples/llm-worker/llm-worker
SD_BIN=$RBEE_BUILD_DIR/samples/sd-worker/sd-worker
PNGINFO_BIN=$RBEE_BUILD_DIR/samples/sd-worker/sd-png-info
TMP=$(mktemp -d)
PIDS=()

# Stop what is left; a sanitizer report in any process' log fails the test.
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP"/*.log 2>/dev/null; then
    grep -hE -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP"/*.log >&2
    rc=1
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
step() { printf '== %s\n' "$*"; }

need_samples() {
  local b
  for b in "$@"; do
    [ -x "$b" ] || { echo "skipped: $b is not built (RBEE_BUILD_SAMPLES=OFF?)"; exit 77; }
  done
}

# start_queen [flags...]: sets QURL, QPID and QTOKEN (the registration
# token file the queen wrote; workers started here pass it).
start_queen() {
  # Created here: the background child may open them after we first read.
  : >"$TMP/queen.out"
  : >"$TMP/queen.log"
  "$QUEEN_BIN" --port 0 --no-table "$@" >"$TMP/queen.out" 2>"$TMP/queen.log" &
  QPID=$!
  PIDS+=("$QPID")
  local _
  for _ in $(seq 100); do
    QURL=$(sed -n 's/^rbee-local-queen listening on \(http:.*\)$/\1/p' "$TMP/queen.out")
    # Both lines come in one write.
    QTOKEN=$(sed -n 's/^rbee-local-queen registration token in \(.*\)$/\1/p' "$TMP/queen.out")
    [ -n "$QURL" ] && return 0
    kill -0 "$QPID" 2>/dev/null || fail "the queen exited at start"
    sleep 0.1
  done
  fail "the queen did not say where it listens"
}

# start_worker NAME BIN [flags...]: a worker with that id, heartbeating to
# the queen every second; sets LAST_PID. Its log is $TMP/NAME.log.
start_worker() {
  local name=$1 bin=$2
  shift 2
  : >"$TMP/$name.log"
  "$bin" --worker-id "$name" --port 0 --queen-url "$QURL" --heartbeat-interval 1 \
    ${QTOKEN:+--queen-token-file "$QTOKEN"} "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# worker_json ID: the queen's record of a worker ("" when it has none).
worker_json() { curl -s --max-time 5 "$QURL/v1/workers/$1" | grep '"id"' || true; }

# wait_status ID STATUS [seconds]: until the queen lists the worker so.
wait_status() {
  local id=$1 want=$2 secs=${3:-60} _
  for _ in $(seq $((secs * 10))); do
    case "$(worker_json "$id")" in *"\"status\":\"$want\""*) return 0 ;; esac
    sleep 0.1
  done
  fail "worker $id never became $want (queen: $(worker_json "$id"))"
}

# worker_url ID: http://address:port of a worker, from the queen.
worker_url() {
  local j port
  j=$(worker_json "$1")
  port=$(printf '%s' "$j" | sed -n 's/.*"port":\([0-9]*\),"status".*/\1/p')
  [ -n "$port" ] || fail "no port for $1 in: $j"
  echo "http://127.0.0.1:$port"
}

# stream URL BODY OUT: POST a job asking for the stream itself.
stream() {
  curl -sS -N --max-time "${STREAM_TIMEOUT:-120}" -H 'Content-Type: application/json' \
    -H 'Accept: text/event-stream' -D "$3.headers" -X POST "$1/v1/jobs" -d "$2" >"$3" || true
}

# tokens FILE: the token texts of a stream, one a line.
tokens() { sed -n 's/^data: {"type":"token","t":"\(.*\)","i":[0-9]*}$/\1/p' "$1"; }

assert_contains() { # FILE NEEDLE WHAT
  grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; head -c 2000 "$1" >&2; fail "$3: no '$2'"; }
}
