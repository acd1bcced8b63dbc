#!/usr/bin/env bash
# make bench: what librbee costs, as ratios against a bare evhttp baseline
# measured in the same run (absolute figures drift on shared machines).
# Builds in Release in its own build dir, runs every measurement in a fixed
# order with warm-ups, prints one table and writes it to docs/benchmarks.md
# with a chart of the ratios (docs/benchmarks.png). Loopback only; every
# request loop is bounded in count and time; the whole run stays under
# 5 minutes.
#
# Environment: RBEE_BENCH_BUILD (build dir, default build-bench),
# RBEE_BENCH_NO_DOCS=1 (print the table only), RBEE_BENCH_OUT=DIR (write
# benchmarks.md and .png there instead of docs/), RBEE_BENCH_QUICK=1 (short
# windows, for trying the script out: writes no docs unless RBEE_BENCH_OUT),
# RBEE_BENCH_ONLY=engine (only the batching rows, table printed, no docs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${RBEE_BENCH_BUILD:-build-bench}
jobs=$(nproc)

RBEE_BENCH=1 ./scripts/install-deps.sh

echo "bench: building in Release ($build)" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRBEE_WERROR=OFF -DRBEE_BUILD_TESTS=OFF \
  -DRBEE_BUILD_SAMPLES=OFF -DRBEE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j "$jobs" >"$build/bench-build.log" 2>&1 ||
  { tail -30 "$build/bench-build.log" >&2; echo "bench: build failed" >&2; exit 1; }

bin=$root/$build/bench
tmp=$(mktemp -d /tmp/rbee-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Measurement windows (seconds): warm-up, then the measured part.
# Load figures are the median of ROUNDS runs, librbee and baseline taking
# turns, so that a burst of load from elsewhere hits one run, not one side.
W=0.3 T=1 ROUNDS=3 HB_T=3 IDLE_T=10 STARTS=20 LAT_T=3
if [ "${RBEE_BENCH_QUICK:-0}" = 1 ]; then
  W=0.2 T=0.4 ROUNDS=1 HB_T=1.5 IDLE_T=2 STARTS=5 LAT_T=1
fi
LAT_TPS=50 # tokens a second of each paced stream
MAX_JOBS=2 # job slots for both servers (2 cores)

die() { echo "bench: $*" >&2; exit 1; }
only=${RBEE_BENCH_ONLY:-}
[ -z "$only" ] || [ "$only" = engine ] || die "RBEE_BENCH_ONLY: '$only' is not engine"
[ -z "$only" ] || RBEE_BENCH_NO_DOCS=1
have_worker=1
[ -x "$bin/bench_worker" ] || die "no $bin/bench_worker after the build"
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; } # line, key

# start NAME CMD...: run a server and wait for its "port=" line; sets
# port_NAME and pid_NAME. ready NAME: wait for its GET /ready = 200.
start() {
  local name=$1 out=$tmp/$1.out p=""
  shift
  : >"$out" # before the child opens it: sed reads it at once
  "$@" >"$out" 2>"$tmp/$name.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    p=$(sed -n 's/^port=//p' "$out")
    [ -n "$p" ] && break
    kill -0 "$pid" 2>/dev/null || die "$name exited at start: $(tail -3 "$tmp/$name.log")"
    sleep 0.1
  done
  [ -n "$p" ] || die "$name did not print its port within 10 s"
  printf -v "port_$name" %s "$p"
  printf -v "pid_$name" %s "$pid"
}
ready() {
  local pv=port_$1
  "$bin/bench_procstat" wait-ready --port "${!pv}" -t 10 || die "$1 not ready"
}
stop() { # NAME
  local pid_var=pid_$1
  kill -TERM "${!pid_var}" 2>/dev/null || true
  timeout 30 tail --pid="${!pid_var}" -f /dev/null || die "$1 did not stop on SIGTERM"
  wait "${!pid_var}" 2>/dev/null || true
}

loadgen() { # VAR PORT ARGS...: VAR = the result line; a failure stops the run
  local var=$1 port=$2 out
  shift 2
  out=$(timeout 60 "$bin/bench_loadgen" "$@" --port "$port") ||
    die "bench_loadgen $* failed: $out"
  printf -v "$var" %s "$out"
}

# results.tsv: key, label, unit, librbee, baseline, better (hi/lo),
# target kind (ratio_ge, abs_le, abs_ge, none), target value, label on the
# chart ("" = not charted).
results=$tmp/results.tsv
: >"$results"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

# median VAR FILE: VAR = the line of FILE with the median rate.
median() {
  local n
  n=$(wc -l <"$2")
  printf -v "$1" %s "$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^rate=/) print substr($i, 6), $0 }' "$2" |
    sort -g | sed -n "$(((n + 1) / 2))p" | cut -d' ' -f2-)"
}
if [ -z "$only" ]; then
servers=(base)
[ $have_worker = 1 ] && servers+=(lib)
start base "$bin/bench_baseline" --port 0 --max-jobs $MAX_JOBS
ready base
if [ $have_worker = 1 ]; then
  start lib "$bin/bench_worker" --port 0 --max-jobs $MAX_JOBS --max-queue 64
  ready lib
fi

# measure KEY: run "$@" (a loadgen argument list) against each server in
# turn, back to back, leaving the line in line_base / line_lib.
measure() {
  local s port_var r
  line_lib=""
  for s in "${servers[@]}"; do : >"$tmp/m_$s"; done
  for ((r = 0; r < ROUNDS; r++)); do
    for s in "${servers[@]}"; do
      port_var=port_$s
      local pid_var=pid_$s
      loadgen l "${!port_var}" "$@" --pid "${!pid_var}"
      echo "$l" >>"$tmp/m_$s"
    done
  done
  for s in "${servers[@]}"; do median "line_$s" "$tmp/m_$s"; done
}
get() { # SERVER KEY: a field of the last measure
  local v=line_$1
  [ -n "${!v}" ] && field "${!v}" "$2" || echo "n/a"
}

echo "bench: (a) GET /health" >&2
for c in 1 64; do
  measure health -c $c -w $W -t $T
  row "health_rps_c$c" "GET /health, $c conn: requests/s" "req/s" \
    "$(get lib rate)" "$(get base rate)" hi ratio_ge 0.9 "/health $c conn"
  for p in p50 p99 p999; do
    row "health_${p}_c$c" "GET /health, $c conn: ${p/p999/p99.9} latency" "us" \
      "$(get lib ${p}_us)" "$(get base ${p}_us)" lo none "" "/health $c conn ${p/p999/p99.9}"
  done
  row "health_cpu_c$c" "GET /health, $c conn: server CPU per request" "us" \
    "$(get lib server_cpu_us)" "$(get base server_cpu_us)" lo none ""
done

echo "bench: (b) job round trips" >&2
for form in two sse; do
  for c in 1 16; do
    extra=()
    label="submit + stream" short="jobs 2 trips"
    if [ $form = sse ]; then
      extra=(--sse) label="one round trip (Accept: text/event-stream)" short="jobs 1 trip"
    fi
    measure jobs -c $c -w $W -t $T --tokens 10 "${extra[@]}"
    row "jobs_${form}_c$c" "jobs, 10 tokens, $label, $c client(s): jobs/s" "jobs/s" \
      "$(get lib rate)" "$(get base rate)" hi ratio_ge 0.8 "$short, $c cl"
    row "jobs_${form}_cpu_c$c" "... server CPU per job (all threads)" "us" \
      "$(get lib server_cpu_us)" "$(get base server_cpu_us)" lo none "" "CPU/job, $short, $c cl"
    row "jobs_${form}_ctx_c$c" "... server context switches per job" "" \
      "$(get lib server_ctxsw)" "$(get base server_ctxsw)" lo none ""
    [ $form$c = two16 ] && base_jobs16=$(get base rate)
  done
done

echo "bench: (c) one job streaming 1M token events" >&2
best_of3() { # SERVER: line_SERVER = the best of three 1M-event streams, after a warm-up
  local port_var=port_$1 best="" l
  loadgen l "${!port_var}" jobs -n 1 --tokens 100000 --sse
  for _ in 1 2 3; do
    loadgen l "${!port_var}" jobs -n 1 -t 30 --tokens 1000000 --sse
    if [ -z "$best" ] || [ "$(field "$l" events_per_s)" -gt "$(field "$best" events_per_s)" ]; then
      best=$l
    fi
  done
  printf -v "line_$1" %s "$best"
}
line_lib=""
for s in "${servers[@]}"; do best_of3 "$s"; done
row stream_eps "one job, 1M token events: events/s" "ev/s" \
  "$(get lib events_per_s)" "$(get base events_per_s)" hi abs_ge 1000000 "1M-event stream"
row stream_mbps "one job, 1M token events: MB/s" "MB/s" \
  "$(get lib mb_per_s)" "$(get base mb_per_s)" hi none ""

echo "bench: (d) GET /health while every job slot runs a CPU-heavy job" >&2
# Enough CPU for both windows (1 and 64 connections); then wait for the slots.
spin=$(awk -v w=$W -v t=$T 'BEGIN { printf "%d", 2 * (w + t) * 1000 + 1000 }')
for s in "${servers[@]}"; do : >"$tmp/busy1_$s"; : >"$tmp/busy64_$s"; done
for ((r = 0; r < ROUNDS; r++)); do
  for s in "${servers[@]}"; do
    port_var=port_$s
    loadgen l "${!port_var}" jobs -c $MAX_JOBS -n $MAX_JOBS --spin-ms "$spin" --submit-only
    sleep 0.1
    for c in 1 64; do
      loadgen l "${!port_var}" health -c $c -w $W -t $T
      echo "$l" >>"$tmp/busy${c}_$s"
    done
    "$bin/bench_procstat" wait-ready --idle --port "${!port_var}" -t 30 || die "$s: slots still busy"
  done
done
for c in 1 64; do
  line_lib=""
  for s in "${servers[@]}"; do median "line_$s" "$tmp/busy${c}_$s"; done
  row "busy_health_rps_c$c" "GET /health, $c conn, all slots CPU-busy: requests/s" "req/s" \
    "$(get lib rate)" "$(get base rate)" hi ratio_ge 0.9 "/health $c conn, CPU-busy"
  row "busy_health_p99_c$c" "GET /health, $c conn, all slots CPU-busy: p99 latency" "us" \
    "$(get lib p99_us)" "$(get base p99_us)" lo none "" "/health $c conn, CPU-busy p99"
done
for s in "${servers[@]}"; do stop "$s"; done

echo "bench: (e) token latency: emit to client, paced streams of $LAT_TPS tokens/s" >&2
# bench_worker emits from on_job's thread (rbee_job_emit_token), the
# baseline from a timer on its own loop; 256 slots so every stream runs.
start lat_base "$bin/bench_baseline" --port 0 --max-jobs 256
ready lat_base
if [ $have_worker = 1 ]; then
  start lat_lib "$bin/bench_worker" --port 0 --max-jobs 256 --max-queue 64
  ready lat_lib
fi
latency() { # VAR SERVER ARGS...: VAR = bench_latency's line
  local var=$1 pv=port_lat_$2 out
  shift 2
  out=$(timeout 120 "$bin/bench_latency" --port "${!pv}" --pace-tps $LAT_TPS "$@") ||
    die "bench_latency $* failed: $out"
  printf -v "$var" %s "$out"
}
for s in "${servers[@]}"; do latency l "$s" -c 256 --tokens 10; done # warm-up
latency l base -c 256 --tokens 10 --hop
for c in 1 64 256; do
  # One stream gives few tokens a second: three times as long for its p99.
  toks=$((LAT_TPS * LAT_T * (c == 1 ? 3 : 1)))
  : >"$tmp/lat${c}_hop"
  for s in "${servers[@]}"; do : >"$tmp/lat${c}_$s"; done
  for ((r = 0; r < ROUNDS; r++)); do
    for s in "${servers[@]}"; do
      latency l "$s" -c $c --tokens $toks
      echo "$l" >>"$tmp/lat${c}_$s"
    done
    latency l base -c $c --tokens $toks --hop
    echo "$l" >>"$tmp/lat${c}_hop"
  done
  line_lib=""
  for s in "${servers[@]}" hop; do # the round with the median p99
    n=$(wc -l <"$tmp/lat${c}_$s")
    printf -v "line_$s" %s "$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^p99_us=/) print substr($i, 8), $0 }' \
      "$tmp/lat${c}_$s" | sort -g | sed -n "$(((n + 1) / 2))p" | cut -d' ' -f2-)"
  done
  row "lat_p50_c$c" "token emit to client, $c stream(s) at $LAT_TPS tok/s: p50" "us" \
    "$(get lib p50_us)" "$(get base p50_us)" lo none "" "token latency $c str p50"
  row "lat_p99_c$c" "token emit to client, $c stream(s) at $LAT_TPS tok/s: p99" "us" \
    "$(get lib p99_us)" "$(get base p99_us)" lo ratio_le 2 "token latency $c str p99"
  row "lat_p999_c$c" "token emit to client, $c stream(s) at $LAT_TPS tok/s: p99.9" "us" \
    "$(get lib p999_us)" "$(get base p999_us)" lo none ""
  # Where the time goes: the baseline with only the thread hop of on_job
  # (tokens from a job thread, event_active to the loop), in the librbee
  # column against the plain baseline.
  row "lat_hop_p99_c$c" "... p99 of the baseline sending from a job thread (hop) vs from its loop" "us" \
    "$(field "$line_hop" p99_us)" "$(get base p99_us)" lo none ""
done
for s in "${servers[@]}"; do stop "lat_$s"; done

echo "bench: start-up (median of $STARTS) and idle ($IDLE_T s)" >&2
line_base=$(timeout 120 "$bin/bench_procstat" startup -r $STARTS -- "$bin/bench_baseline" --port '{port}')
line_lib=""
if [ $have_worker = 1 ]; then
  line_lib=$(timeout 120 "$bin/bench_procstat" startup -r $STARTS --log "$tmp/startup.log" -- \
    "$bin/bench_worker" --port '{port}')
fi
ms() { awk -v v="$1" 'BEGIN { if (v == "n/a") print v; else printf "%.2f", v / 1000 }'; }
row ready_ms "exec to GET /ready = 200 (no-op on_init), median" "ms" \
  "$(ms "$(get lib median_us)")" "$(ms "$(get base median_us)")" lo abs_le 10 "exec to ready"
# Both idle probes at once: an idle process does not disturb the other.
timeout 60 "$bin/bench_procstat" idle -t $IDLE_T -- "$bin/bench_baseline" --port '{port}' \
  >"$tmp/idle.base" &
idle_base_pid=$!
if [ $have_worker = 1 ]; then
  line_lib=$(timeout 60 "$bin/bench_procstat" idle -t $IDLE_T --log "$tmp/idle.log" -- \
    "$bin/bench_worker" --port '{port}')
fi
wait $idle_base_pid || die "idle probe of the baseline failed"
line_base=$(cat "$tmp/idle.base")
mib() { awk -v v="$1" 'BEGIN { if (v == "n/a") print v; else printf "%.2f", v / 1024 }'; }
row idle_rss "idle RSS" "MiB" "$(mib "$(get lib rss_kb)")" "$(mib "$(get base rss_kb)")" \
  lo abs_le 8 "idle RSS"
row idle_threads "idle threads" "" "$(get lib threads)" "$(get base threads)" lo none ""
row idle_wakeups "idle wake-ups (context switches, all threads)" "/s" \
  "$(get lib wakeups_per_s)" "$(get base wakeups_per_s)" lo abs_le 2

queen_note=""
if [ $have_worker = 1 ]; then
  echo "bench: heartbeat isolation (16 clients, 1 s heartbeats)" >&2
  hb_run() { # NAME [QUEEN ARGS...]: jobs/s of a fresh worker beside that queen
    local name=$1 qurl=()
    shift
    if [ "$name" != none ]; then
      start "queen_$name" "$bin/bench_queen" --port 0 "$@"
      local qp=port_queen_$name
      qurl=(--queen-url "http://127.0.0.1:${!qp}" --heartbeat-interval 1)
    fi
    start "hb_$name" "$bin/bench_worker" --port 0 --max-jobs $MAX_JOBS --max-queue 64 "${qurl[@]}"
    ready "hb_$name"
    local pv=port_hb_$name
    loadgen l "${!pv}" jobs -c 16 -w 0.5 -t $HB_T --tokens 10
    echo "$l" >>"$tmp/hb_$name"
    stop "hb_$name"
    if [ "$name" != none ]; then
      stop "queen_$name"
      queen_note+=" $name queen: $(grep -v '^port=' "$tmp/queen_$name.out");"
    fi
  }
  : >"$tmp/hb_healthy"; : >"$tmp/hb_hung"; : >"$tmp/hb_none"
  for ((r = 0; r < ROUNDS; r++)); do
    queen_note=""
    hb_run healthy
    hb_run hung --hung
    hb_run none
  done
  median hb_healthy "$tmp/hb_healthy"
  median hb_hung "$tmp/hb_hung"
  median hb_none "$tmp/hb_none"
  h=$(field "$hb_healthy" rate)
  row hb_healthy "jobs/s, submit + stream, 16 clients, healthy queen (vs the baseline)" \
    "jobs/s" "$h" "$base_jobs16" hi none "" "healthy queen vs baseline"
  row hb_hung "jobs/s, 16 clients, hung queen (vs healthy queen)" "jobs/s" \
    "$(field "$hb_hung" rate)" "$h" hi ratio_ge 0.95 "hung queen vs healthy"
  row hb_none "jobs/s, 16 clients, no queen (vs healthy queen)" "jobs/s" \
    "$(field "$hb_none" rate)" "$h" hi none "" "no queen vs healthy"
fi

fi # the rows against the baseline

echo "bench: (e) batching: 16 jobs of 100 tokens, a device step of 2 ms" >&2
# bench_engine in three set-ups, each its own process; every job is 100
# device steps (sleeps of 2 ms, one at a time). Median of ROUNDS, the
# set-ups taking turns.
ENG_JOBS=16 ENG_TOKENS=100 ENG_STEP=2
eng_setups=(batch slots1 slots16)
for e in "${eng_setups[@]}"; do : >"$tmp/eng_$e"; done
for ((r = 0; r < ROUNDS; r++)); do
  for e in "${eng_setups[@]}"; do
    case $e in
    batch) eargs=(--engine batch --max-jobs $ENG_JOBS) ;;
    slots1) eargs=(--engine slots --max-jobs 1) ;;
    slots16) eargs=(--engine slots --max-jobs $ENG_JOBS) ;;
    esac
    start "eng_$e" "$bin/bench_engine" --port 0 --max-queue 64 --step-cost-ms $ENG_STEP "${eargs[@]}"
    ready "eng_$e"
    pv=port_eng_$e pidv=pid_eng_$e
    loadgen l "${!pv}" jobs -c $ENG_JOBS -n $ENG_JOBS -w 0 -t 60 --tokens 20 --sse # warm-up
    loadgen l "${!pv}" jobs -c $ENG_JOBS -n $ENG_JOBS -w 0 -t 60 --tokens $ENG_TOKENS --sse \
      --pid "${!pidv}"
    echo "$l" >>"$tmp/eng_$e"
    stop "eng_$e"
  done
done
for e in "${eng_setups[@]}"; do median "eng_line_$e" "$tmp/eng_$e"; done
eng() { local v=eng_line_$1; field "${!v}" "$2"; } # SETUP KEY
per_tok() { awk -v v="$1" -v n=$ENG_TOKENS 'BEGIN { printf "%.2f", v / n / 1000 }'; }
row eng_rate_1 "batched (on_engine, capacity 16) vs one at a time (--max-jobs 1): jobs/s" \
  "jobs/s" "$(eng batch rate)" "$(eng slots1 rate)" hi ratio_ge 10 "batched vs 1 slot"
row eng_rate_16 "batched vs 16 slots (--max-jobs 16, one device): jobs/s" "jobs/s" \
  "$(eng batch rate)" "$(eng slots16 rate)" hi none "" "batched vs 16 slots"
row eng_tok_1 "per-token latency (job's POST to [DONE] / 100, median), batched vs 1 slot" "ms" \
  "$(per_tok "$(eng batch p50_us)")" "$(per_tok "$(eng slots1 p50_us)")" lo none ""
row eng_tok_16 "per-token latency, batched vs 16 slots" "ms" \
  "$(per_tok "$(eng batch p50_us)")" "$(per_tok "$(eng slots16 p50_us)")" lo none ""
row eng_cpu_1 "server CPU per job, batched vs 1 slot" "us" \
  "$(eng batch server_cpu_us)" "$(eng slots1 server_cpu_us)" lo none ""

# The table: ratio = librbee / baseline; "ok" checks the target.
table=$tmp/table.md
awk -F'\t' -v chart="$tmp/chart.dat" '
  function num(v) { return v != "" && v != "n/a" }
  function fmt(v) {
    if (!num(v)) return "n/a"
    if (v >= 100000) return sprintf("%.3g M", v / 1e6)
    if (v >= 100 || v == int(v)) return sprintf("%.0f", v)
    return sprintf("%.2f", v)
  }
  BEGIN {
    print "| metric | unit | librbee | baseline | ratio | target | ok |"
    print "|---|---|---:|---:|---:|---|---|"
  }
  {
    key = $1; label = $2; unit = $3; lib = $4; base = $5; better = $6; kind = $7; tv = $8
    short = $9
    ratio = (num(lib) && num(base) && base > 0) ? lib / base : ""
    target = ""; ok = ""
    if (kind == "ratio_ge") { target = "ratio >= " tv; if (ratio != "") ok = ratio >= tv ? "yes" : "**NO**" }
    if (kind == "ratio_le") { target = "ratio <= " tv; if (ratio != "") ok = ratio <= tv ? "yes" : "**NO**" }
    if (kind == "abs_le") { target = "<= " tv " " unit; if (num(lib)) ok = lib <= tv ? "yes" : "**NO**" }
    if (kind == "abs_ge") { target = ">= " fmt(tv) " " unit; if (num(lib)) ok = lib >= tv ? "yes" : "**NO**" }
    shown_ratio = ratio == "" ? "n/a" : sprintf("%.2f", ratio)
    if (ok == "**NO**" && kind == "ratio_ge" && shown_ratio + 0 >= tv)
      shown_ratio = sprintf("%.3f", ratio) # 0.897 is not 0.90
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, unit, fmt(lib), fmt(base),
           shown_ratio, target, ok
    # Chart: relative performance, higher is better, 1 = as good as the
    # baseline; clamped to the plot, coloured by the target.
    if (ratio != "" && ratio > 0 && short != "") {
      rel = better == "hi" ? ratio : 1 / ratio
      shown = rel > 15 ? 15 : rel < 0.07 ? 0.07 : rel
      colour = ok == "yes" ? "0x2e9e4f" : ok == "" ? "0x5b8bd6" : "0xd0453a"
      printf "%d \"%s\" %.4f %.4f %s\n", n++, short, shown, rel, colour > chart
    }
  }' "$results" >"$table"

# Where a missed token latency target's time goes: the hop-only
# baseline's share of librbee's extra p99.
lat_note=$(awk -F'\t' '
  $1 ~ /^lat_p99_c/ { c = substr($1, 10); lib[c] = $4; base[c] = $5 }
  $1 ~ /^lat_hop_p99_c/ { c = substr($1, 14); hop[c] = $4 }
  END {
    for (c in lib) {
      if (lib[c] == "" || lib[c] == "n/a" || base[c] <= 0 || lib[c] <= 2 * base[c]) continue
      share = (hop[c] - base[c]) / (lib[c] - base[c]); if (share < 0) share = 0
      printf "- token latency, %s stream(s): p99 %.0f us against %.0f us (%.2fx, over the 2x target). The baseline with only the thread hop of on_job (tokens from a job thread through event_active) had %.0f us: that hop accounts for %.0f%% of the difference, librbee'"'"'s own path (job lock, notification, stream read, SSE writer) for the rest.\n", c, lib[c], base[c], lib[c] / base[c], hop[c], 100 * (share > 1 ? 1 : share)
    }
  }' "$results")

echo
cat "$table"
[ -n "${lat_note:-}" ] && echo && echo "$lat_note"
[ -n "${queen_note:-}" ] && echo && echo "heartbeats seen:$queen_note"

[ "${RBEE_BENCH_NO_DOCS:-0}" = 1 ] && exit 0
out_dir=${RBEE_BENCH_OUT:-docs}
if [ "${RBEE_BENCH_QUICK:-0}" = 1 ] && [ -z "${RBEE_BENCH_OUT:-}" ]; then
  echo "bench: quick run, docs left alone" >&2
  exit 0
fi
mkdir -p "$out_dir"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
ncpu=$(grep -c '^processor' /proc/cpuinfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src include bench 2>/dev/null || commit="$commit (with local changes)"
doc=$out_dir/benchmarks.md
{
  cat <<EOF
# Benchmarks

Generated by \`make bench\` (bench/run.sh); do not edit by hand.

- date: $(date -u +%Y-%m-%dT%H:%MZ)
- CPU: $cpu, $ncpu cores
- commit: $commit
- kernel: $(uname -r)

What librbee costs a worker, measured against \`bench_baseline\`, a bare
libevent evhttp server with the same routes and the same bytes on the wire
(no framework: no job threads, queue, replay buffer, logging or
heartbeats), in the same run. The librbee side is \`bench_worker\`, a worker
on \`rbee_worker_main()\` with a no-op \`on_init\` and an \`on_job\` that
emits N tokens. Both run with $MAX_JOBS job slots; the load generator
(\`bench_loadgen\`, C, epoll, kept-alive connections, one request at a time
per connection) shares the machine's cores with the server under test.
Absolute figures drift between runs on shared machines; the ratios
(librbee / baseline, measured back to back) are what to read.

EOF
  cat "$table"
  if [ -n "$lat_note" ]; then
    printf '\nWhere the token latency goes where its target was missed:\n\n%s\n' "$lat_note"
  fi
  cat <<EOF

How each row is measured:

- Load rows (GET /health, jobs): ${W} s warm-up, then ${T} s, ${ROUNDS}
  rounds with librbee and the baseline taking turns; the row is the run
  with the median rate. Latency is per request, from write to the whole
  response read.
- jobs: POST /v1/jobs \`{"operation":"infer","tokens":10}\` then GET the
  stream URL and read it to \`[DONE]\` (submit + stream), or the POST with
  \`Accept: text/event-stream\` answered with the stream itself (one round
  trip); every job checked for \`[DONE]\`.
- server CPU per request or job: CPU time of the server process, all its
  threads (/proc/PID/task/*/schedstat), over the measured window, divided
  by the requests or jobs completed in it; context switches likewise
  (/proc/PID/task/*/status). Unlike the rates, these do not depend on how
  the load generator shares the cores.
- one job of 1M token events (\`{"type":"token","t":"tok","i":N}\`), one
  round trip; best of three after a warm-up; MB/s counts the SSE body.
- CPU-busy: as many jobs spinning the CPU as there are slots, submitted
  before the window; the same /health load meanwhile.
- token latency (\`bench_latency\`): 1, 64 and 256 streams at once, each
  one POST with \`Accept: text/event-stream\` of a job sending ${LAT_TPS}
  tokens a second on a fixed schedule for ${LAT_T} s; each token's text is
  the CLOCK_MONOTONIC time of its emit (librbee: just before
  \`rbee_job_emit_token\` in on_job, on the job's thread; baseline: in a
  timer callback on its loop, written at once), and the client reads the
  same clock when the bytes arrive (non-blocking sockets, all streams read
  from the start). Percentiles over every token of every stream; a warm-up
  of 256 short streams first; ${ROUNDS} rounds taking turns, the round with
  the median p99. Target: librbee's p99 within 2x the baseline's. The
  "hop" rows run the baseline with its tokens sent from a thread of each
  job and handed to the loop with \`event_active\`, the one thread hop that
  a worker's \`on_job\` needs: their figure (in the librbee column) against
  the plain baseline's tells that hop's share from the rest of librbee's.
- start-up: from posix_spawn to the first 200 of GET /ready (polled every
  0.1 ms); idle: RSS and the voluntary + nonvoluntary context switches of
  all threads (/proc/PID/task/*/status) over ${IDLE_T} s, 1 s after ready,
  no queen.
- heartbeat isolation: a fresh worker with \`--queen-url\` and
  \`--heartbeat-interval 1\` beside \`bench_queen\` (answers 200) or
  \`bench_queen --hung\` (accepts, never answers), and with no queen;
  16 clients, 0.5 s warm-up, ${HB_T} s; ${ROUNDS} rounds of healthy,
  hung, none in turn, the median of each (heartbeat counts: last round).${queen_note:+ Heartbeats seen:$queen_note}
- batching rows: here "librbee" is \`bench_engine --engine batch\` (on_engine,
  capacity 16) and "baseline" the same program serving with on_job slots
  (\`--max-jobs 1\`, or 16). $ENG_JOBS clients at once, each one job of
  $ENG_TOKENS tokens, one round trip; every token costs one step of a
  simulated device (\`--step-cost-ms $ENG_STEP\`: a ${ENG_STEP} ms sleep, one step
  at a time, as a GPU runs one launch after another). A batched step
  advances every active job, so 16 jobs take about as long as one; slot
  threads each need their own step and queue for the device, so 16 slots
  are no faster than 1. A fresh process per set-up, a 20-token warm-up,
  ${ROUNDS} rounds taking turns, the median. Per-token latency is the
  median job's time from POST to [DONE] over its $ENG_TOKENS tokens
  (queueing for a slot included).

![librbee relative to the baseline](benchmarks.png)
EOF
} >"$doc"

if [ -s "$tmp/chart.dat" ]; then
  gnuplot <<EOF
set terminal pngcairo size 1200,620 font "DejaVu Sans,9"
set output "$out_dir/benchmarks.png"
set title "librbee relative to the bare evhttp baseline, same run\n(1 = as good; higher is better; green: target met, red: missed, blue: no target)"
set style fill solid 0.8 border -1
set boxwidth 0.7
set logscale y 2
set yrange [0.0625:*]
set ytics ("1/16" 0.0625, "1/8" 0.125, "1/4" 0.25, "1/2" 0.5, "1" 1, "2" 2, "4" 4, "8" 8, "16" 16)
set offsets 0.6, 0.6, 0, 0
set rmargin 10
set grid ytics
set xtics rotate by -40 left noenhanced
set bmargin 11
set key off
f(x) = 1
plot "$tmp/chart.dat" using 1:3:5:xtic(2) with boxes lc rgb variable, \
     f(x) with lines lc rgb "#404040" lw 1.5, \
     "$tmp/chart.dat" using 1:3:(sprintf("%.2f", \$4)) with labels offset 0,0.7 font ",8"
EOF
fi
echo "bench: wrote $doc and $out_dir/benchmarks.png (total ${SECONDS} s)" >&2
