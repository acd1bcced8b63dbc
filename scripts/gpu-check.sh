#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one short run: a CUDA build (with
# cuDNN when cudnn.h is there) for this GPU's architecture only, the device
# tests forced onto their GPU path, and verify + stats of cuda:0 as JSON.
# Warnings are not errors here (CI checks them; this is about the GPU).
# Prints PASS/FAIL per check and a summary; exit 0 only when all passed,
# 69 when no GPU is present, 1 on a failure.
#
#   scripts/gpu-check.sh                 on the GPU machine
#   scripts/gpu-check.sh --build-only    configure and build, no GPU needed
#   scripts/gpu-check.sh --fetch-deps    here, with apt: put the Debian
#       packages the build needs, unpacked, into build-gpu-deps/ (git
#       ignores it), for a GPU machine that lacks them and cannot fetch:
#       carry build-gpu-deps there; the check uses it when it exists.
#
# More checks go at the end, each as `check NAME COMMAND...` after building
# what it needs with `build TARGET...`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${RBEE_GPU_BUILD_DIR:-build-gpu}
deps=$root/build-gpu-deps
cuda=${CUDA_HOME:-/usr/local/cuda}
jobs=$(nproc)
t0=$SECONDS
passed=()
failed=()

say() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - t0)); }
die() { # message [exit code]
  printf 'gpu-check: %s\n' "$1" >&2
  exit "${2:-1}"
}
summary() {
  printf '\n== summary after %ds\n' $((SECONDS - t0))
  for p in "${passed[@]}"; do printf 'PASS %s\n' "$p"; done
  for f in "${failed[@]}"; do printf 'FAIL %s\n' "$f"; done
  [ ${#failed[@]} -eq 0 ] && [ ${#passed[@]} -gt 0 ]
}
# check NAME COMMAND...: run, record PASS/FAIL, go on to the next check.
check() {
  local name=$1
  shift
  say "$name"
  if "$@"; then passed+=("$name"); else failed+=("$name"); fi
}

if [ "${1:-}" = --fetch-deps ]; then
  # The build's Debian packages and the libraries they pull in, minus the
  # C library and the compiler's own (the GPU machine has those).
  pkgs=(libevent-dev libcurl4-openssl-dev libcjson-dev check uuid-dev libpng-dev pkgconf)
  list=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${pkgs[@]}" | grep -E '^[a-z0-9]' | sort -u |
    grep -vxE 'libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|rpcsvc-proto|libgcc-s1|gcc-12-base|libstdc\+\+6|mawk|debconf|dpkg|perl-base')
  rm -rf "$deps" && mkdir -p "$deps/debs" "$deps/root" || exit 1
  (cd "$deps/debs" && apt-get download $list) || die "apt-get download failed"
  for f in "$deps"/debs/*.deb; do dpkg -x "$f" "$deps/root" || die "cannot unpack $f"; done
  rm -rf "$deps/debs" "$deps"/root/usr/share/{doc,man,info,locale,lintian}
  # Static archives only where the build links them (Check).
  find "$deps/root" -name '*.a' ! -name 'libcheck*.a' -delete
  echo "gpu-check: $(echo "$list" | wc -l) packages unpacked into $deps ($(du -sh "$deps" | cut -f1)); carry build-gpu-deps"
  exit 0
fi
build_only=0
[ "${1:-}" = --build-only ] && build_only=1

say "GPU and toolkit"
[ -x "$cuda/bin/nvcc" ] || die "no CUDA toolkit: $cuda/bin/nvcc missing (set CUDA_HOME)" 69
"$cuda/bin/nvcc" --version | tail -n 2
arch=""
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '. ')
elif [ $build_only -eq 0 ]; then
  die "no NVIDIA GPU present (nvidia-smi lists none): nothing to check on this machine" 69
else
  echo "no NVIDIA GPU present: building only"
fi
arch=${arch:-90}

say "dependencies"
if [ -d "$deps/root" ]; then
  # Unpacked Debian packages (--fetch-deps): found through pkg-config's
  # sysroot, linked with an RPATH that also serves their own dependencies.
  lib=$deps/root/usr/lib/x86_64-linux-gnu
  lib2=$deps/root/lib/x86_64-linux-gnu
  export PATH=$deps/root/usr/bin:$PATH
  export PKG_CONFIG_SYSROOT_DIR=$deps/root
  export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$deps/root/usr/share/pkgconfig
  export CPATH=$deps/root/usr/include${CPATH:+:$CPATH}
  export LIBRARY_PATH=$lib:$lib2${LIBRARY_PATH:+:$LIBRARY_PATH}
  pkgconf_lib=$lib:$lib2
  # DT_RPATH (not RUNPATH) is searched for the libraries' own dependencies too.
  ldflags="-Wl,--disable-new-dtags -Wl,-rpath,$lib:$lib2 -Wl,-rpath-link,$lib:$lib2"
  extra=(-DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags"
    -DPKG_CONFIG_EXECUTABLE="$deps/root/usr/bin/pkgconf")
  echo "using the packages in $deps"
else
  pkgconf_lib=""
  extra=()
fi
pc() { LD_LIBRARY_PATH=${pkgconf_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} pkg-config "$@"; }
command -v pkg-config >/dev/null || die "pkg-config missing: run scripts/gpu-check.sh --fetch-deps on a machine with apt and carry build-gpu-deps"
for m in libevent libevent_pthreads libcurl libcjson check; do
  pc --exists "$m" || die "$m missing: run scripts/gpu-check.sh --fetch-deps on a machine with apt and carry build-gpu-deps"
done
cudnn=OFF
if [ -f "$cuda/include/cudnn.h" ] || [ -f "$cuda/targets/x86_64-linux/include/cudnn.h" ]; then
  cudnn=ON
elif [ -z "${CUDNN_ROOT:-}" ] && command -v python3 >/dev/null; then
  # cuDNN from pip's nvidia-cudnn wheel (include/ and lib/ in its folder).
  CUDNN_ROOT=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null) || true
fi
if [ $cudnn = OFF ] && [ -n "${CUDNN_ROOT:-}" ] && [ -f "$CUDNN_ROOT/include/cudnn.h" ]; then
  export CUDNN_ROOT
  cudnn=ON
  echo "cuDNN from $CUDNN_ROOT"
fi
echo "libevent $(pc --modversion libevent), libcurl $(pc --modversion libcurl), cJSON $(pc --modversion libcjson), check $(pc --modversion check); cuDNN: $cudnn; sm_$arch"

say "configure (CUDA, cuDNN $cudnn, sm_$arch)"
PKG_CONFIG=pkg-config LD_LIBRARY_PATH=${pkgconf_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
  mkdir -p "$dir" && cmake -S . -B "$dir" -DRBEE_WERROR=OFF -DRBEE_WITH_CUDA=ON -DRBEE_WITH_CUDNN=$cudnn \
  -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DRBEE_BUILD_BENCH=OFF "${extra[@]}" >"$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log"; die "configure failed"; }
grep -E 'cuDNN|CUDA' "$dir/configure.log" || true

# build TARGET...: build only these, with every core.
build() { cmake --build "$dir" -j "$jobs" --target "$@"; }
say "build"
build test_device rbee-device-info || die "build failed"
[ $build_only -eq 1 ] && { echo "built $dir (no GPU: no tests run)"; exit 0; }

tool=$dir/tools/rbee-device-info/rbee-device-info
export RBEE_TEST_EXPECT_GPU=1 CK_DEFAULT_TIMEOUT=120
check "device tests (test_device, test_device_info) on the GPU path" \
  ctest --test-dir "$dir" -R '^test_device' -V --timeout 240
check "rbee-device-info --list shows cuda:0" \
  bash -c "set -o pipefail; '$tool' --list | tee /dev/stderr | grep -q '^cuda  *cuda:0 '"
check "rbee-device-info --json cuda:0 (verify + stats)" \
  bash -c "set -o pipefail; '$tool' --json cuda:0 | tee '$dir/cuda0.json'; grep -q '\"verified\":true' '$dir/cuda0.json'"
check "rbee-device-info cuda:0 (text)" "$tool" cuda:0

# sd_start LOG ARGS...: start the sd-worker sample with ARGS (stderr to
# LOG) in the background and wait (60 s at most) until it is ready; sets
# the caller's pid and port. sd_stop: SIGTERM it and wait; its exit status.
sd_start() {
  local log=$1
  shift
  "$dir/samples/sd-worker/sd-worker" "$@" 2>"$log" &
  pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's/.*listening on .* port=\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && grep -q 'starting -> ready' "$log" && break
    sleep 0.1
  done
}
sd_stop() {
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
}

# The sd-worker sample's CUDA path: its kernel against its CPU loop, then
# the worker on cuda:0 end to end (it picks the kernel by device kind), with
# the same image rendered on the CPU for comparison of time.
sd_job() { # device -> prints the complete event's summary; fails without one
  local dev=$1 log=$dir/sd-$1.log port="" pid
  sd_start "$log" --device "$dev" --port 0 --worker-id "gpu-check-sd"
  python3 - "$port" "$dir/sd-$dev.png" <<'PY'
import base64, json, struct, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
job = {"operation": "image_generation", "prompt": "a lighthouse at dusk", "steps": 50,
       "width": 1024, "height": 1024, "seed": 42}
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", json.dumps(job).encode(),
                             {"Accept": "text/event-stream", "Content-Type": "application/json"})
body = urllib.request.urlopen(req, timeout=300).read().decode()
done = [json.loads(l[6:]) for l in body.splitlines() if l.startswith('data: {"type":"complete"')]
if not done:
    sys.exit("no complete event: " + body[-400:])
ev = done[0]
png = base64.b64decode(ev["image"])
w, h = struct.unpack(">II", png[16:24])
open(out, "wb").write(png)
print(f'{ev["device"]}: {w}x{h}, {ev["steps"]} steps in {ev["duration_ms"]} ms, {len(png)} bytes')
sys.exit(0 if (w, h) == (1024, 1024) else 1)
PY
  local rc=$?
  sd_stop || rc=1
  return $rc
}
build test_sd sd-worker sd-png-info || die "build of the sd sample failed"
check "sd engine: CUDA kernel against the CPU loop (test_sd)" \
  ctest --test-dir "$dir" -R '^test_sd$' --output-on-failure --timeout 240
check "sd-worker on cuda:0: a 1024x1024 image, 50 steps" sd_job cuda:0
check "sd-worker on cpu: the same image" sd_job cpu
check "sd-worker: the GPU image matches the CPU one" \
  "$dir/samples/sd-worker/sd-png-info" --diff "$dir/sd-cuda:0.png" "$dir/sd-cpu.png"

# The batched path (--engine batch): 8 images at once on cuda:0, each
# stepped in the same kernel launch as the others; every image the one
# on_job renders for the same request (checked against the CPU for one).
sd_batch() {
  local log=$dir/sd-batch.log port="" pid
  sd_start "$log" --device cuda:0 --engine batch --max-jobs 8 --port 0 \
    --worker-id gpu-check-sd-batch
  python3 - "$port" "$dir" <<'PY'
import base64, json, sys, threading, urllib.request
port, out = sys.argv[1], sys.argv[2]
res = {}
def one(seed):
    job = {"operation": "image_generation", "prompt": "a lighthouse at dusk", "steps": 30,
           "width": 512, "height": 512, "seed": seed}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", json.dumps(job).encode(),
                                 {"Accept": "text/event-stream", "Content-Type": "application/json"})
    body = urllib.request.urlopen(req, timeout=300).read().decode()
    done = [json.loads(l[6:]) for l in body.splitlines() if l.startswith('data: {"type":"complete"')]
    res[seed] = done[0] if done and body.rstrip().endswith("data: [DONE]") else None
ts = [threading.Thread(target=one, args=(s,)) for s in range(1, 9)]
for t in ts: t.start()
for t in ts: t.join()
bad = [s for s, ev in res.items() if ev is None or ev["device"] != "cuda"]
if bad or len(res) != 8:
    sys.exit(f"images without a cuda complete event: {bad}")
open(f"{out}/sd-batch-1.png", "wb").write(base64.b64decode(res[1]["image"]))
print("8 images:", ", ".join(f'{s}: {ev["duration_ms"]} ms' for s, ev in sorted(res.items())))
PY
  local rc=$?
  sd_stop || rc=1
  grep 'batched:' "$log" || rc=1
  # At most 8 images at once: every step one launch, more image steps than steps.
  sed -n 's/.*batched: \([0-9]*\) steps, \([0-9]*\) kernel launches, \([0-9]*\) image steps.*/\1 \2 \3/p' \
    "$log" | awk '{ exit !($1 == $2 && $3 > $1 && $3 == 240) }' || { echo "not one launch per step"; rc=1; }
  return $rc
}
sd_batch_cpu() { # the CPU render of seed 1 at 512x512, 30 steps
  local log=$dir/sd-batch-cpu.log port="" pid
  sd_start "$log" --device cpu --port 0
  curl -s -N -H 'Accept: text/event-stream' -X POST "http://127.0.0.1:$port/v1/jobs" \
    -d '{"operation":"image_generation","prompt":"a lighthouse at dusk","steps":30,"width":512,"height":512,"seed":1}' |
    sed -n 's/^data: {"type":"complete".*"image":"\([^"]*\)".*/\1/p' |
    "$dir/samples/sd-worker/sd-png-info" --base64 "$dir/sd-batch-cpu-1.png" >/dev/null
  local rc=$?
  sd_stop || rc=1
  return $rc
}
check "sd-worker --engine batch on cuda:0: 8 images, one kernel launch per step" sd_batch
sd_batch_same() {
  sd_batch_cpu && "$dir/samples/sd-worker/sd-png-info" --diff "$dir/sd-batch-1.png" \
    "$dir/sd-batch-cpu-1.png"
}
check "sd-worker --engine batch: a batched GPU image matches the CPU one" sd_batch_same

summary
