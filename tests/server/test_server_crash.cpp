// Crash consistency: a real server is killed with SIGKILL at random moments of a mixed workload
// (streamed uploads small and large, a model tar, jobs with and without publishing, device reports,
// artifact and manifest downloads, upload deletes) from two client threads, restarted on the same
// data, and checked once its requeued jobs have ended:
//   - PRAGMA integrity_check is "ok";
//   - every upload that got a 201 (and no DELETE since) is there, via the API and the database,
//     with the sha256 of the bytes sent, and its blob holds exactly those bytes;
//   - every job that got a 202 is in the database and has ended; every succeeded job has its
//     artifact row and blob, whose bytes hash to its id and whose content hash verifies;
//   - no temp files remain (tmp/ is empty, no "*.tmp-*" beside the blobs);
//   - publishes: no model version without a succeeded job that published exactly it, no job with
//     two versions, no model:tag twice (except where the job asked for replace: true), and every
//     succeeded job that asked to publish has its version;
//   - every report that got a 201 is there;
//   - no blob file and no model directory that no row references (the start-up sweep's work).
// TSM_CRASH_KILLS sets the number of kill points (20 by default; bench/crash_consistency.sh runs
// 100), TSM_CRASH_SEED the random seed (printed), TSM_CRASH_JSON a file for the summary as JSON.
//
// A second test reproduces, deterministically, the state a kill between a job's publish and its
// final state leaves (the job row still 'running' beside its model version) and checks that the
// restart neither fails the job on a clash with its own tag nor publishes twice.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "support/test_paths.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

/// One request with an overall deadline; status 0 when the connection failed or timed out (the
/// server was killed, or is down).
HttpResult request(uint16_t port, http::verb method, const std::string& target, const std::string& body = "",
                   std::map<std::string, std::string> headers = {}, double timeout_s = 30) {
  HttpResult out;
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (method != http::verb::get && method != http::verb::head) req.prepare_payload();
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(std::numeric_limits<uint64_t>::max());
  bool ok = false;
  stream.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  stream.async_connect({boost::asio::ip::make_address("127.0.0.1"), port}, [&](beast::error_code ec) {
    if (ec) return;
    http::async_write(stream, req, [&](beast::error_code ec, size_t) {
      if (ec) return;
      http::async_read(stream, buf, p, [&](beast::error_code ec, size_t) { ok = !ec; });
    });
  });
  ioc.run();
  if (!ok) return out;
  out.status = p.get().result_int();
  for (auto& f : p.get()) {
    std::string k(f.name_string());
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    out.headers[k] = std::string(f.value());
  }
  out.body = std::move(p.get().body());
  return out;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Rows of a query on the database (read-only, beside the running server); each row's columns as text.
std::vector<std::vector<std::string>> query(const std::string& db, const std::string& sql) {
  std::vector<std::vector<std::string>> rows;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return {{"cannot open " + db}};
  }
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
    rows.push_back({std::string("prepare failed: ") + sqlite3_errmsg(h)});
  } else {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> r;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        auto t = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
        r.emplace_back(t ? t : "");
      }
      rows.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) rows.push_back({std::string("step failed: ") + sqlite3_errmsg(h)});
  }
  sqlite3_finalize(s);
  sqlite3_close(h);
  return rows;
}

struct UploadInfo {
  std::string sha;
  int64_t cols = 0;  // 0: a model tar (no jobs on it)
};

struct PublishWant {
  std::string model, tag;
  bool replace = false;
};

/// What the clients were told (only acknowledged answers count), shared by the client threads.
struct Ledger {
  std::mutex mu;
  std::map<std::string, UploadInfo> uploads;       // 201 and not (possibly) deleted since
  std::map<std::string, std::string> deleted;      // 204: id -> sha
  std::set<std::string> maybe_deleted;             // DELETE sent, answer lost
  std::map<std::string, PublishWant> jobs;         // 202: id -> its publish (model empty: none)
  std::set<std::string> tags;                      // "model:tag" asked for without replace
  std::set<std::string> reports;                   // 201 ids
  std::vector<std::string> bodies;                 // a few small upload bodies, sent again (dedup)
  std::map<std::string, int> acked, lost;          // per operation
  std::vector<std::string> unexpected;             // answers no correct server gives
  uint64_t next_seed = 1000;
  int tag_seq = 0;
};

std::string tt_params(int64_t cols) {
  return cols == 64 ? R"({"shape": [4, 4, 4], "ranks": [2, 2]})" : R"({"shape": [8, 8, 12], "ranks": [4, 4]})";
}

/// One client thread: random operations until `stop`; a failed connection counts as lost.
void client(uint16_t port, Ledger& L, const std::string& model_tar, std::atomic<bool>& stop, uint32_t seed, int who) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  auto note = [&](const std::string& op, const HttpResult& r, std::initializer_list<int> fine) {
    std::lock_guard lk(L.mu);
    if (r.status == 0) {
      ++L.lost[op];
      return false;
    }
    if (std::find(fine.begin(), fine.end(), r.status) == fine.end() && L.unexpected.size() < 50)
      L.unexpected.push_back(op + " -> " + std::to_string(r.status) + ": " + r.body.substr(0, 300));
    ++L.acked[op];
    return true;
  };
  while (!stop) {
    const int dice = pick(100);
    if (dice < 30) {  // small upload (sometimes bytes sent before: the blob is shared)
      std::string body;
      {
        std::lock_guard lk(L.mu);
        if (!L.bodies.empty() && pick(6) == 0) body = L.bodies[size_t(pick(int(L.bodies.size())))];
      }
      if (body.empty()) {
        uint64_t s;
        {
          std::lock_guard lk(L.mu);
          s = L.next_seed++;
        }
        body = npy_of(test_matrix(8 + pick(200), 64, static_cast<uint32_t>(s)));
      }
      auto r = request(port, http::verb::post, "/v1/uploads?name=small", body);
      if (note("upload", r, {201}) && r.status == 201) {
        std::lock_guard lk(L.mu);
        if (r.js()["sha256"] != sha256_hex(body)) L.unexpected.push_back("upload sha256 differs from the bytes sent");
        L.uploads[r.js()["id"]] = {r.js()["sha256"], 64};
        if (L.bodies.size() < 8) L.bodies.push_back(body);
      }
    } else if (dice < 35) {  // large upload (4.6 MB): kills land mid-body and mid-fsync
      uint64_t s;
      {
        std::lock_guard lk(L.mu);
        s = L.next_seed++;
      }
      const std::string body = npy_of(test_matrix(1500, 768, static_cast<uint32_t>(s)));
      auto r = request(port, http::verb::post, "/v1/uploads?name=large", body);
      if (note("upload_large", r, {201}) && r.status == 201) {
        std::lock_guard lk(L.mu);
        L.uploads[r.js()["id"]] = {r.js()["sha256"], 768};
      }
    } else if (dice < 38) {  // a model tar (extracted under models/)
      auto r = request(port, http::verb::post, "/v1/uploads?name=gpt2", model_tar);
      if (note("upload_tar", r, {201}) && r.status == 201) {
        std::lock_guard lk(L.mu);
        L.uploads[r.js()["id"]] = {r.js()["sha256"], 0};
      }
    } else if (dice < 63) {  // a job, often publishing
      std::string up;
      int64_t cols = 0;
      PublishWant pub;
      {
        std::lock_guard lk(L.mu);
        std::vector<std::string> ids;
        for (auto& [id, u] : L.uploads)
          if (u.cols > 0) ids.push_back(id);
        if (ids.empty()) continue;
        up = ids[size_t(pick(int(ids.size())))];
        cols = L.uploads[up].cols;
        const int p = pick(10);
        if (p < 4) pub = {"m" + std::to_string(who) + "-" + std::to_string(pick(3)), "t" + std::to_string(++L.tag_seq)};
        else if (p == 4 && !L.tags.empty()) {  // a tag asked for before: 409, or a failed job if both got in
          auto it = L.tags.begin();
          std::advance(it, pick(int(L.tags.size())));
          pub = {it->substr(0, it->find(':')), it->substr(it->find(':') + 1)};
        } else if (p == 5) pub = {"r-" + std::to_string(pick(2)), "latest", true};
      }
      const char* methods[] = {"tt-token", "q8_0", "int8"};
      const std::string method = cols == 64 ? methods[pick(3)] : "tt-token";
      json j = {{"upload", up}, {"method", method}};
      if (method == "tt-token") j["params"] = json::parse(tt_params(cols));
      if (!pub.model.empty()) j["publish"] = {{"model", pub.model}, {"tag", pub.tag}, {"replace", pub.replace}};
      auto r = request(port, http::verb::post, pick(4) == 0 ? "/v1/jobs?wait=5" : "/v1/jobs", j.dump());
      // 422: the upload was deleted meanwhile; 409: the tag is taken; 503: the queue is full.
      if (note("job", r, {200, 202, 409, 422, 503}) && (r.status == 202 || r.status == 200)) {
        std::lock_guard lk(L.mu);
        L.jobs[r.js()["id"]] = pub;
        if (!pub.model.empty() && !pub.replace) L.tags.insert(pub.model + ":" + pub.tag);
      }
    } else if (dice < 78) {  // a device report
      json rep = {{"model", "m0-0"}, {"tag", "t1"}, {"artifact_sha256", std::string(64, 'a')}};
      auto r = request(port, http::verb::post, "/v1/devices/pi-" + std::to_string(who) + "/reports", rep.dump(),
                       {{"Content-Type", "application/json"}});
      if (note("report", r, {201}) && r.status == 201) {
        std::lock_guard lk(L.mu);
        L.reports.insert(std::to_string(r.js()["id"].get<int64_t>()));
      }
    } else if (dice < 95) {  // downloads: a job's artifact (bytes checked against their id), a manifest
      std::string id;
      {
        std::lock_guard lk(L.mu);
        if (L.jobs.empty()) continue;
        auto it = L.jobs.begin();
        std::advance(it, pick(int(L.jobs.size())));
        id = it->first;
      }
      auto r = request(port, http::verb::get, "/v1/jobs/" + id);
      if (!note("get_job", r, {200}) || r.status != 200) continue;
      const json jj = r.js();
      if (jj["state"] != "succeeded") continue;
      const std::string sha = jj["result"]["artifact"]["sha256"];
      auto a = request(port, http::verb::get, "/v1/artifacts/" + sha);
      if (note("download", a, {200}) && a.status == 200 && sha256_hex(a.body) != sha) {
        std::lock_guard lk(L.mu);
        L.unexpected.push_back("artifact " + sha + " downloaded with other bytes");
      }
      if (jj["result"].contains("published")) {
        auto m = request(port, http::verb::get, "/v1/models/" + jj["result"]["published"]["model"].get<std::string>() + "/latest");
        note("manifest", m, {200});
      }
    } else {  // delete an upload
      std::string id;
      {
        std::lock_guard lk(L.mu);
        if (L.uploads.size() < 4) continue;
        auto it = L.uploads.begin();
        std::advance(it, pick(int(L.uploads.size())));
        id = it->first;
        L.maybe_deleted.insert(id);
        L.uploads.erase(it);
      }
      auto r = request(port, http::verb::delete_, "/v1/uploads/" + id);
      if (note("delete", r, {204}) && r.status == 204) {
        std::lock_guard lk(L.mu);
        L.maybe_deleted.erase(id);
        L.deleted[id] = "";
      }
    }
  }
}

/// Waits until no job is queued or running (the requeued ones have ended).
bool quiesce(uint16_t port, double timeout_s) {
  auto t0 = Clock::now();
  while (since(t0) < timeout_s) {
    auto q = request(port, http::verb::get, "/v1/jobs?state=queued&limit=1");
    auto r = request(port, http::verb::get, "/v1/jobs?state=running&limit=1");
    if (q.status == 200 && r.status == 200 && q.js()["jobs"].empty() && r.js()["jobs"].empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// Every invariant of the header comment; returns what is wrong (empty: consistent).
std::vector<std::string> check_consistency(uint16_t port, const std::string& data, Ledger& L,
                                           std::set<std::string>& verified_blobs, int* orphans, int* orphan_dirs) {
  std::vector<std::string> bad;
  auto fail = [&](const std::string& s) {
    if (bad.size() < 20) bad.push_back(s);
  };
  const std::string db = data + "/tensorslm.db";
  std::lock_guard lk(L.mu);

  auto ic = query(db, "PRAGMA integrity_check");
  if (ic.size() != 1 || ic[0].empty() || ic[0][0] != "ok")
    fail("integrity_check: " + (ic.empty() || ic[0].empty() ? std::string("no answer") : ic[0][0]));

  auto blob_path = [&](const std::string& sha) { return data + "/blobs/" + sha.substr(0, 2) + "/" + sha; };
  auto blob_ok = [&](const std::string& sha) {
    if (verified_blobs.count(sha)) return fs::exists(blob_path(sha));
    if (!fs::exists(blob_path(sha)) || sha256_hex(file_bytes(blob_path(sha))) != sha) return false;
    verified_blobs.insert(sha);
    return true;
  };

  // Uploads: the database and the API agree with what the clients were told.
  std::map<std::string, std::string> rows;
  for (auto& r : query(db, "SELECT id, sha256, format FROM uploads")) rows[r[0]] = r.size() > 1 ? r[1] : "";
  for (auto& [id, u] : L.uploads) {
    auto it = rows.find(id);
    if (it == rows.end()) {
      fail("upload " + id + " got a 201 but has no row");
      continue;
    }
    if (it->second != u.sha) fail("upload " + id + " has sha256 " + it->second + ", not " + u.sha);
    if (!blob_ok(u.sha)) fail("upload " + id + ": blob " + u.sha + " missing or with other bytes");
    if (u.cols == 0 && !fs::exists(data + "/models/" + u.sha + "/gpt2-tiny/config.json") &&
        !fs::exists(data + "/models/" + u.sha + "/config.json"))
      fail("tar upload " + id + ": its extracted model directory is missing");
  }
  for (auto& [id, sha] : L.deleted)
    if (rows.count(id)) fail("upload " + id + " got a 204 on DELETE but is still there");
  // A sample through the API too.
  int sampled = 0;
  for (auto& [id, u] : L.uploads) {
    if (sampled++ >= 5) break;
    auto r = request(port, http::verb::get, "/v1/uploads/" + id);
    if (r.status != 200 || r.js()["sha256"] != u.sha) fail("GET /v1/uploads/" + id + " -> " + std::to_string(r.status));
  }

  // Jobs: every acknowledged one exists and has ended; every succeeded one has a verified artifact.
  struct JobRow {
    std::string state, result;
  };
  std::map<std::string, JobRow> jobs;
  for (auto& r : query(db, "SELECT id, state, result_json FROM jobs"))
    if (r.size() == 3) jobs[r[0]] = {r[1], r[2]};
  for (auto& [id, pub] : L.jobs) {
    auto it = jobs.find(id);
    if (it == jobs.end()) fail("job " + id + " got a 202 but has no row");
    else if (it->second.state == "queued" || it->second.state == "running") fail("job " + id + " is still " + it->second.state);
  }
  std::set<std::string> artifact_rows;
  for (auto& r : query(db, "SELECT sha256 FROM artifacts")) artifact_rows.insert(r[0]);
  std::map<std::string, std::string> job_artifact;  // succeeded job -> artifact sha
  for (auto& [id, j] : jobs) {
    if (j.state != "succeeded") continue;
    json res = json::parse(j.result, nullptr, false);
    if (res.is_discarded() || !res.contains("artifact")) {
      fail("succeeded job " + id + " has no artifact in its result");
      continue;
    }
    const std::string sha = res["artifact"]["sha256"];
    job_artifact[id] = sha;
    if (!artifact_rows.count(sha)) fail("succeeded job " + id + ": no artifacts row for " + sha);
    const bool known = verified_blobs.count(sha) > 0;
    if (!blob_ok(sha)) {
      fail("succeeded job " + id + ": artifact blob " + sha + " missing or with other bytes");
      continue;
    }
    if (!known) {
      try {
        if (check_artifact_file(blob_path(sha)).state != ArtifactIntegrity::State::kVerified)
          fail("artifact " + sha + " carries no content hash");
      } catch (const std::exception& e) {
        fail("artifact " + sha + " does not verify: " + e.what());
      }
    }
  }

  // No temp files.
  std::error_code ec;
  for (auto& e : fs::directory_iterator(data + "/tmp", ec)) fail("temp file left: " + e.path().string());
  for (auto& e : fs::recursive_directory_iterator(data + "/blobs", ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) fail("temp blob left: " + e.path().string());

  // Publishes.
  std::map<std::string, int> per_job, per_tag;
  for (auto& r : query(db, "SELECT model, tag, artifact_sha256, job_id FROM model_versions")) {
    if (r.size() != 4) {
      fail("model_versions: " + r[0]);
      continue;
    }
    const std::string& model = r[0], &tag = r[1], &sha = r[2], &job = r[3];
    ++per_job[job];
    if (model.rfind("r-", 0) != 0) ++per_tag[model + ":" + tag];
    auto it = job_artifact.find(job);
    if (it == job_artifact.end())
      fail("version " + model + ":" + tag + " was published by job " + job + ", which did not succeed (" +
           (jobs.count(job) ? jobs[job].state : std::string("no row")) + ")");
    else if (it->second != sha)
      fail("version " + model + ":" + tag + " names artifact " + sha + ", its job stored " + it->second);
  }
  for (auto& [job, n] : per_job)
    if (n > 1) fail("job " + job + " published " + std::to_string(n) + " versions");
  for (auto& [t, n] : per_tag)
    if (n > 1) fail(t + " was published " + std::to_string(n) + " times without replace");
  for (auto& [id, pub] : L.jobs)
    if (!pub.model.empty() && job_artifact.count(id) && !per_job.count(id))
      fail("job " + id + " succeeded but its publish of " + pub.model + ":" + pub.tag + " is missing");

  // Reports.
  std::set<std::string> reports;
  for (auto& r : query(db, "SELECT id FROM reports")) reports.insert(r[0]);
  for (auto& id : L.reports)
    if (!reports.count(id)) fail("report " + id + " got a 201 but has no row");

  // Blobs no row references (a kill between a blob's rename and its row).
  std::set<std::string> referenced = artifact_rows;
  std::set<std::string> rows_by_sha;
  for (auto& r : query(db, "SELECT sha256 FROM uploads")) rows_by_sha.insert(r[0]);
  referenced.insert(rows_by_sha.begin(), rows_by_sha.end());
  *orphans = 0;
  for (auto& e : fs::recursive_directory_iterator(data + "/blobs", ec))
    if (e.is_regular_file() && !referenced.count(e.path().filename().string())) ++*orphans;
  *orphan_dirs = 0;  // likewise extracted models whose upload row never came (or went)
  for (auto& e : fs::directory_iterator(data + "/models", ec))
    if (!rows_by_sha.count(e.path().filename().string())) ++*orphan_dirs;
  // The restart's sweep (server/store/orphan_sweep.h) removed them all.
  if (*orphans > 0) fail(std::to_string(*orphans) + " blob file(s) that no row references survived the restart");
  if (*orphan_dirs > 0) fail(std::to_string(*orphan_dirs) + " model director(ies) that no upload references survived the restart");

  if (request(port, http::verb::get, "/healthz").status != 200) fail("/healthz does not answer 200");
  return bad;
}

}  // namespace

TEST(ServerCrash, SigkillAtRandomMomentsKeepsEverythingConsistent) {
  const int kills = env_int("TSM_CRASH_KILLS", 20);
  const uint32_t seed = static_cast<uint32_t>(env_int("TSM_CRASH_SEED", static_cast<int>(std::random_device{}() & 0x7fffffff)));
  std::printf("crash consistency: %d kill points, TSM_CRASH_SEED=%u\n", kills, seed);
  std::mt19937 rng(seed);
  TempDir tmp;
  int rc = 0;
  sh("tar -C " + std::string(TSM_FIXTURES_DIR) + " -cf " + tmp.path + "/gpt2.tar gpt2-tiny", &rc);
  ASSERT_EQ(rc, 0);
  const std::string model_tar = file_bytes(tmp.path + "/gpt2.tar");
  const std::string data = tmp.path + "/data";
  ServerProcess srv(data);
  Ledger L;
  std::set<std::string> verified;
  std::vector<double> restart_s, quiesce_s, kill_at_s;
  int rounds_bad = 0, orphans = 0, orphan_dirs = 0, stale_temps = 0, kills_with_temps = 0;
  int64_t jobs_running_at_kill = 0;
  std::vector<std::string> failures;
  const auto t0 = Clock::now();

  for (int k = 0; k < kills; ++k) {
    // The workload, killed after a random 30-800 ms.
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 2; ++c)
      clients.emplace_back(client, srv.port(), std::ref(L), std::cref(model_tar), std::ref(stop), static_cast<uint32_t>(rng()), c);
    const double at = 0.03 + std::uniform_real_distribution<double>(0, 0.77)(rng);
    kill_at_s.push_back(at);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    srv.kill9();
    stop = true;
    for (auto& t : clients) t.join();
    // What the kill left for the restart to recover (proves the kills land mid-write).
    {
      std::error_code ec;
      int temps = 0;
      for (auto it = fs::directory_iterator(data + "/tmp", ec); !ec && it != fs::directory_iterator(); ++it) ++temps;
      stale_temps += temps;
      kills_with_temps += temps > 0;
      auto running = query(data + "/tensorslm.db", "SELECT COUNT(*) FROM jobs WHERE state='running'");
      if (!running.empty() && !running[0].empty()) jobs_running_at_kill += std::atoll(running[0][0].c_str());
    }

    // Restart on the same data, let the requeued jobs end, then check.
    auto tr = Clock::now();
    ASSERT_NO_FATAL_FAILURE(srv.start()) << "kill " << k;
    restart_s.push_back(since(tr));
    auto tq = Clock::now();
    const bool quiet = quiesce(srv.port(), 120);
    quiesce_s.push_back(since(tq));
    std::vector<std::string> bad = check_consistency(srv.port(), data, L, verified, &orphans, &orphan_dirs);
    if (!quiet) bad.insert(bad.begin(), "jobs still queued or running 120 s after the restart");
    if (!bad.empty()) {
      ++rounds_bad;
      std::string all;
      for (auto& b : bad) all += "\n  " + b;
      failures.push_back("after kill " + std::to_string(k) + " (at " + std::to_string(at) + " s):" + all);
      ADD_FAILURE() << failures.back() << "\nserver log:\n" << srv.log();
      if (rounds_bad >= 3) break;
    }
  }
  const double total = since(t0);
  {
    std::lock_guard lk(L.mu);
    for (auto& u : L.unexpected) ADD_FAILURE() << "unexpected answer: " << u;
  }

  // The run in figures (bench/crash_consistency.sh prints this).
  auto sorted = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  auto pct = [&](const std::vector<double>& v, double q) {
    auto s = sorted(v);
    return s.empty() ? 0.0 : s[std::min(s.size() - 1, static_cast<size_t>(q * double(s.size())))];
  };
  json ops = json::object();
  for (auto& [op, n] : L.acked) ops[op]["acked"] = n;
  for (auto& [op, n] : L.lost) ops[op]["lost_to_kill"] = n;
  const auto succeeded = query(data + "/tensorslm.db", "SELECT COUNT(*) FROM jobs WHERE state='succeeded'");
  const auto versions = query(data + "/tensorslm.db", "SELECT COUNT(*) FROM model_versions");
  json summary = {{"kills", static_cast<int>(restart_s.size())},
                  {"kills_requested", kills},
                  {"seed", seed},
                  {"seconds", total},
                  {"inconsistent_restarts", rounds_bad},
                  {"unexpected_answers", L.unexpected.size()},
                  {"failures", failures},
                  {"restart_s", {{"p50", pct(restart_s, 0.5)}, {"max", pct(restart_s, 1.0)}}},
                  {"drain_s", {{"p50", pct(quiesce_s, 0.5)}, {"max", pct(quiesce_s, 1.0)}}},
                  {"uploads_live", L.uploads.size()},
                  {"uploads_deleted", L.deleted.size()},
                  {"jobs_acked", L.jobs.size()},
                  {"jobs_succeeded", succeeded.empty() ? 0 : std::atoll(succeeded[0][0].c_str())},
                  {"model_versions", versions.empty() ? 0 : std::atoll(versions[0][0].c_str())},
                  {"reports", L.reports.size()},
                  {"orphan_blobs", orphans},
                  {"orphan_model_dirs", orphan_dirs},
                  {"at_kill", {{"temp_files", stale_temps}, {"kills_with_temp_files", kills_with_temps},
                               {"jobs_running", jobs_running_at_kill}}},
                  {"ops", ops}};
  std::printf("%s\n", summary.dump().c_str());
  if (const char* out = std::getenv("TSM_CRASH_JSON"); out && *out) write_bytes(out, summary.dump(2) + "\n");
  EXPECT_EQ(static_cast<int>(restart_s.size()), kills);
  // The workload did reach every kind of write before the kills (else the run proved little).
  for (const char* op : {"upload", "upload_large", "job", "report", "download"}) EXPECT_GT(L.acked[op], 0) << op;
  EXPECT_GT(summary["model_versions"].get<int64_t>(), 0);
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// A kill -9 between a job's publish and its final state leaves the job 'running' beside the model
// version it published (the server writes the two one after the other). Made here exactly: two
// publishing jobs succeed, the server stops, and their rows are put back as they were when the
// worker wrote 'running'. After the restart each job must succeed again with exactly one version:
// not fail on a clash with the tag it published itself, nor (with replace: true) publish twice.
TEST(ServerCrash, RestartAfterPublishBeforeEndPublishesOnce) {
  TempDir tmp;
  const std::string data = tmp.path + "/data";
  auto srv = std::make_unique<ServerProcess>(data);
  auto up = POST(srv->port(), "/v1/uploads", npy_of(test_matrix(64, 64)));
  ASSERT_EQ(up.status, 201) << up.body;
  auto job = [&](const std::string& model, bool replace) {
    json j = {{"upload", up.js()["id"]}, {"method", "tt-token"}, {"params", json::parse(tt_params(64))},
              {"publish", {{"model", model}, {"tag", "v1"}, {"replace", replace}}}};
    auto r = POST(srv->port(), "/v1/jobs?wait=60", j.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
    return r.js()["id"].get<std::string>();
  };
  const std::string a = job("plain", false), b = job("replaced", true);
  ASSERT_EQ(srv->stop(), 0);
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open((data + "/tensorslm.db").c_str(), &h), SQLITE_OK);
    const std::string sql = "UPDATE jobs SET state='running', progress=0, result_json='', timings_json='', finished_unix=0 "
                            "WHERE id IN ('" + a + "', '" + b + "')";
    ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
    EXPECT_EQ(sqlite3_changes(h), 2);
    sqlite3_close(h);
  }
  srv->start();
  ASSERT_TRUE(quiesce(srv->port(), 60));
  for (const auto& id : {a, b}) {
    auto j = GET(srv->port(), "/v1/jobs/" + id).js();
    EXPECT_EQ(j["state"], "succeeded") << j.dump();
    EXPECT_EQ(j["attempts"], 2) << j.dump();
  }
  auto rows = query(data + "/tensorslm.db", "SELECT model, tag, job_id FROM model_versions ORDER BY seq");
  ASSERT_EQ(rows.size(), 2u) << "model versions after the restart: " << rows.size();
  EXPECT_EQ(rows[0][0] + ":" + rows[0][1] + ":" + rows[0][2], "plain:v1:" + a);
  EXPECT_EQ(rows[1][0] + ":" + rows[1][1] + ":" + rows[1][2], "replaced:v1:" + b);
  EXPECT_EQ(GET(srv->port(), "/v1/models/replaced").js()["versions"].size(), 1u);
  EXPECT_EQ(srv->stop(), 0) << srv->log();
}
