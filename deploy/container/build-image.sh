#!/usr/bin/env bash
# Builds localhost/rbee-llm-worker from deploy/container/Containerfile with
# a small context (the built worker and librbee only, not the repository).
#
#   deploy/container/build-image.sh [BUILD_DIR] [TAG]
# Needs the base image (deploy/container/make-base.sh) and a build
# (make build). Extra podman flags: RBEE_PODMAN_FLAGS (e.g. "--runtime runc"
# where crun refuses this machine's hybrid cgroups).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
tag=${2:-localhost/rbee-llm-worker}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$build/src/librbee.so.0.1" "$build/samples/llm-worker/llm-worker" \
  "$here/deploy/container/Containerfile" "$ctx/"
# docker format: the OCI format has no HEALTHCHECK.
# shellcheck disable=SC2086
podman ${RBEE_PODMAN_FLAGS:-} build --format docker ${RBEE_PODMAN_BUILD_FLAGS:-} -q -t "$tag" "$ctx"
