#!/usr/bin/env bash
# `make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="npy artifact"]`: installs clang + libFuzzer when missing,
# configures the fuzz preset (build/fuzz: clang, ASan + UBSan, -O1 -g), builds only the fuzz
# targets (and the libraries they link), then runs each target for N seconds on its corpus, one
# process at a time. New inputs go to build/fuzz/corpus/<target>/ (the committed seeds in
# fuzz/corpus/<target>/ and fuzz/regressions/<target>/ are read, never written); crashes to
# build/fuzz/crashes/<target>/; logs to build/fuzz/logs/<target>.log. Prints one line per target
# (executions, cov, ft, seconds) and exits 1 when any target found a crash.
# TSM_BUILD_LOCK=/path: take that lock (flock -o) around configure and build.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")

# target -> -max_len (bytes): room for a valid input of each format plus mutation.
declare -A MAXLEN=(
  [npy]=4096 [safetensors]=8192 [hf_config]=4096 [tar_ingest]=65536 [artifact]=16384 [job_spec]=4096
  [device_report]=4096 [tokenizer_json]=65536 [tokenizer_encode]=4096 [config_file]=4096 [http_request]=20480
)
[ ${#targets[@]} -eq 0 ] && targets=(npy safetensors hf_config tar_ingest artifact job_spec device_report
                                     tokenizer_json tokenizer_encode config_file http_request)

bash scripts/install-deps.sh --fuzz

lock=()
[ -n "${TSM_BUILD_LOCK:-}" ] && lock=(flock -o "$TSM_BUILD_LOCK")
[ -f build/fuzz/build.ninja ] || "${lock[@]}" cmake --preset fuzz >/dev/null
build=()
for t in "${targets[@]}"; do build+=("fuzz_$t"); done
"${lock[@]}" cmake --build --preset fuzz -j "${JOBS:-$(nproc)}" --target "${build[@]}"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
[ -w /dev/shm ] && export TMPDIR=/dev/shm  # scratch files of the targets (tar extraction, config files)
status=0
summary=()
for t in "${targets[@]}"; do
  work=build/fuzz/corpus/$t crashes=build/fuzz/crashes/$t log=build/fuzz/logs/$t.log
  mkdir -p "$work" "$crashes" build/fuzz/logs
  seeds=(fuzz/corpus/"$t")
  [ -d fuzz/regressions/"$t" ] && seeds+=(fuzz/regressions/"$t")
  start=$(date +%s)
  set +e
  nice -n 19 build/fuzz/fuzz/fuzz_"$t" -max_total_time="$secs" -max_len="${MAXLEN[$t]:-4096}" -rss_limit_mb=2048 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  # (|| true: a target that crashed on a seed has no status lines, and that must not end the run)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
  line="$t: rc=$rc execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} seconds=$took"
  if [ $rc -ne 0 ]; then
    status=1
    line="$line CRASH (see $log, inputs in $crashes/)"
  fi
  echo "$line"
  summary+=("$line")
done
echo "--- fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
