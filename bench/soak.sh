#!/usr/bin/env bash
# Soak: a fresh tensorslm-server on an ephemeral loopback port under a mixed workload at a fixed
# arrival rate for DURATION_S seconds (default 600), printing ONE JSON object:
#   {duration_s, rate, requests, errors, error_samples, unexpected_status, by_kind: {kind: {n, p50_ms,
#    p99_ms}}, p50_ms, p99_ms, rss_mb: [[t_s, MB], ...], rss_warm_mb, rss_end_mb, rss_max_after_warmup_mb,
#    rss_growth_pct, disk_mb_end}
# Workload per request (open loop: request i is due at t0 + i / RATE and its latency is measured from
# that due time, so a stalling server is charged for the queue behind the stall): 45% GET a job, 10%
# list jobs, 8% upload a small .npy, 8% submit a job (tt-token / int8 / q8_0, some publishing a new
# model tag), 12% download an artifact, 10% post a device report, 4% list reports, 3% /metrics or
# /healthz. An error is a connection failure, a 5xx, or a status the request cannot legitimately get.
# The issue's target: 0 errors, and RSS flat within 10% after warm-up (rss_growth_pct is the largest
# RSS after WARMUP_S over the RSS at WARMUP_S).
# Usage: [RATE=40] [WARMUP_S=60] bench/soak.sh [BIN_DIR=build/release/bin] [DURATION_S=600]
set -euo pipefail
BIN=${1:-build/release/bin}
DUR=${2:-600}
RATE=${RATE:-40}
WARMUP=${WARMUP_S:-60}
[ -x "$BIN/tensorslm-server" ] || { echo '{"error": "'"$BIN"'/tensorslm-server not found (make build)"}'; exit 1; }
DIR=$(mktemp -d /tmp/tsm-soak-XXXXXX)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
env TENSORSLM_LOG_LEVEL=warn "$BIN/tensorslm-server" --listen 127.0.0.1:0 --data-dir "$DIR/data" --port-file "$DIR/port" \
  2>"$DIR/server.log" &
PID=$!
for _ in $(seq 200); do [ -s "$DIR/port" ] && break; sleep 0.05; done
[ -s "$DIR/port" ] || { echo '{"error": "the server did not start"}'; exit 1; }
python3 - "$(cat "$DIR/port")" "$PID" "$DUR" "$RATE" "$WARMUP" "$DIR/data" <<'PY'
import http.client, json, os, queue, random, struct, sys, threading, time

port, pid, dur, rate, warmup, data_dir = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), \
    float(sys.argv[5]), sys.argv[6]
rng = random.Random(7)
lock = threading.Lock()
state = {"uploads": [], "jobs": [], "artifacts": [], "tag": 0}
lat = {}          # kind -> [ms]
errors = []       # (kind, what)
unexpected = {}   # "kind status" -> count

def npy(rows, cols, seed):
    r = random.Random(seed)
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + \
        struct.pack("<%df" % (rows * cols), *[r.gauss(0, 1) for _ in range(rows * cols)])

local = threading.local()
def call(method, path, body=None, headers=None):
    for attempt in (0, 1):  # one reconnect: a keep-alive connection the server closed
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            b = r.read()
            return r.status, b
        except (http.client.HTTPException, OSError):
            conn.close()
            local.conn = None
            if attempt == 1:
                raise

def pick(key):
    with lock:
        xs = state[key]
        return xs[rng.randrange(len(xs))] if xs else None

def op(kind):
    """Runs one request of `kind`; returns the set of statuses it may legitimately get and the status."""
    if kind == "upload":
        s, b = call("POST", "/v1/uploads?name=m.npy", npy(64, 96, rng.randrange(1 << 30)))
        if s == 201:
            with lock: state["uploads"].append(json.loads(b)["id"])
        return {201}, s
    if kind == "job":
        up = pick("uploads")
        if up is None: return None, None
        m = rng.choice(["tt-token", "int8", "q8_0"])
        j = {"upload": up, "method": m}
        if m == "tt-token": j["params"] = {"shape": [4, 4, 6], "ranks": [2, 2]}
        if rng.random() < 0.25:
            with lock:
                state["tag"] += 1
                j["publish"] = {"model": "soak-%d" % (state["tag"] % 5), "tag": "t%d" % state["tag"]}
        s, b = call("POST", "/v1/jobs", json.dumps(j), {"Content-Type": "application/json"})
        if s in (200, 202):
            with lock: state["jobs"].append(json.loads(b)["id"])
        return {200, 202, 503}, s  # 503: the queue is full (back-pressure, not an error)
    if kind == "get_job":
        jid = pick("jobs")
        if jid is None: return None, None
        s, b = call("GET", "/v1/jobs/" + jid)
        if s == 200:
            art = (json.loads(b).get("result") or {}).get("artifact")
            sha = art.get("sha256") if isinstance(art, dict) else art
            if sha:
                with lock:
                    if sha not in state["artifacts"]: state["artifacts"].append(sha)
        return {200}, s
    if kind == "list_jobs":
        return {200}, call("GET", "/v1/jobs?limit=20")[0]
    if kind == "artifact":
        sha = pick("artifacts")
        if sha is None: return None, None
        return {200}, call("GET", "/v1/artifacts/" + sha)[0]
    if kind == "report":
        rep = {"model": "soak-1", "tag": "t1", "artifact_sha256": "a" * 64}
        return {201}, call("POST", "/v1/devices/pi-%d/reports" % rng.randrange(8), json.dumps(rep),
                           {"Content-Type": "application/json"})[0]
    if kind == "list_reports":
        return {200}, call("GET", "/v1/reports?limit=50")[0]
    return {200}, call("GET", rng.choice(["/metrics", "/healthz"]))[0]

mix = [("get_job", 45), ("list_jobs", 10), ("upload", 8), ("job", 8), ("artifact", 12), ("report", 10),
       ("list_reports", 4), ("ops", 3)]
kinds = [k for k, w in mix for _ in range(w)]
work = queue.Queue()

def worker():
    while True:
        item = work.get()
        if item is None: return
        due, kind = item
        try:
            ok, s = op(kind)
        except Exception as e:  # connection refused / reset / timeout
            with lock: errors.append((kind, type(e).__name__ + ": " + str(e)[:120]))
            continue
        if ok is None: continue  # nothing to act on yet (no upload / job / artifact)
        ms = (time.monotonic() - due) * 1000
        with lock:
            lat.setdefault(kind, []).append(ms)
            if s >= 500 and s != 503 or s not in ok:
                key = "%s %d" % (kind, s)
                unexpected[key] = unexpected.get(key, 0) + 1
                if s >= 500 and s != 503: errors.append((kind, "status %d" % s))

threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
for t in threads: t.start()
for _ in range(4): work.put((time.monotonic(), "upload"))

def rss_mb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024.0
    return float("nan")

samples = []
t0 = time.monotonic()
i, next_sample = 0, 0.0
while True:
    now = time.monotonic() - t0
    if now >= dur: break
    if now >= next_sample:
        samples.append([round(now, 1), round(rss_mb(), 1)])
        next_sample += 5.0
    due = t0 + i / rate
    if due > time.monotonic():
        time.sleep(min(due - time.monotonic(), 0.05))
        continue
    work.put((due, kinds[rng.randrange(len(kinds))]))
    i += 1
for _ in threads: work.put(None)
for t in threads: t.join(timeout=90)
samples.append([round(time.monotonic() - t0, 1), round(rss_mb(), 1)])

def pct(xs, p):
    if not xs: return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))], 2)

allx = [x for xs in lat.values() for x in xs]
warm = [m for t, m in samples if t >= warmup]
rss_warm = warm[0] if warm else None
disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(data_dir) for f in fs) / 2**20
print(json.dumps({
    "duration_s": dur, "rate": rate, "requests": len(allx), "errors": len(errors),
    "error_samples": errors[:10], "unexpected_status": unexpected,
    "by_kind": {k: {"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for k, v in sorted(lat.items())},
    "p50_ms": pct(allx, 50), "p99_ms": pct(allx, 99),
    "rss_mb": samples, "rss_warm_mb": rss_warm, "rss_end_mb": samples[-1][1],
    "rss_max_after_warmup_mb": max(warm) if warm else None,
    "rss_growth_pct": round(100.0 * (max(warm) / rss_warm - 1), 1) if warm else None,
    "disk_mb_end": round(disk, 1)}))
PY
