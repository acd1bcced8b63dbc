#!/usr/bin/env bash
# bench/ab.sh REV: the job rows of make bench for the tree as it is (B)
# and for git revision REV (A), measured side by side: both workers and
# one bench_baseline run at once and take turns, ROUNDS rounds, so that a
# burst of load from elsewhere (shared machines: the absolute figures of
# two make bench runs can differ by half) hits every side alike. Prints
# the median jobs/s of each side, the ratios B/A and against the
# baseline, and the CPU a job costs the worker's loop thread and all of
# its threads. Builds REV in Release in build-ab/ (a git worktree under
# it); the tree itself in build-bench/ as make bench does. Loopback only,
# every run bounded in time.
#
#   bench/ab.sh REV [ROUNDS]   e.g. bench/ab.sh HEAD~3 9
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rev=${1:?usage: bench/ab.sh REV [ROUNDS]}
rounds=${2:-7}
jobs=$(nproc)
die() { echo "ab: $*" >&2; exit 1; }
git rev-parse --verify -q "$rev^{commit}" >/dev/null || die "'$rev' is not a commit"

build() { # SRC DIR
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DRBEE_WERROR=OFF -DRBEE_BUILD_TESTS=OFF \
    -DRBEE_BUILD_SAMPLES=OFF -DRBEE_BUILD_BENCH=ON >/dev/null
  cmake --build "$2" -j "$jobs" >"$2/ab-build.log" 2>&1 || { tail -20 "$2/ab-build.log" >&2; die "build of $1 failed"; }
}
wt=$root/build-ab/src
rm -rf "$wt" && git worktree prune
git worktree add -q --detach "$wt" "$rev"
echo "ab: building $rev (A) and this tree (B)" >&2
build "$wt" "$root/build-ab/build"
build "$root" "$root/build-bench"
A=$root/build-ab/build/bench B=$root/build-bench/bench

tmp=$(mktemp -d /tmp/rbee-ab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
  git worktree remove --force "$wt" 2>/dev/null || true
}
trap cleanup EXIT

start() { # NAME BIN ARGS...: sets port_NAME, pid_NAME
  local name=$1 out=$tmp/$1.out p=""
  shift
  : >"$out"
  "$@" >"$out" 2>"$tmp/$name.log" &
  pids+=("$!")
  printf -v "pid_$name" %s "$!"
  for _ in $(seq 100); do
    p=$(sed -n 's/^port=//p' "$out")
    [ -n "$p" ] && break
    sleep 0.1
  done
  [ -n "$p" ] || die "$name did not start: $(tail -3 "$tmp/$name.log")"
  printf -v "port_$name" %s "$p"
  "$B/bench_procstat" wait-ready --port "$p" -t 10 || die "$name not ready"
}
start base "$B/bench_baseline" --port 0 --max-jobs 2
start a "$A/bench_worker" --port 0 --max-jobs 2 --max-queue 64
start b "$B/bench_worker" --port 0 --max-jobs 2 --max-queue 64

cpu() { awk '{print $14 + $15}' "$1"; } # a /proc stat file: utime + stime (ticks)
tick=$(getconf CLK_TCK)
med() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "n/a" }'; }

printf '%-34s %10s %10s %10s %7s %7s %7s %16s %16s\n' "row (median of $rounds)" base A B "A/base" "B/base" "B/A" \
  "loop us/job A B" "all us/job A B"
for form in two sse; do
  for c in 1 16; do
    extra=()
    [ $form = sse ] && extra=(--sse)
    : >"$tmp/r"
    for ((r = 0; r < rounds; r++)); do
      for s in base a b; do
        pv=pid_$s pp=port_$s
        l0=$(cpu "/proc/${!pv}/task/${!pv}/stat") a0=$(cpu "/proc/${!pv}/stat")
        out=$(timeout 60 "$B/bench_loadgen" jobs --port "${!pp}" -c $c -w 0.2 -t 0.7 --tokens 10 "${extra[@]}") ||
          die "bench_loadgen failed: $out"
        l1=$(cpu "/proc/${!pv}/task/${!pv}/stat") a1=$(cpu "/proc/${!pv}/stat")
        # The warm-up's jobs are in the CPU figures too: per job of both.
        n=$(sed -n 's/.*units=\([0-9]*\).*/\1/p' <<<"$out")
        rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$out")
        echo "$s $rate $(awk -v a="$l0" -v b="$l1" -v n="$n" -v t="$tick" -v w=0.2 -v m=0.7 \
          'BEGIN { printf "%.1f", (b - a) * 1e6 / t / (n * (w + m) / m) }') $(awk -v a="$a0" -v b="$a1" \
          -v n="$n" -v t="$tick" -v w=0.2 -v m=0.7 'BEGIN { printf "%.1f", (b - a) * 1e6 / t / (n * (w + m) / m) }')" \
          >>"$tmp/r"
      done
    done
    col() { awk -v s="$1" -v k="$2" '$1 == s { print $k }' "$tmp/r" | med; }
    rb=$(col base 2) ra=$(col a 2) rB=$(col b 2)
    label="jobs, 10 tokens, $([ $form = sse ] && echo "one trip" || echo "two trips"), $c client(s)"
    printf '%-34s %10.0f %10.0f %10.0f %7.2f %7.2f %7.2f %8s %7s %8s %7s\n' "$label" "$rb" "$ra" "$rB" \
      "$(awk -v x="$ra" -v y="$rb" 'BEGIN { print x / y }')" "$(awk -v x="$rB" -v y="$rb" 'BEGIN { print x / y }')" \
      "$(awk -v x="$rB" -v y="$ra" 'BEGIN { print x / y }')" "$(col a 3)" "$(col b 3)" "$(col a 4)" "$(col b 4)"
  done
done
echo "A = $(git rev-parse --short "$rev"), B = this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo ", with changes")); loop = the worker's main thread" >&2
