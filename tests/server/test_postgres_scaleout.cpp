// Scale-out on PostgreSQL against real processes: tensorslm-server API and worker processes (their
// own data dirs, one shared blob dir) on one throw-away PostgreSQL cluster (tests/support/pg_cluster.h;
// skipped with a message when PostgreSQL is absent, a failure under CI=true). Covers: jobs submitted
// round-robin to two API processes are run once each by three worker processes and visible from both
// APIs, a ?wait long poll on one API process woken by a worker of another process; a worker killed
// with SIGKILL mid-job has its job taken over once its (short) lease expires, ending succeeded with
// attempts 2, one artifact and one publish; cancel through the other API process ends the job
// canceled; servers starting at once migrate once; /readyz follows the database going away and
// coming back, without a restart; the database restarted while jobs are queued and running loses
// none of them (each ends succeeded, one publish each) and every process recovers by itself;
// worker processes serve only /healthz, /readyz and /metrics.
#include <regex>

#include "server_harness.h"
#include "support/pg_cluster.h"

using namespace tsm;
using namespace tsm::test;

namespace {

using Server = tsm::testing::ServerProcess;

class ScaleOut : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = tsm::testing::PgCluster::skip_reason();
    if (!why.empty()) {
      if (tsm::testing::PgCluster::in_ci()) FAIL() << "CI=true: " << why;
      GTEST_SKIP() << why;
    }
    pg_ = std::make_unique<tsm::testing::PgCluster>();
    uri_ = pg_->uri(pg_->create_database("so"));
    blobs_ = tmp_.path + "/shared";
  }
  void TearDown() override {
    for (auto& s : servers_) s->stop();
    servers_.clear();
  }
  /// A server process of `role` on the shared database and blob dir (not started).
  Server& add(const std::string& role, std::vector<std::string> extra = {}) {
    const std::string dir = tmp_.path + "/p" + std::to_string(servers_.size());
    std::vector<std::string> args = {"--store", uri_, "--role", role, "--blob-dir", blobs_};
    args.insert(args.end(), extra.begin(), extra.end());
    servers_.push_back(std::make_unique<Server>(dir, std::vector<std::pair<std::string, std::string>>{}, args));
    return *servers_.back();
  }
  Server& start(const std::string& role, std::vector<std::string> extra = {}) {
    Server& s = add(role, std::move(extra));
    EXPECT_TRUE(s.start()) << s.log();
    return s;
  }

  TempDir tmp_;
  std::unique_ptr<tsm::testing::PgCluster> pg_;
  std::string uri_, blobs_;
  std::vector<std::unique_ptr<Server>> servers_;
};

std::string upload(uint16_t port, int64_t rows) {
  auto r = POST(port, "/v1/uploads", npy_of(test_matrix(rows, 768)));
  EXPECT_EQ(r.status, 201) << r.body;
  return r.js()["id"];
}

std::string submit(uint16_t port, const std::string& up, json extra = json::object()) {
  json j = {{"upload", up}, {"method", "tt-token"}, {"params", {{"shape", {8, 8, 12}}, {"ranks", {4, 4}}}}};
  j.update(extra);
  auto r = POST(port, "/v1/jobs", j.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  return r.status == 202 ? r.js()["id"].get<std::string>() : "";
}

/// The value of an unlabelled Prometheus sample (-1 when absent).
double metric(uint16_t port, const std::string& name) {
  const std::string body = GET(port, "/metrics").body;
  std::smatch m;
  if (std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+-]+)"))) return std::stod(m[1]);
  return -1;
}

bool is_running(const json& j) { return j["state"] == "running"; }

/// Polls `path` on `port` until its status is `want` (bounded: 60 s); returns the last status.
int poll_status(uint16_t port, const std::string& path, int want) {
  int st = 0;
  for (int i = 0; i < 600 && st != want; ++i) {
    try {
      st = GET(port, path).status;
    } catch (const std::exception&) {
      st = 0;
    }
    if (st != want) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return st;
}

}  // namespace

TEST_F(ScaleOut, JobsRoundRobinOverTwoApisRunOnceOnThreeWorkers) {
  Server& api1 = start("api");
  Server& api2 = start("api");
  Server& w1 = start("worker", {"--workers", "2"});
  Server& w2 = start("worker");
  Server& w3 = start("worker");
  ASSERT_TRUE(api1.port() && api2.port() && w1.port() && w2.port() && w3.port());
  // A worker serves nothing but the operations endpoints.
  EXPECT_EQ(GET(w1.port(), "/healthz").status, 200);
  EXPECT_EQ(GET(w1.port(), "/readyz").status, 200);
  EXPECT_EQ(GET(w1.port(), "/v1/jobs").status, 404);
  EXPECT_EQ(POST(w1.port(), "/v1/uploads", "x").status, 404);
  // The upload reaches api1; the jobs go to both APIs; the workers read the blob from the shared dir.
  const std::string up = upload(api1.port(), 200);
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(submit(i % 2 ? api2.port() : api1.port(), up));
  for (size_t i = 0; i < ids.size(); ++i) {
    // Waited for on the API process that did not receive it: woken through the database.
    auto r = GET(i % 2 ? api1.port() : api2.port(), "/v1/jobs/" + ids[i] + "?wait=300");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
    EXPECT_EQ(r.js()["attempts"], 1) << r.body;
    auto other = GET(i % 2 ? api2.port() : api1.port(), "/v1/jobs/" + ids[i]).js();
    EXPECT_EQ(other["state"], "succeeded");
    EXPECT_EQ(other["result"]["artifact"]["sha256"], r.js()["result"]["artifact"]["sha256"]);
  }
  // Each job claimed exactly once, all by the workers (the API processes claim none).
  const double c1 = metric(w1.port(), "tensorslm_queue_claims_total"), c2 = metric(w2.port(), "tensorslm_queue_claims_total"),
               c3 = metric(w3.port(), "tensorslm_queue_claims_total");
  EXPECT_EQ(c1 + c2 + c3, 30) << c1 << " + " << c2 << " + " << c3;
  EXPECT_EQ(metric(w3.port(), "tensorslm_queue_takeovers_total"), 0);
  EXPECT_EQ(metric(api1.port(), "tensorslm_queue_claims_total"), 0);
  EXPECT_EQ(metric(api2.port(), "tensorslm_queue_takeovers_total"), 0);
  EXPECT_EQ(metric(w1.port(), "tensorslm_queue_depth"), 0);
  auto list = GET(api2.port(), "/v1/jobs?state=succeeded&limit=100").js();
  EXPECT_EQ(list["jobs"].size(), 30u);
  // The artifact is downloadable from either API process.
  const std::string url = GET(api2.port(), "/v1/jobs/" + ids[0]).js()["result"]["artifact"]["url"];
  EXPECT_EQ(GET(api1.port(), url).status, 200);
  EXPECT_EQ(GET(api2.port(), url).status, 200);
}

TEST_F(ScaleOut, AKilledWorkersJobIsTakenOverAfterItsLease) {
  Server& api = start("api");
  Server& wa = start("worker", {"--lease-s", "3"});
  const std::string up = upload(api.port(), 30000);
  const std::string id = submit(api.port(), up, {{"publish", {{"model", "m"}, {"tag", "v1"}}}});
  ASSERT_EQ(poll_job(api.port(), id, is_running, 120)["state"], "running");
  Server& wb = start("worker", {"--lease-s", "3"});  // idle while wa holds the lease
  wa.kill9();
  auto r = GET(api.port(), "/v1/jobs/" + id + "?wait=600");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
  EXPECT_EQ(r.js()["attempts"], 2) << r.body;
  EXPECT_EQ(metric(wb.port(), "tensorslm_queue_takeovers_total"), 1);
  EXPECT_EQ(metric(wb.port(), "tensorslm_queue_lease_expiries_total"), 1);
  // One artifact, one publish.
  EXPECT_EQ(pg_->exec(uri_.substr(uri_.rfind('/') + 1), "SELECT COUNT(*) FROM artifacts").at(0), "1");
  auto m = GET(api.port(), "/v1/models/m").js();
  EXPECT_EQ(m["versions"].size(), 1u) << m.dump();
  EXPECT_EQ(GET(api.port(), "/v1/models/m/latest").status, 200);
}

TEST_F(ScaleOut, CancelThroughTheOtherApiProcess) {
  Server& api1 = start("api");
  Server& api2 = start("api");
  start("worker");
  const std::string up = upload(api1.port(), 30000);
  const std::string id = submit(api1.port(), up);
  ASSERT_EQ(poll_job(api1.port(), id, is_running, 120)["state"], "running");
  HttpResult waited;
  std::thread waiter([&] { waited = GET(api1.port(), "/v1/jobs/" + id + "?wait=300"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto d = http_request(api2.port(), http::verb::delete_, "/v1/jobs/" + id);
  EXPECT_EQ(d.status, 202) << d.body;
  waiter.join();
  ASSERT_EQ(waited.status, 200) << waited.body;
  EXPECT_EQ(waited.js()["state"], "canceled") << waited.body;
  EXPECT_EQ(GET(api2.port(), "/v1/jobs/" + id).js()["state"], "canceled");
  EXPECT_EQ(http_request(api2.port(), http::verb::delete_, "/v1/jobs/" + id).status, 409);
  // A queued job canceled through the other API process: 200 at once.
  const std::string a = submit(api1.port(), up), b = submit(api1.port(), up);
  auto db = http_request(api2.port(), http::verb::delete_, "/v1/jobs/" + b);
  EXPECT_TRUE(db.status == 200 || db.status == 202) << db.body;
  EXPECT_EQ(GET(api1.port(), "/v1/jobs/" + b + "?wait=300").js()["state"], "canceled");
  http_request(api1.port(), http::verb::delete_, "/v1/jobs/" + a);
  EXPECT_EQ(GET(api2.port(), "/v1/jobs/" + a + "?wait=300").js()["state"], "canceled");
}

TEST_F(ScaleOut, ServersStartingAtOnceMigrateOnce) {
  Server& a = add("all");
  Server& b = add("all");
  Server& c = add("all");
  bool ok_a = false, ok_b = false, ok_c = false;
  std::thread ta([&] { ok_a = a.start(); }), tb([&] { ok_b = b.start(); }), tc([&] { ok_c = c.start(); });
  ta.join();
  tb.join();
  tc.join();
  EXPECT_TRUE(ok_a) << a.log();
  EXPECT_TRUE(ok_b) << b.log();
  EXPECT_TRUE(ok_c) << c.log();
  const std::string db = uri_.substr(uri_.rfind('/') + 1);
  EXPECT_EQ(pg_->exec(db, "SELECT COUNT(*) FROM schema_migrations").at(0), "1");
  // Submitted to one, visible and finished from another.
  const std::string up = upload(a.port(), 200);
  const std::string id = submit(b.port(), up);
  auto r = GET(c.port(), "/v1/jobs/" + id + "?wait=300");
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
}

TEST_F(ScaleOut, ReadinessFollowsTheDatabaseAndRecoversWithoutARestart) {
  Server& api = start("api");
  Server& w = start("worker");
  EXPECT_EQ(GET(api.port(), "/readyz").status, 200);
  const std::string up = upload(api.port(), 200);
  pg_->stop();
  EXPECT_EQ(poll_status(api.port(), "/readyz", 503), 503);
  EXPECT_EQ(poll_status(w.port(), "/readyz", 503), 503);
  EXPECT_EQ(metric(w.port(), "tensorslm_store_up"), 0);
  EXPECT_EQ(GET(api.port(), "/healthz").status, 200);  // alive, not ready
  pg_->start();
  EXPECT_EQ(poll_status(api.port(), "/readyz", 200), 200);
  EXPECT_EQ(poll_status(w.port(), "/readyz", 200), 200);
  const std::string id = submit(api.port(), up);
  auto r = GET(api.port(), "/v1/jobs/" + id + "?wait=300");
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
}

// The database restarts (fast shutdown: every connection dropped) while one job runs and others
// wait: no process is restarted, every job ends succeeded with exactly one publish, and the
// processes serve and run jobs afterwards.
TEST_F(ScaleOut, ADatabaseRestartMidRunLosesNoJobAndProcessesRecover) {
  Server& api1 = start("api");
  Server& api2 = start("api");
  Server& w1 = start("worker", {"--lease-s", "5"});
  Server& w2 = start("worker", {"--lease-s", "5"});
  const std::string big = upload(api1.port(), 30000), small = upload(api2.port(), 200);
  std::vector<std::string> ids;
  auto publish = [](size_t i) { return json{{"publish", {{"model", "m"}, {"tag", "v" + std::to_string(i)}}}}; };
  for (size_t i = 0; i < 3; ++i) ids.push_back(submit(api1.port(), big, publish(ids.size())));
  for (size_t i = 0; i < 9; ++i) ids.push_back(submit(i % 2 ? api1.port() : api2.port(), small, publish(ids.size())));
  ASSERT_EQ(poll_job(api1.port(), ids[0], is_running, 120)["state"], "running");
  const std::string db = uri_.substr(uri_.rfind('/') + 1);
  const int queued = std::stoi(pg_->exec(db, "SELECT COUNT(*) FROM jobs WHERE state='queued'").at(0));
  pg_->stop();
  // Every process sees the database go away (its own background check), and keeps running.
  for (Server* s : {&api1, &api2, &w1, &w2}) EXPECT_EQ(poll_status(s->port(), "/readyz", 503), 503);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  pg_->start();
  for (Server* s : {&api1, &api2, &w1, &w2}) EXPECT_EQ(poll_status(s->port(), "/readyz", 200), 200) << s->log();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto r = GET(i % 2 ? api2.port() : api1.port(), "/v1/jobs/" + ids[i] + "?wait=600");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
  }
  EXPECT_GT(queued, 0);  // the restart came with jobs still waiting
  // Each job published exactly once: a run that lost its lease (or its connection at commit) wrote nothing.
  EXPECT_EQ(pg_->exec(db, "SELECT COUNT(*) FROM jobs").at(0), std::to_string(ids.size()));
  EXPECT_EQ(pg_->exec(db, "SELECT COUNT(*) FROM jobs WHERE state='succeeded'").at(0), std::to_string(ids.size()));
  EXPECT_EQ(pg_->exec(db, "SELECT COUNT(*) FROM model_versions").at(0), std::to_string(ids.size()));
  EXPECT_EQ(pg_->exec(db, "SELECT COUNT(DISTINCT job_id) FROM model_versions").at(0), std::to_string(ids.size()));
  EXPECT_EQ(GET(api2.port(), "/v1/models/m").js()["versions"].size(), ids.size());
  // Recovered without a restart: a new job through either API runs.
  const std::string id = submit(api2.port(), small);
  auto r = GET(api1.port(), "/v1/jobs/" + id + "?wait=300");
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
  EXPECT_EQ(metric(w1.port(), "tensorslm_store_up"), 1);
}

TEST_F(ScaleOut, RolesOtherThanAllNeedASharedStore) {
  Server s(tmp_.path + "/solo", {}, {"--role", "worker"});
  EXPECT_FALSE(s.start());
  EXPECT_NE(s.log().find("needs a shared store"), std::string::npos) << s.log();
}
