#!/usr/bin/env bash
# Raspberry Pi build: installs the cross toolchain and arm64 -dev packages (multiarch), cross-builds
# tensorslm-agent, the client tests and the core tests of hand-vectorised kernels (Saten's NEON
# paths, the block formats' portable paths) for aarch64 (Cortex-A72 baseline, see cmake/aarch64-linux-gnu.cmake), and runs
# those tests under qemu-aarch64. Output: build/aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-pi-deps.sh
cmake --preset aarch64 -DTSM_BUILD_TESTS=ON >/dev/null
targets=(tensorslm-agent)
for t in tests/client/test_*.cpp; do targets+=("client_$(basename "$t" .cpp)"); done
targets+=(core_test_saten_math core_test_block_quant core_test_compressed_linear)
cmake --build --preset aarch64 -j "$JOBS" --target "${targets[@]}"
file build/aarch64/bin/tensorslm-agent | sed 's/, BuildID[^,]*//'
# The server is not part of the Pi build: its integration tests skip themselves.
ctest --test-dir build/aarch64 -L client --output-on-failure -j "$JOBS" --timeout 900
# Hand-vectorised kernels against their references: Saten's NEON paths, the block formats'
# portable code paths (x86 builds take the AVX2 ones), and the compressed operators' NEON kernels
# (vec_dot's vmull/vpadal path at the Cortex-A72 baseline; fp16 / int8 widening) against the
# dequantized references and the portable kernels.
ctest --test-dir build/aarch64 -R '^(SatenSparse|SatenOperator|BlockFormats|BlockQuantCodec|Gptq|VecDot|CompressedLinear|Methods/CompressedLinearRef)\.' --output-on-failure -j "$JOBS" --timeout 900
