# Thin wrapper over CMake. `make demo` and `make test` install what is
# missing (Debian packages, via scripts/install-deps.sh) before building.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test check bench install clean test-systemd

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DRBEE_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# A sample worker serving a job end to end (the build's own output goes to
# $(BUILD)/demo-build.log, shown only when the build fails).
demo: deps
	@echo "== building librbee, the samples and the local queen (log: $(BUILD)/demo-build.log)"
	@mkdir -p $(BUILD)
	@{ cmake -S . -B $(BUILD) -DRBEE_WERROR=ON $(CMAKE_FLAGS) && \
	   cmake --build $(BUILD) -j $(JOBS); } >$(BUILD)/demo-build.log 2>&1 || \
	 { tail -n 40 $(BUILD)/demo-build.log; echo "build failed: see $(BUILD)/demo-build.log"; exit 1; }
	@./scripts/demo.sh $(BUILD)

# Everything CI runs: warnings as errors, ASan+UBSan, the CUDA build.
test: deps
	@./scripts/test.sh

# Only the plain build's test suites (quick, for development).
check: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# deploy/systemd/ under a real systemd booted in namespaces (root; builds
# and caches a Debian root with debootstrap the first time, a few minutes).
# Once it is cached, `make test` runs the same checks (tests/test_systemd.sh).
test-systemd: build
	@RBEE_BUILD_DIR=$(abspath $(BUILD)) ./scripts/test-systemd.sh

bench: deps
	@./bench/run.sh

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf build build-*
