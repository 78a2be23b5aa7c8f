#!/usr/bin/env bash
# `make sanitize [SANITIZERS="asan tsan"]`: the suite under the sanitizers, each variant built once
# at -O1 in its own build directory (presets asan and tsan, CMakePresets.json).
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (any UB report fails), built with clang (a
#         third faster to compile at -O1 than g++), every test but the `heavy` label (whole-model
#         planner and memory runs) and the Trained/ cases (GPTQ and allocation on the trained
#         fixtures: minutes of numeric loops whose code the smaller tests reach), the fuzz corpora
#         replayed included.
#   tsan: ThreadSanitizer on the server, store, queue and client tests (labels server and client, but
#         the whole-model job tests: the preset's exclude),
#         with OMP_NUM_THREADS=1 (libgomp is not instrumented); the server processes the tests start
#         are the TSan build too. The preset compiles with -U__SANITIZE_THREAD__ -D_GLIBCXX_TSAN=1:
#         protobuf's MapFieldBase gains two members under __SANITIZE_THREAD__, so generated code
#         would disagree with Debian's uninstrumented libprotobuf about its layout (heap corruption,
#         "CHECK failed: target + size == res"); libstdc++ keeps its TSan mode through _GLIBCXX_TSAN.
#         ArtifactDeterminism is among those left out for a second reason: it sets codec_threads 2
#         on purpose, and TSan cannot see libgomp's barriers.
# Prints one line per part with its seconds, so CI's budget per part can be checked.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
variants=(${SANITIZERS:-asan tsan})
bash scripts/install-deps.sh --test --clang  # clang: the asan preset

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
      # The server and client test executables but those whose tests the tsan test preset leaves
      # out whole (whole-model jobs: minutes each under TSan, their threads are the job service's,
      # which the other server tests drive too); keep this list in step with that preset's exclude.
      targets=(tensorslm tensorslm-server tensorslm-agent)
      skip=" test_artifact_determinism test_server_plan test_server_e2e test_server_crash test_server_readme "
      for t in tests/server/test_*.cpp; do
        n=$(basename "$t" .cpp)
        [[ $skip == *" $n "* ]] || targets+=("server_$n")
      done
      for t in tests/client/test_*.cpp; do targets+=("client_$(basename "$t" .cpp)"); done
      ;;
    *) echo "sanitize: unknown variant '$v' (asan, tsan)" >&2; exit 2 ;;
  esac
  cmake --preset "$v" >/dev/null
  timed "$v build" cmake --build --preset "$v" -j "$JOBS" --target "${targets[@]}"
  timed "$v tests" ctest --preset "$v"
done
