#!/usr/bin/env bash
# make demo: until the sample workers land, show the library working on
# the smallest thing it has: the worker-info record of a worker.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
echo "librbee built in $build; the sample workers are not there yet."
