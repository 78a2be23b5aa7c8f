# Thin wrapper over CMake presets. `make run` and `make test` work on a fresh Debian 12 machine.
PRESET ?= release
JOBS   ?= $(shell nproc)
BIN    := build/$(PRESET)/bin
# ccache (when installed) keys on paths relative to the checkout, so another clone of the same
# commit (CI's) reuses this one's objects.
# Test objects carry no absolute path (tests/support/test_paths.h); the sanitizer variants' debug
# info names the build directory, which ccache then leaves out of its hash (CCACHE_NOHASHDIR).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true

.PHONY: deps configure build test run bench clean pi-test fuzz sanitize
deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	@bash scripts/install-deps.sh --test
	@ctest --preset $(PRESET)

run: build
	@mkdir -p var
	@echo "tensorslm-server on http://127.0.0.1:8080 (data in ./var). Try:"
	@echo "  curl -s http://127.0.0.1:8080/healthz"
	@echo "  dashboard: http://127.0.0.1:8080/"
	@$(BIN)/tensorslm-server --listen 127.0.0.1:8080 --data-dir var

bench: build
	@for b in $(BIN)/bench_*; do $$b --benchmark_format=json; done

# Raspberry Pi: installs the aarch64 cross toolchain + arm64 -dev packages, cross-builds
# tensorslm-agent and the client tests (build/aarch64), runs the tests under qemu-aarch64.
pi-test:
	@bash scripts/pi-test.sh

# The suite under AddressSanitizer + UBSan (all but the heavy label) and ThreadSanitizer (server and
# client tests): build/asan, build/tsan; SANITIZERS="asan" picks one.
sanitize:
	@bash scripts/sanitize.sh

# libFuzzer targets (fuzz/, preset fuzz: clang + ASan/UBSan; builds only them): each runs FUZZ_SECONDS on
# its corpus (FUZZ_TARGETS picks some). Crash inputs land in build/fuzz/crashes/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	@bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build
