#!/usr/bin/env bash
# The worker shown in README.md compiles as shown and serves a job: the
# first ```c block is extracted, built against this build's librbee, started
# on a free port, and one streamed job must end with [DONE].
set -euo pipefail
: "${RBEE_BUILD_DIR:?}" "${RBEE_SOURCE_DIR:?}"
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
sed -n '/^```c$/,/^```$/p' "$RBEE_SOURCE_DIR/README.md" | sed '1d;/^```$/,$d' > "$tmp/worker.c"
grep -q rbee_worker_main "$tmp/worker.c" || { echo "no worker example in README.md" >&2; exit 1; }
san=()
# The compiler librbee was built with (its sanitizer runtime must match).
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$RBEE_BUILD_DIR/CMakeCache.txt")
cc=${cc:-cc}
[ -n "${RBEE_SANITIZE:-}" ] && san=("-fsanitize=$RBEE_SANITIZE")
"$cc" -std=c11 -Wall -Wextra -Werror "${san[@]}" -I"$RBEE_SOURCE_DIR/include" "$tmp/worker.c" \
  -o "$tmp/worker" -L"$RBEE_BUILD_DIR/src" -Wl,-rpath,"$RBEE_BUILD_DIR/src" -lrbee \
  $(pkg-config --cflags --libs libcjson)
: >"$tmp/log"
"$tmp/worker" --model tiny --port 0 2>"$tmp/log" &
pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on .* port=\([0-9]*\).*/\1/p' "$tmp/log" | head -n 1)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/log" >&2; exit 1; }
out=$(curl -sN --max-time 20 "http://127.0.0.1:$port/v1/jobs" \
  -H 'Accept: text/event-stream' -d '{"operation":"infer"}')
echo "$out" | grep -c '"type":"token"' | grep -qx 10 || { echo "$out" >&2; exit 1; }
echo "$out" | grep -q '^data: \[DONE\]$' || { echo "$out" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid"
pid=""
echo "README example: 10 tokens then [DONE], clean exit"
