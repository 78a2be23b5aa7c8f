#!/usr/bin/env bash
# `make sanitize [SANITIZERS="asan tsan"]`: the suite under the sanitizers, each variant built once
# at -O1 in its own build directory (presets asan and tsan, CMakePresets.json).
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (any UB report fails), every test but the
#         `heavy` label (whole-model planner and memory runs), the fuzz corpora replayed included.
#   tsan: ThreadSanitizer on the server, store, queue and client tests (labels server and client),
#         with OMP_NUM_THREADS=1 (libgomp is not instrumented); the server processes the tests start
#         are the TSan build too. The preset compiles with -U__SANITIZE_THREAD__ -D_GLIBCXX_TSAN=1:
#         protobuf's MapFieldBase gains two members under __SANITIZE_THREAD__, so generated code
#         would disagree with Debian's uninstrumented libprotobuf about its layout (heap corruption,
#         "CHECK failed: target + size == res"); libstdc++ keeps its TSan mode through _GLIBCXX_TSAN.
#         One test is left out (the preset's exclude): ArtifactDeterminism.IdenticalJobs... sets
#         codec_threads 2 on purpose, and TSan cannot see libgomp's barriers.
# Prints one line per part with its seconds, so CI's budget per part can be checked.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
variants=(${SANITIZERS:-asan tsan})
bash scripts/install-deps.sh --test

timed() {  # timed LABEL CMD...: runs CMD, then prints LABEL and its seconds
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "sanitize: $label took $((SECONDS - start)) s"
}

for v in "${variants[@]}"; do
  case $v in
    asan) targets=(all) ;;
    tsan)
      targets=(tensorslm tensorslm-server tensorslm-agent)
      for t in tests/server/test_*.cpp; do targets+=("server_$(basename "$t" .cpp)"); done
      for t in tests/client/test_*.cpp; do targets+=("client_$(basename "$t" .cpp)"); done
      ;;
    *) echo "sanitize: unknown variant '$v' (asan, tsan)" >&2; exit 2 ;;
  esac
  cmake --preset "$v" >/dev/null
  timed "$v build" cmake --build --preset "$v" -j "$JOBS" --target "${targets[@]}"
  timed "$v tests" ctest --preset "$v"
done
