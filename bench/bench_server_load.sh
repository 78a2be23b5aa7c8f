#!/usr/bin/env bash
# GET /v1/jobs/{id} under load: wrk with 64 keep-alive connections against a fresh tensorslm-server
# on an ephemeral loopback port (request log at warn). Prints one JSON object:
# {requests_per_s, p50_ms, p90_ms, p99_ms, connections, threads, duration_s, non_2xx}.
# Usage: bench/bench_server_load.sh [BIN_DIR=build/release/bin] [DURATION_S=10]
set -euo pipefail
BIN=${1:-build/release/bin}
DUR=${2:-10}
command -v wrk >/dev/null || { echo '{"error": "wrk is not installed (apt-get install wrk)"}'; exit 1; }
DIR=$(mktemp -d /tmp/tsm-load-XXXXXX)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
TENSORSLM_LOG_LEVEL=warn "$BIN/tensorslm-server" --listen 127.0.0.1:0 --data-dir "$DIR/data" --port-file "$DIR/port" \
  2>"$DIR/server.log" &
PID=$!
for _ in $(seq 200); do [ -s "$DIR/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$DIR/port")"
python3 - "$DIR/m.npy" <<'PY'
import random, struct, sys
rows, cols = 64, 96
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
    f.write(struct.pack("<%df" % (rows * cols), *[random.gauss(0, 1) for _ in range(rows * cols)]))
PY
UP=$(curl -sf -X POST --data-binary @"$DIR/m.npy" "$URL/v1/uploads" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
JOB=$(curl -sf -X POST "$URL/v1/jobs?wait=60" -d '{"upload":"'"$UP"'","method":"tt-token","params":{"shape":[4,4,6]}}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wrk -t2 -c64 -d"${DUR}s" --latency "$URL/v1/jobs/$JOB" > "$DIR/wrk.txt"
python3 - "$DIR/wrk.txt" "$DUR" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]
out = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
       "connections": 64, "threads": 2, "duration_s": int(sys.argv[2])}
for p in ("50", "90", "99"):
    out["p%s_ms" % p] = ms(re.search(r"\s%s%%\s+(\S+)" % p, text).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
out["non_2xx"] = int(m.group(1)) if m else 0
print(json.dumps(out))
PY
