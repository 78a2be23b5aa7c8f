// Scale-out benchmark on PostgreSQL: a throw-away cluster (tests/support/pg_cluster.h) and real
// tensorslm-server processes on loopback (tests/support/server_process.h), everything removed at
// the end. Prints ONE JSON object:
//   "queue_throughput": per run with 1, 2 and 4 worker processes (one worker thread each): `jobs`
//       small tt-token jobs (a 64x96 matrix, a few ms of work each) queued at once, jobs_per_minute
//       from the first insert to the last end, on the database clock;
//   "claim_latency_idle_ms": jobs submitted one at a time through POST /v1/jobs of an API process
//       while two worker processes are idle: from the row's insert to the claim that set it
//       running (p50, p99, max; the issue's target: p99 < 50 ms);
//   "get_job_at_rate": GET /v1/jobs/{id} at a fixed arrival rate (bench/http_load, 64 connections)
//       against an API process on PostgreSQL and against a server on SQLite (its default store);
//       the issue's target: p99 < 10 ms at 5,000 req/s on PostgreSQL;
//   "loadavg_start" / "loadavg_end": /proc/loadavg around the run (the machine is shared).
// The insert, claim and end times come from a trigger that the benchmark adds to its own database
// (bench_marks); the throughput runs queue copies of one job row that was submitted through the API
// (one INSERT ... SELECT and a NOTIFY tsm_submit, as insert_job sends), so they measure the queue and
// the workers, not the POST handler.
// tensorslm-server and http_load are taken from the build (TSM_BIN_DIR).
// Usage: scaleout_load [--jobs 200] [--samples 100] [--rate 5000] [--duration 10]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/http_client.h"
#include "support/pg_cluster.h"
#include "support/server_process.h"

namespace {

using json = nlohmann::json;
using Server = tsm::testing::ServerProcess;
using Clock = std::chrono::steady_clock;

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string s;
  std::getline(in, s);
  return s;
}

/// A float32 .npy of rows x cols N(0,1) values.
std::string npy(int rows, int cols) {
  std::string hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "), }";
  hdr += std::string(63 - (10 + hdr.size()) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(hdr.size() & 0xff);
  out += static_cast<char>(hdr.size() >> 8);
  out += hdr;
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  for (int i = 0; i < rows * cols; ++i) {
    float v = g(rng);
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return out;
}

tsm::client::HttpClient client(uint16_t port) {
  tsm::client::HttpOptions o;
  o.server = "http://127.0.0.1:" + std::to_string(port);
  o.max_attempts = 1;
  return tsm::client::HttpClient(o);
}

void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

/// Waits until /readyz answers 200 (bounded: 60 s).
void wait_ready(uint16_t port) {
  auto c = client(port);
  for (int i = 0; i < 600; ++i) {
    try {
      if (c.get("/readyz").status == 200) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("a server did not become ready");
}

std::string upload(uint16_t port) {
  auto c = client(port);
  tsm::client::HttpRequest r;
  r.method = "POST";
  r.target = "/v1/uploads";
  r.body = npy(64, 96);
  r.content_type = "application/octet-stream";
  auto res = c.send(r);
  must(res.status == 201, "upload: " + std::to_string(res.status) + " " + res.body);
  return json::parse(res.body)["id"];
}

/// Submits a small job and waits for its end; returns its id.
std::string run_job(uint16_t port, const std::string& up) {
  auto c = client(port);
  json j = {{"upload", up}, {"method", "tt-token"}, {"params", {{"shape", {4, 4, 6}}}}};
  auto res = c.post_json("/v1/jobs", j.dump());
  must(res.status == 202, "submit: " + std::to_string(res.status) + " " + res.body);
  const std::string id = json::parse(res.body)["id"];
  auto done = c.get("/v1/jobs/" + id + "?wait=60");
  must(done.status == 200 && json::parse(done.body)["state"] == "succeeded", "job " + id + ": " + done.body);
  return id;
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

/// bench/http_load's JSON for GET `path` at `rate` req/s.
json http_load(const std::string& bin, uint16_t port, const std::string& path, int rate, int duration) {
  const std::string cmd = bin + "/http_load --url http://127.0.0.1:" + std::to_string(port) + path + " --rate " +
                          std::to_string(rate) + " --connections 64 --duration " + std::to_string(duration);
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  must(p != nullptr, "cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p.get())) out.append(buf, n);
  try {
    return json::parse(out);
  } catch (const std::exception&) {
    throw std::runtime_error("http_load printed no JSON: " + out);
  }
}

const char* kMarks = R"sql(
CREATE TABLE bench_marks(id TEXT PRIMARY KEY, inserted DOUBLE PRECISION, claimed DOUBLE PRECISION, done DOUBLE PRECISION);
CREATE FUNCTION bench_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO bench_marks(id, inserted) VALUES (NEW.id, EXTRACT(EPOCH FROM clock_timestamp()));
  ELSIF OLD.state = 'queued' AND NEW.state = 'running' THEN
    UPDATE bench_marks SET claimed = COALESCE(claimed, EXTRACT(EPOCH FROM clock_timestamp())) WHERE id = NEW.id;
  ELSIF NEW.state IN ('succeeded', 'failed', 'canceled') AND OLD.state <> NEW.state THEN
    UPDATE bench_marks SET done = EXTRACT(EPOCH FROM clock_timestamp()) WHERE id = NEW.id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER bench_mark AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION bench_mark();
)sql";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"scale-out benchmark on a throw-away PostgreSQL cluster"};
  const std::string bin = TSM_BIN_DIR;
  int jobs = 200, samples = 100, rate = 5000, duration = 10;
  app.add_option("--jobs", jobs, "small jobs per throughput run")->check(CLI::Range(1, 100000));
  app.add_option("--samples", samples, "jobs for the claim latency")->check(CLI::Range(1, 100000));
  app.add_option("--rate", rate, "GET /v1/jobs/{id} requests per second")->check(CLI::Range(1, 1000000));
  app.add_option("--duration", duration, "seconds of each GET load")->check(CLI::Range(1, 3600));
  CLI11_PARSE(app, argc, argv);
  if (const std::string why = tsm::testing::PgCluster::skip_reason(); !why.empty()) {
    std::cout << json{{"error", why}}.dump() << "\n";
    return 1;
  }
  char tmpl[] = "/tmp/tsm-scaleout-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const std::string dir = tmpl;
  json out = {{"loadavg_start", loadavg()}, {"nproc", std::thread::hardware_concurrency()}};
  int rc = 0;
  try {
    tsm::testing::PgCluster pg;
    const std::string db = pg.create_database("bench");
    const std::string uri = pg.uri(db), blobs = dir + "/blobs";
    const std::vector<std::pair<std::string, std::string>> env = {{"TENSORSLM_LOG_LEVEL", "warn"}};
    int n_servers = 0;
    auto server = [&](const std::string& role, std::vector<std::string> extra = {}) {
      std::vector<std::string> args = {"--store", uri, "--role", role, "--blob-dir", blobs};
      args.insert(args.end(), extra.begin(), extra.end());
      auto s = std::make_unique<Server>(dir + "/p" + std::to_string(n_servers++), env, args);
      must(s->start(), role + " process did not start: " + s->log());
      wait_ready(s->port());
      return s;
    };
    auto api = server("api");
    const std::string up = upload(api->port());
    std::string tmpl_id;
    {
      auto w = server("worker");
      tmpl_id = run_job(api->port(), up);  // the row the throughput runs copy
    }
    pg.exec(db, kMarks);

    // Jobs per minute with 1, 2 and 4 worker processes.
    json runs = json::array();
    for (int n : {1, 2, 4}) {
      std::vector<std::unique_ptr<Server>> workers;
      for (int i = 0; i < n; ++i) workers.push_back(server("worker", {"--workers", "1"}));
      const std::string prefix = "tp" + std::to_string(n) + "_";
      pg.exec(db, "INSERT INTO jobs(id,upload,method,spec_pb,resolved_pb,priority,state,progress,error,result_json,"
                  "timings_json,attempts,created_unix,started_unix,finished_unix) SELECT '" + prefix +
                      "' || g, upload, method, spec_pb, resolved_pb, priority, 'queued', 0, '', '', '', 0,"
                      " EXTRACT(EPOCH FROM now())::bigint, 0, 0 FROM jobs, generate_series(1, " + std::to_string(jobs) +
                      ") g WHERE id = '" + tmpl_id + "'; NOTIFY tsm_submit, 'bench'");
      const auto t0 = Clock::now();
      const std::string like = "id LIKE '" + prefix + "%'";
      while (std::stoi(pg.exec(db, "SELECT COUNT(*) FROM bench_marks WHERE done IS NOT NULL AND " + like).at(0)) < jobs) {
        must(Clock::now() - t0 < std::chrono::seconds(600), "throughput run did not finish in 600 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      const double secs = std::stod(pg.exec(db, "SELECT MAX(done) - MIN(inserted) FROM bench_marks WHERE " + like).at(0));
      const int failed = std::stoi(pg.exec(db, "SELECT COUNT(*) FROM jobs WHERE state <> 'succeeded' AND " + like).at(0));
      const int takeovers = std::stoi(pg.exec(db, "SELECT COUNT(*) FROM jobs WHERE attempts > 1 AND " + like).at(0));
      runs.push_back({{"worker_processes", n}, {"jobs", jobs}, {"seconds", secs}, {"jobs_per_minute", jobs / secs * 60},
                      {"not_succeeded", failed}, {"jobs_with_more_than_one_attempt", takeovers}});
    }
    out["queue_throughput"] = runs;

    // Claim latency with idle workers: one job at a time through the API.
    {
      auto w1 = server("worker", {"--workers", "1"});
      auto w2 = server("worker", {"--workers", "1"});
      std::vector<std::string> ids;
      for (int i = 0; i < samples; ++i) {
        ids.push_back(run_job(api->port(), up));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // both workers idle again
      }
      std::string in;
      for (const auto& id : ids) in += (in.empty() ? "'" : ",'") + id + "'";
      std::vector<double> ms;
      for (const auto& v : pg.exec(db, "SELECT (claimed - inserted) * 1000 FROM bench_marks WHERE id IN (" + in + ")"))
        ms.push_back(std::stod(v));
      out["claim_latency_idle_ms"] = {{"samples", ms.size()}, {"worker_processes", 2}, {"p50", pct(ms, 0.5)},
                                      {"p99", pct(ms, 0.99)}, {"max", pct(ms, 1.0)}, {"target_p99", 50}};
    }

    // GET /v1/jobs/{id} at a fixed rate: an API process on PostgreSQL (no workers running), then a
    // server on SQLite.
    json get = json::object();
    get["postgresql"] = http_load(bin, api->port(), "/v1/jobs/" + tmpl_id, rate, duration);
    api.reset();
    {
      Server lite(dir + "/sqlite", env, {});
      must(lite.start(), "sqlite server did not start: " + lite.log());
      wait_ready(lite.port());
      const std::string id = run_job(lite.port(), upload(lite.port()));
      get["sqlite"] = http_load(bin, lite.port(), "/v1/jobs/" + id, rate, duration);
    }
    get["target_postgresql_p99_ms"] = 10;
    out["get_job_at_rate"] = get;
  } catch (const std::exception& e) {
    out["error"] = e.what();
    rc = 1;
  }
  out["loadavg_end"] = loadavg();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::cout << out.dump(2) << "\n";
  return rc;
}
