#!/usr/bin/env bash
# Start and stop a heartbeat 1000 times against a flapping queen under
# valgrind: no leak, no invalid access, no file descriptor growth.
set -euo pipefail
if [ -n "${RBEE_SANITIZE:-}" ]; then
  echo "SKIP: sanitizer build (RBEE_SANITIZE=$RBEE_SANITIZE); valgrind cannot run it, ASan checks leaks there"
  exit 77
fi
if ! command -v valgrind >/dev/null; then
  echo "SKIP: valgrind is not installed"
  exit 77
fi
prog=${RBEE_TEST_heartbeat_flap:?RBEE_TEST_heartbeat_flap is not set (run through ctest)}
start=$(date +%s)
valgrind --quiet --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  "$prog" "${RBEE_FLAP_RUNS:-1000}"
echo "heartbeat_flap under valgrind: clean in $(($(date +%s) - start)) s"
