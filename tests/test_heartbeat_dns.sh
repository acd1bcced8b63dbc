#!/usr/bin/env bash
# Heartbeat name lookups run one at a time (docs/heartbeat.md): a worker
# whose queen's name takes 2 s to resolve, beating every 0.05 s, keeps its
# thread count bounded (curl's own resolver left one thread per timed-out
# beat behind: dozens), and its beats reach the loopback queen once the
# lookup finished. getaddrinfo is slowed by an LD_PRELOAD shim built here.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN" "$LLM_BIN"
if [ -n "${RBEE_SANITIZE:-}" ]; then
  echo "skipped: an LD_PRELOAD shim does not mix with the sanitizer runtime ($RBEE_SANITIZE)"
  exit 77
fi
SHIM=$TMP/slow_dns.so
if ! ${CC:-cc} -shared -fPIC -O1 -o "$SHIM" "$RBEE_SOURCE_DIR/tests/shims/slow_dns.c" -ldl \
  2>"$TMP/cc.err"; then
  echo "skipped: cannot build the getaddrinfo shim: $(head -3 "$TMP/cc.err")"
  exit 77
fi

start_queen
qport=${QURL##*:}
step "a worker beating every 0.05 s to http://slow.rbee.test:$qport (2 s per lookup)"
: >"$TMP/dns.log"
: >"$TMP/lookups.txt"
LD_PRELOAD=$SHIM RBEE_SLOW_DNS_S=2 RBEE_SLOW_DNS_LOG=$TMP/lookups.txt \
  "$LLM_BIN" --worker-id slowdns --model tiny --port 0 --queen-url "http://slow.rbee.test:$qport" \
  --heartbeat-interval 0.05 --queen-token-file "$QTOKEN" >"$TMP/dns.out" 2>"$TMP/dns.log" &
pid=$!
PIDS+=("$pid")
max=0
for _ in $(seq 60); do # 6 s: three lookups' worth
  kill -0 "$pid" 2>/dev/null || fail "the worker exited"
  n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
  [ "$n" -gt "$max" ] && max=$n
  sleep 0.1
done
lookups=$(wc -l <"$TMP/lookups.txt")
echo "threads at most: $max; slow lookups started in 6 s: $lookups"
[ "$lookups" -ge 1 ] || fail "the shim saw no lookup of slow.rbee.test (LD_PRELOAD not in effect?)"
[ "$max" -le 4 ] || fail "the worker ran $max threads (more than 4): lookups pile up"
[ "$lookups" -le 4 ] || fail "$lookups lookups in 6 s: more than one at a time"

step "the beats reach the queen"
wait_status slowdns ready 30
echo "ok: one lookup at a time, $max threads at most"
