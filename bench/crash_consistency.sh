#!/usr/bin/env bash
# Crash consistency with 100 kill points (issue 16): the SIGKILL test of
# tests/server/test_server_crash.cpp (a real server killed at random moments of a mixed workload of
# uploads, jobs, publishes, reports and downloads, then restarted and checked: integrity_check,
# every 201'd upload with its sha256, every succeeded job's artifact verified, no temp files, no
# duplicate publishes, every 201'd report), run with KILLS kill points instead of CI's 20. Prints
# the run as ONE JSON object: {kills, seed, seconds, inconsistent_restarts, unexpected_answers,
# failures[], restart_s, drain_s (requeued jobs ending after a restart), uploads_live, jobs_acked,
# jobs_succeeded, model_versions, reports, at_kill {temp_files, kills_with_temp_files, jobs_running}
# (what the kills left for the restarts to recover), orphan_blobs / orphan_model_dirs (no row
# references them: a kill between a blob's rename and its row; wasted space, not an inconsistency),
# ops {op: {acked, lost_to_kill}}, passed}. Exit status: the test's.
# Usage: [TSM_CRASH_SEED=N] bench/crash_consistency.sh [KILLS=100] [BUILD_DIR=build/release]
set -euo pipefail
KILLS=${1:-100}
BUILD=${2:-build/release}
BIN="$BUILD/tests/server_test_server_crash"
[ -x "$BIN" ] || { echo '{"error": "'"$BIN"' not found (make build)"}'; exit 1; }
DIR=$(mktemp -d /tmp/tsm-crash-XXXXXX)
trap 'rm -rf "$DIR"' EXIT
rc=0
TSM_CRASH_KILLS=$KILLS TSM_CRASH_JSON="$DIR/summary.json" OMP_WAIT_POLICY=PASSIVE \
  "$BIN" --gtest_filter=ServerCrash.SigkillAtRandomMomentsKeepsEverythingConsistent >"$DIR/test.log" 2>&1 || rc=$?
if [ ! -s "$DIR/summary.json" ]; then
  tail -50 "$DIR/test.log" >&2
  echo '{"error": "the test wrote no summary", "rc": '"$rc"'}'
  exit 1
fi
[ "$rc" -eq 0 ] || tail -80 "$DIR/test.log" >&2
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["passed"] = sys.argv[2] == "0"; print(json.dumps(d))' \
  "$DIR/summary.json" "$rc"
exit "$rc"
