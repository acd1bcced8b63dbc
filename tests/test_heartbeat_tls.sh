#!/usr/bin/env bash
# Heartbeats over https against a real TLS server (openssl s_server with
# certificates made here): certificates are checked by default, a CA file
# makes a private queen trusted, and the host name must match.
set -euo pipefail
if ! command -v openssl >/dev/null; then
  echo "SKIP: the openssl command is not installed"
  exit 77
fi
send=${RBEE_TEST_heartbeat_send:?RBEE_TEST_heartbeat_send is not set (run through ctest)}
tmp=$(mktemp -d)
srv_pid=""
cleanup() {
  exec 3>&- || true
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cert() { # name, subjectAltName
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=rbee test queen" -addext "subjectAltName=$2" \
    -keyout "$tmp/$1.key" -out "$tmp/$1.pem" 2>/dev/null
}
cert good IP:127.0.0.1
cert other DNS:queen.example

ack='{"status":"ok","message":"heartbeat received"}'
reply=$(printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
  "${#ack}" "$ack")

# Start a TLS server with certificate $1 on a kernel-chosen port; it sends
# the reply to the first client once the handshake is done. Each server
# logs to a file of its own: the shell opens the log only after the fifo,
# so a shared log could still show the last server's port when read.
nsrv=0
serve() {
  exec 3>&- || true
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  nsrv=$((nsrv + 1))
  srv_log=$tmp/srv.$nsrv.log
  : >"$srv_log"
  rm -f "$tmp/in" && mkfifo "$tmp/in"
  openssl s_server -accept 127.0.0.1:0 -naccept 1 -cert "$tmp/$1.pem" -key "$tmp/$1.key" \
    <"$tmp/in" >"$srv_log" 2>&1 &
  srv_pid=$!
  exec 3>"$tmp/in"
  printf '%s' "$reply" >&3
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$srv_log")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "FAIL: s_server did not start"; cat "$srv_log"; exit 1; }
}

expect() { # what, pattern, command...
  local what=$1 pattern=$2 out
  shift 2
  out=$("$@" || true)
  echo "$what: $out"
  if ! grep -qE "$pattern" <<<"$out"; then
    echo "FAIL: $what: expected /$pattern/"
    cat "$srv_log"
    exit 1
  fi
}

serve good
expect "self-signed queen, no CA file" "^error RBEE_EHTTP: heartbeat: TLS with .*certificate" \
  "$send" "https://127.0.0.1:$port"
serve good
expect "self-signed queen, its CA file" "^ok ok$" "$send" "https://127.0.0.1:$port" "$tmp/good.pem"
serve other
expect "trusted certificate for another name" "^error RBEE_EHTTP: heartbeat: TLS with .*(subject|match|name)" \
  "$send" "https://127.0.0.1:$port" "$tmp/other.pem"
expect "a CA file that is not there" "^error RBEE_EINVAL: .*cannot be read" \
  "$send" "https://127.0.0.1:1" "$tmp/missing.pem"
echo "https heartbeats: certificates checked, CA file honoured"
