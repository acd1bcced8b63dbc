#!/usr/bin/env bash
# deploy/container/: the worker as PID 1.
#  1. Always (root, or an unprivileged user namespace): the test worker as
#     PID 1 of `unshare --pid --fork` gets SIGTERM with a job running,
#     drains (the job's stream ends [DONE]) and exits 0: PID 1 has no
#     default signal actions, so this shows the handlers are the worker's.
#  2. With podman and the base image (deploy/container/make-base.sh, cached):
#     build the image, run it, check PID 1 is the worker as a non-root
#     user, the HEALTHCHECK passes, and `podman stop` with a job running
#     drains to [DONE] and exit 0.
# SKIP (77) when neither can run.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${RBEE_BUILD_DIR:-$here/build}
worker=${RBEE_TEST_test_worker:-$build/tests/test_worker}
say() { echo "test_deploy_container: $*"; }
failures=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {
  local n=$(($1 * 10)); shift
  for _ in $(seq $n); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ran=0

# ---- 1. PID 1 of a PID namespace ----------------------------------------
ns=(unshare --pid --fork --mount-proc)
[ "$(id -u)" -eq 0 ] || ns=(unshare --user --map-root-user --pid --fork --mount-proc)
if ! "${ns[@]}" true 2>/dev/null; then
  say "part 1 skipped: cannot make a PID namespace here (${ns[*]})"
elif [ ! -x "$worker" ]; then
  say "part 1 skipped: no test worker at $worker"
else
  ran=1
  : >"$tmp/err"
  "${ns[@]}" "$worker" --port 0 --job-gate "$tmp/gate" --trace "$tmp/trace" \
    --drain-timeout 20 >"$tmp/out" 2>"$tmp/err" &
  outer=$!
  port="" # the kernel's choice, from the worker's listen line
  up() {
    [ -n "$port" ] || port=$(sed -n 's/.*worker\.listen.* port=\([0-9]*\)$/\1/p' "$tmp/err")
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready"
  }
  if wait_for 20 up; then
    pid=$(pgrep -P $outer | head -1)
    nspid=$(awk '/^NSpid:/ { print $NF }' /proc/$pid/status)
    [ "$nspid" = 1 ] || fail "the worker is pid $nspid in its namespace, not 1"
    curl -sN --max-time 30 -H 'Accept: text/event-stream' -d '{"operation":"infer"}' \
      "http://127.0.0.1:$port/v1/jobs" >"$tmp/job" &
    cpid=$!
    wait_for 10 grep -q job-start "$tmp/trace" || fail "the job did not start"
    kill -TERM "$pid"
    sleep 0.5
    kill -0 "$pid" 2>/dev/null || fail "PID 1 died on SIGTERM instead of draining"
    rd=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")
    [ "$rd" = 503 ] || fail "/ready answered $rd while draining"
    touch "$tmp/gate"
    wait $cpid
    wait $outer
    code=$?
    last=$(grep '^data:' "$tmp/job" | tail -1)
    if [ "$code" = 0 ] && [ "$last" = "data: [DONE]" ]; then
      say "ok: the worker as PID 1 drained on SIGTERM: stream ended [DONE], exit 0"
    else
      fail "PID 1 worker: exit $code, stream ended '$last'"; tail -5 "$tmp/err"
    fi
  else
    fail "the worker as PID 1 did not become ready"; cat "$tmp/err"; kill -9 $outer 2>/dev/null
  fi
fi

# ---- 2. podman --------------------------------------------------------------
base=localhost/rbee-base:bookworm
if ! command -v podman >/dev/null; then
  say "part 2 skipped: podman is not installed (apt-get install podman runc)"
elif [ "$(id -u)" -ne 0 ]; then
  say "part 2 skipped: not root"
elif [ -n "${RBEE_SANITIZE:-}" ]; then
  say "part 2 skipped: a sanitizer build (the plain build runs it)"
elif [[ "${RBEE_WITH_CUDA:-}" =~ ^(ON|On|on|1|TRUE|true|YES|yes)$ ]]; then
  say "part 2 skipped: the CUDA build's worker needs the CUDA runtime, which the image has not (the plain build runs it)"
elif ! podman image exists "$base" 2>/dev/null; then
  say "part 2 skipped: no base image $base; make it with deploy/container/make-base.sh (debootstrap, a minute)"
elif [ ! -x "$build/samples/llm-worker/llm-worker" ]; then
  say "part 2 skipped: no llm-worker in $build"
else
  # crun refuses hybrid cgroup hierarchies, and raising rlimits needs
  # CAP_SYS_RESOURCE: find flags that work on this machine.
  flags=""
  for f in "" "--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"; do
    # shellcheck disable=SC2086
    if podman run --rm $f "$base" true >/dev/null 2>&1; then flags="$f"; ok_flags=1; break; fi
    ok_flags=0
  done
  if [ "$ok_flags" = 0 ]; then
    fail "podman cannot run a container here: $(podman run --rm "$base" true 2>&1 | tail -1)"
  else
    ran=1
    rt=${flags%% --ulimit*}
    lim=${flags#"$rt"}
    tag=localhost/rbee-llm-worker:test-$$
    name=rbee-test-$$
    if RBEE_PODMAN_FLAGS="$rt" RBEE_PODMAN_BUILD_FLAGS="$lim" \
        "$here/deploy/container/build-image.sh" "$build" "$tag" >"$tmp/build" 2>&1; then
      port=$(free_port)
      # shellcheck disable=SC2086
      podman $rt run -d --name "$name" $lim -p "127.0.0.1:$port:8080" -e RBEE_API_TOKEN=test-token \
        "$tag" --pace-tps 10 >/dev/null 2>"$tmp/run"
      up() { curl -sf "http://127.0.0.1:$port/ready"; }
      if wait_for 30 up; then
        top=$(podman top "$name" pid user args 2>/dev/null | awk 'NR > 1 && $1 == 1 { print $2, $3 }')
        [ "$top" = "rbee /usr/local/bin/llm-worker" ] || fail "PID 1 in the container is '$top'"
        podman $rt healthcheck run "$name" >/dev/null 2>&1 || fail "the HEALTHCHECK failed"
        curl -sN --max-time 30 -H 'Authorization: Bearer test-token' -H 'Accept: text/event-stream' \
          -d '{"operation":"infer","prompt":"the","max_tokens":20}' \
          "http://127.0.0.1:$port/v1/jobs" >"$tmp/cjob" &
        cpid=$!
        sleep 0.5
        podman $rt stop -t 40 "$name" >/dev/null 2>&1
        wait $cpid
        code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
        last=$(grep '^data:' "$tmp/cjob" | tail -1)
        if [ "$code" = 0 ] && [ "$last" = "data: [DONE]" ] && [ -n "$top" ]; then
          say "ok: podman${rt:+ ($rt)}: PID 1 is '$top', healthy, podman stop drained: [DONE], exit 0"
        else
          fail "podman stop: exit $code, stream ended '$last'"
          podman logs "$name" 2>&1 | tail -5
        fi
      else
        fail "the container did not become ready"; cat "$tmp/run"; podman logs "$name" 2>&1 | tail -5
      fi
      podman rm -f "$name" >/dev/null 2>&1
      podman rmi -f "$tag" >/dev/null 2>&1
    else
      fail "podman build failed"; tail -5 "$tmp/build"
    fi
  fi
fi

[ $ran = 1 ] || { say "SKIP: neither part could run here"; exit 77; }
[ $failures = 0 ] || exit 1
exit 0
