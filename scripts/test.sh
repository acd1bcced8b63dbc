#!/usr/bin/env bash
# Every test, as CI runs them: a warnings-as-errors build and its suites, the
# same under AddressSanitizer + UndefinedBehaviorSanitizer, ThreadSanitizer on
# the threaded suites, and a build with
# the CUDA backend (compiled with nvcc; its tests check the no-GPU errors
# when no GPU is present). Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

./scripts/install-deps.sh

step() { printf '\n== %s\n' "$*"; }

run_suite() { # build-dir, extra cmake flags...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DRBEE_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

step "build (warnings as errors) and test"
run_suite build

# The sanitizer build uses clang, so that both compilers' warnings count.
step "AddressSanitizer + UndefinedBehaviorSanitizer (clang)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
CC=clang CXX=clang++ run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DRBEE_SANITIZE=address,undefined \
  -DRBEE_BUILD_BENCH=OFF
unset ASAN_OPTIONS UBSAN_OPTIONS

# ThreadSanitizer over the suites where threads meet: the job table, the
# HTTP front, heartbeats and the worker runtime. (One test abandons a stuck
# job thread on purpose, so thread leaks are not reported.)
step "ThreadSanitizer (clang): jobs, http, heartbeat, worker"
CC=clang CXX=clang++ cmake -S . -B build-tsan -DRBEE_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
  -DRBEE_SANITIZE=thread -DRBEE_BUILD_BENCH=OFF -DRBEE_BUILD_SAMPLES=OFF >/dev/null
tsan_tests=(test_jobs test_jobs_stream test_jobs_phases test_jobs_summary test_http test_heartbeat
  test_heartbeat_faults test_worker_api test_worker_runtime test_engine test_job_control test_obs
  test_util)
cmake --build build-tsan -j "$jobs" --target "${tsan_tests[@]}" test_worker engine_worker obs_worker
TSAN_OPTIONS=halt_on_error=1:report_thread_leaks=0 \
  ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
  -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$"

if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null; then
  step "CUDA build (nvcc) and test"
  run_suite build-cuda -DRBEE_WITH_CUDA=ON -DRBEE_BUILD_BENCH=OFF
else
  step "CUDA build skipped: no nvcc at /usr/local/cuda/bin"
fi

step "all tests passed"
