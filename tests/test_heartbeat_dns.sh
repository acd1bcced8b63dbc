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

# TLS through the looked-up address: curl still sends and checks the name.
cert() { # name, subjectAltName
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=rbee test queen" -addext "subjectAltName=$2" \
    -keyout "$TMP/$1.key" -out "$TMP/$1.pem" 2>/dev/null
}
# tls_beat NAME CERT: a worker beating to https://slow.rbee.test at an
# openssl s_server with CERT (also the CA file) that acks one beat; its
# log is $TMP/NAME.log.
tls_beat() {
  local name=$1 c=$2 ack='{"status":"ok","message":"heartbeat received"}' port="" _
  rm -f "$TMP/in.$name" && mkfifo "$TMP/in.$name"
  openssl s_server -accept 127.0.0.1:0 -naccept 1 -cert "$TMP/$c.pem" -key "$TMP/$c.key" \
    <"$TMP/in.$name" >"$TMP/srv.$name.txt" 2>&1 &
  PIDS+=("$!")
  exec 3>"$TMP/in.$name"
  printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#ack}" "$ack" >&3
  for _ in $(seq 100); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/srv.$name.txt")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || fail "openssl s_server did not start"
  : >"$TMP/$name.log"
  LD_PRELOAD=$SHIM RBEE_SLOW_DNS_S=0.2 "$LLM_BIN" --worker-id "$name" --model tiny --port 0 \
    --queen-url "https://slow.rbee.test:$port" --ca-file "$TMP/$c.pem" --heartbeat-interval 1 \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  TLS_PID=$!
  PIDS+=("$TLS_PID")
  sleep 0.2
  kill -0 "$TLS_PID" 2>/dev/null || fail "worker $name exited at start"
  exec 3>&-
}
if command -v openssl >/dev/null; then
  cert good DNS:slow.rbee.test
  cert other DNS:queen.example
  step "https://slow.rbee.test with a certificate for that name: acknowledged"
  tls_beat tlsgood good
  for _ in $(seq 100); do grep -q "first heartbeat acknowledged" "$TMP/tlsgood.log" && break; sleep 0.1; done
  assert_contains "$TMP/tlsgood.log" "first heartbeat acknowledged by https://slow.rbee.test:" "the worker's log"
  kill "$TLS_PID"
  step "a trusted certificate for another name: refused"
  tls_beat tlsother other
  for _ in $(seq 100); do grep -q "heartbeat failed" "$TMP/tlsother.log" && break; sleep 0.1; done
  assert_contains "$TMP/tlsother.log" "TLS with queen https://slow.rbee.test:" "the worker's log"
  kill "$TLS_PID"
else
  echo "no openssl: the TLS steps are left out"
fi

step "a name whose only address is IPv6 ([::1])"
if ! command -v python3 >/dev/null; then
  echo "no python3 for the IPv6 stand-in queen: step left out"
else
  python3 "$RBEE_SOURCE_DIR/tests/shims/ack_server6.py" >"$TMP/v6port.txt" 2>"$TMP/v6srv.txt" &
  PIDS+=("$!")
  for _ in $(seq 50); do [ -s "$TMP/v6port.txt" ] && break; sleep 0.1; done
  v6port=$(head -1 "$TMP/v6port.txt")
  if [ -n "$v6port" ]; then
    : >"$TMP/v6.log"
    LD_PRELOAD=$SHIM RBEE_SLOW_DNS_S=0.1 RBEE_SLOW_DNS_ADDR=::1 "$LLM_BIN" --worker-id v6 \
      --model tiny --port 0 --queen-url "http://slow.rbee.test:$v6port" --heartbeat-interval 1 \
      >"$TMP/v6.out" 2>"$TMP/v6.log" &
    PIDS+=("$!")
    for _ in $(seq 100); do grep -q "first heartbeat acknowledged" "$TMP/v6.log" && break; sleep 0.1; done
    assert_contains "$TMP/v6.log" "first heartbeat acknowledged by http://slow.rbee.test:$v6port" \
      "the worker's log"
  else
    echo "no IPv6 loopback here (or no python3 http.server): step left out"
  fi
fi
echo "ok"
