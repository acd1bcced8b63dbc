#!/usr/bin/env bash
# deploy/systemd/ under a real systemd: a Debian root (scripts/systemd-root.sh,
# built once and cached) booted with systemd as PID 1 in new PID, mount and
# cgroup namespaces (unshare, chroot; systemd-nspawn does not work on these
# machines), the unit files installed unchanged, the test worker
# (tests/programs/test_worker) as /usr/local/bin/rbee-worker. Checks:
#   start is active only after READY=1 (on_init held by a gate file);
#   reload (SIGHUP) reopens the log file;
#   stop with a running job drains: the job's stream ends [DONE], exit 0;
#   a stalled loop is killed by the watchdog and restarted;
#   a crash (SIGSEGV) and an exit 75 are restarted;
#   the template unit rbee-worker@PORT runs a second worker.
# Then SIGRTMIN+4 powers that systemd off.
#
#   scripts/test-systemd.sh [--no-prepare]    (root; a few minutes the first
#                                              time, for debootstrap)
# Exit 0 passed, 1 failed, 77 cannot run here (not root, no root dir with
# --no-prepare). Env: RBEE_BUILD_DIR (default build), RBEE_SYSTEMD_ROOT.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${RBEE_BUILD_DIR:-$here/build}
root=${RBEE_SYSTEMD_ROOT:-/var/cache/librbee/systemd-root}
prepare=1
[ "${1:-}" = "--no-prepare" ] && prepare=0

say() { echo "test-systemd: $*"; }
skip() { say "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, mounts, chroot)"
for t in unshare nsenter chroot curl python3; do
  command -v $t >/dev/null || skip "$t is missing"
done
worker=$build/tests/test_worker
[ -x "$worker" ] || skip "$worker is not built (cmake --build $build)"
if [ ! -e "$root/.rbee-root-complete" ]; then
  [ $prepare = 1 ] || skip "no cached Debian root at $root: run scripts/test-systemd.sh (or make test-systemd) once"
  "$here/scripts/systemd-root.sh" "$root" || exit 1
fi
# One run at a time on the shared root (several build dirs may test).
exec 9>"$root.lock"
command -v flock >/dev/null && flock -w 300 9
[ -d /sys/fs/cgroup/systemd ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
  skip "no name=systemd or cgroup2 hierarchy at /sys/fs/cgroup"

failures=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
ok() { say "ok: $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
port2=$(free_port)
while [ "$port2" = "$port" ]; do port2=$(free_port); done

# ---- install into the root --------------------------------------------
state=$root/var/lib/rbee
rm -rf "$state" "$root/var/log/rbee" "$root/etc/systemd/system/rbee-worker.service.d"
install -m 0755 "$worker" "$root/usr/local/bin/rbee-worker"
install -m 0644 "$here/deploy/systemd/rbee-worker.service" "$here/deploy/systemd/rbee-worker@.service" \
  "$root/etc/systemd/system/"
install -D -m 0644 "$here/deploy/systemd/rbee.sysusers" "$root/etc/sysusers.d/rbee.conf"
mkdir -p "$root/etc/rbee"
gates="--init-gate /var/lib/rbee/init-gate --job-gate /var/lib/rbee/job-gate --trace /var/lib/rbee/trace --stall-gate /var/lib/rbee/stall-gate --tempfail-gate /var/lib/rbee/tempfail-gate"
sed -e "s|^RBEE_WORKER_ARGS=.*|RBEE_WORKER_ARGS=$gates|" -e 's/^RBEE_DEVICE=.*/RBEE_DEVICE=cpu/' \
  -e "s/^RBEE_PORT=.*/RBEE_PORT=$port/" -e 's|^#RBEE_LOG_FILE=|RBEE_LOG_FILE=|' \
  "$here/deploy/systemd/worker.env" >"$root/etc/rbee/worker.env"
grep -v '^RBEE_PORT=' "$root/etc/rbee/worker.env" |
  sed -e 's|^RBEE_WORKER_ARGS=.*|RBEE_WORKER_ARGS=|' -e 's|^RBEE_LOG_FILE=.*||' >"$root/etc/rbee/worker-$port2.env"

# ---- boot ---------------------------------------------------------------
cg=rbee-systemd-test-$$
cgdirs=()
for h in systemd unified; do
  if [ -d /sys/fs/cgroup/$h ] && mkdir /sys/fs/cgroup/$h/$cg 2>/dev/null; then cgdirs+=(/sys/fs/cgroup/$h/$cg); fi
done
log=$(mktemp /tmp/rbee-systemd-boot.XXXXXX)
inner=$(mktemp /tmp/rbee-systemd-inner.XXXXXX)
cat >"$inner" <<EOI
set -e
mount --make-rprivate /
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=755 tmpfs "$root/sys/fs/cgroup"
if [ -d /sys/fs/cgroup/systemd ]; then
  mkdir -p "$root/sys/fs/cgroup/systemd"
  mount -t cgroup -o none,name=systemd cgroup "$root/sys/fs/cgroup/systemd"
fi
if [ -d /sys/fs/cgroup/unified ]; then
  mkdir -p "$root/sys/fs/cgroup/unified"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup/unified"
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  umount "$root/sys/fs/cgroup"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
fi
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
export container=rbee-test
exec chroot "$root" /lib/systemd/systemd
EOI
procs=""
for d in "${cgdirs[@]}"; do procs="$procs echo \$\$ > $d/cgroup.procs;"; done
sh -c "$procs exec unshare --pid --fork --mount --cgroup bash $inner" >"$log" 2>&1 &
outer=$!
sd=""
for _ in $(seq 100); do
  sd=$(pgrep -P $outer -x systemd || true)
  [ -n "$sd" ] && break
  sleep 0.1
done

cleanup() {
  if [ -n "$sd" ] && kill -0 "$sd" 2>/dev/null; then
    kill -s RTMIN+4 "$sd"
    for _ in $(seq 200); do kill -0 "$sd" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$sd" 2>/dev/null; then say "systemd did not power off in 20 s: killing it"; kill -9 "$sd"; fi
  fi
  wait $outer 2>/dev/null
  for d in "${cgdirs[@]}"; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  rm -f "$inner" "$log" "${job_out:-}"
}
trap cleanup EXIT
[ -n "$sd" ] || { say "FAIL: systemd did not start:"; cat "$log"; exit 1; }

in_root() { nsenter -t "$sd" -m -p -C -r -w "$@"; }
# grep reads to the end: with pipefail, grep -q leaving early would fail
# the pipeline (journalctl gets SIGPIPE) once the journal is long.
journal_has() { in_root journalctl -u rbee-worker --no-pager | grep -E "$1" >/dev/null; }
sctl() { in_root systemctl "$@"; }
prop() { sctl show -p "$2" --value "$1"; }
# wait_for SECONDS COMMAND...: poll every 0.1 s.
wait_for() {
  local n=$(($1 * 10)); shift
  for _ in $(seq $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
is_state() { [ "$(prop "$1" ActiveState)" = "$2" ]; }
http() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$1$2"; }
http_is() { [ "$(http "$1" "$2")" = "$3" ]; }

booted() { s=$(sctl is-system-running 2>/dev/null); [ "$s" = running ] || [ "$s" = degraded ]; }
wait_for 30 booted || { fail "systemd did not reach running: $(sctl is-system-running 2>&1)"; exit 1; }
ok "systemd $(in_root systemctl --version | head -1 | cut -d' ' -f2) booted as PID 1 (host pid $sd)"
in_root systemd-sysusers >/dev/null
sctl daemon-reload

# ---- start: active only after READY=1 ----------------------------------
rm -f "$state"/*gate*
sctl start --no-block rbee-worker
if wait_for 20 http_is $port /health 200; then
  sleep 1
  st=$(prop rbee-worker ActiveState)
  rd=$(http $port /ready)
  if [ "$st" = activating ] && [ "$rd" = 503 ]; then
    ok "while on_init loads: /health 200, /ready 503, unit $st"
  else
    fail "while on_init loads the unit is $st (want activating), /ready $rd"
  fi
else
  fail "the worker did not listen on port $port"
fi
t0=$(date +%s.%N)
touch "$state/init-gate"
if wait_for 20 is_state rbee-worker active; then
  ok "active $(python3 -c "print('%.0f' % ((float('$(date +%s.%N)') - $t0) * 1000))") ms after on_init was let go (READY=1); status '$(prop rbee-worker StatusText)'"
else
  fail "not active after READY=1: $(prop rbee-worker ActiveState)"
fi
http_is $port /ready 200 || fail "/ready is not 200 when active"

# ---- reload reopens the log --------------------------------------------
logf=$root/var/log/rbee/worker.log
if [ -f "$logf" ]; then
  mv "$logf" "$logf.1"
  sctl reload rbee-worker
  if wait_for 10 grep -q "log reopened" "$logf"; then
    ok "systemctl reload: SIGHUP reopened $(basename "$logf") (the old one kept as .1)"
  else
    fail "systemctl reload did not reopen the log"
  fi
else
  fail "no log file at /var/log/rbee/worker.log"
fi

# ---- stop with a running job: drain, [DONE], exit 0 ----------------------
job_out=$(mktemp /tmp/rbee-systemd-job.XXXXXX)
curl -sN --max-time 60 -H 'Accept: text/event-stream' -d '{"operation":"infer"}' \
  "http://127.0.0.1:$port/v1/jobs" >"$job_out" 2>&1 &
curl_pid=$!
wait_for 10 grep -q job-start "$state/trace" || fail "the job did not start"
sctl stop --no-block rbee-worker
wait_for 10 is_state rbee-worker deactivating || fail "stop: not deactivating"
sleep 1
st=$(prop rbee-worker ActiveState)
rd=$(http $port /ready)
jb=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -d '{"operation":"infer"}' "http://127.0.0.1:$port/v1/jobs")
if [ "$st" = deactivating ] && [ "$rd" = 503 ] && [ "$jb" = 503 ]; then
  ok "stop with a job running: still $st after 1 s (draining), /ready $rd, new job $jb"
else
  fail "during the drain: unit $st, /ready $rd, new job $jb"
fi
touch "$state/job-gate"
wait $curl_pid
last=$(grep '^data:' "$job_out" | tail -1)
if [ "$last" = "data: [DONE]" ]; then ok "the running job's stream ended [DONE]"; else fail "the job's stream ended with '$last'"; fi
wait_for 20 is_state rbee-worker inactive || fail "not inactive after the drain"
res=$(prop rbee-worker Result); code=$(prop rbee-worker ExecMainStatus)
if [ "$res" = success ] && [ "$code" = 0 ]; then ok "stopped: Result=$res, exit $code"; else fail "stop: Result=$res exit $code"; fi

# ---- watchdog: a stalled loop is killed and restarted -------------------
mkdir -p "$root/etc/systemd/system/rbee-worker.service.d"
printf '[Service]\n# test only: a short watchdog and restart delay\nWatchdogSec=2\nRestartSec=0.5\n' \
  >"$root/etc/systemd/system/rbee-worker.service.d/test.conf"
sctl daemon-reload
touch "$state/stall-gate"
sctl start rbee-worker
r0=$(prop rbee-worker NRestarts)
t0=$(date +%s.%N)
restarted() { [ "$(prop rbee-worker NRestarts)" -gt "$1" ] && is_state rbee-worker active; }
if wait_for 20 restarted "$r0"; then
  el=$(python3 -c "print('%.1f' % (float('$(date +%s.%N)') - $t0))")
  # systemd logs "Watchdog timeout (limit 2s)!" and "Failed with result
  # 'watchdog'"; either line may come late, or alone, under load.
  if wait_for 10 journal_has "Watchdog timeout|result 'watchdog'"; then
    ok "stalled loop: 'Watchdog timeout', killed and restarted ${el} s after start (WatchdogSec=2)"
  else
    fail "restarted, but the journal has no watchdog timeout"
  fi
else
  fail "a stalled loop was not caught by the watchdog: $(prop rbee-worker ActiveState)"
fi
grep -q '^stall' "$state/trace" || fail "the worker never stalled"

# ---- crash and exit 75 restart ------------------------------------------
r0=$(prop rbee-worker NRestarts); pid0=$(prop rbee-worker MainPID)
sctl kill -s SEGV --kill-who=main rbee-worker
if wait_for 20 restarted "$r0" && [ "$(prop rbee-worker MainPID)" != "$pid0" ]; then
  ok "SIGSEGV: restarted (NRestarts $r0 -> $(prop rbee-worker NRestarts))"
else
  fail "a crash was not restarted"
fi
wait_for 10 http_is $port /ready 200 || fail "not ready after the crash restart"
r0=$(prop rbee-worker NRestarts)
touch "$state/tempfail-gate"
if wait_for 20 restarted "$r0"; then
  # SuccessExitStatus=75: systemd says "Deactivated successfully" (not
  # failed), and RestartForceExitStatus=75 restarts it all the same.
  if grep -q '^tempfail' "$state/trace" && wait_for 5 journal_has "restart counter is at $((r0 + 1))\."; then
    ok "exit 75: not a failure, restarted (NRestarts $r0 -> $(prop rbee-worker NRestarts))"
  else
    fail "restarted, but the worker did not exit 75"
  fi
else
  fail "exit 75 was not restarted"
fi
sctl stop rbee-worker
rm -rf "$root/etc/systemd/system/rbee-worker.service.d"
sctl daemon-reload

# ---- template unit --------------------------------------------------------
if sctl start "rbee-worker@$port2" && http_is $port2 /ready 200; then
  ok "rbee-worker@$port2: active, /ready 200 on port $port2"
else
  fail "rbee-worker@$port2 did not start: $(prop "rbee-worker@$port2" ActiveState)"
fi
sctl stop "rbee-worker@$port2"

if [ $failures -gt 0 ]; then
  say "the unit's journal:"
  in_root journalctl -u rbee-worker --no-pager | tail -40
  say "$failures check(s) FAILED"
  exit 1
fi
say "all checks passed; powering systemd off (SIGRTMIN+4)"
exit 0
