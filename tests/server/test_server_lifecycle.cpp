// Job lifecycle against real server processes: cancel a running job, graceful SIGTERM puts a
// running job back to 'queued', kill -9 while running -> requeued at restart and finished, the
// quality gate fails a job, auth scopes (401/403) and refusing a non-loopback bind without tokens.
#include "support/test_paths.h"
#include "common/sha256.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

// Large enough that a job runs for a while on the CI machine (2 cores).
std::string long_job(uint16_t port, const std::string& up, int priority = 0) {
  json j = {{"upload", up}, {"method", "tt-token"}, {"params", {{"shape", {8, 8, 12}}, {"ranks", {4, 4}}}}, {"priority", priority}};
  auto r = POST(port, "/v1/jobs", j.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.header("location"), "/v1/jobs/" + r.js()["id"].get<std::string>());
  return r.js()["id"];
}

std::string upload(uint16_t port, int64_t rows) {
  auto r = POST(port, "/v1/uploads", npy_of(test_matrix(rows, 768)));
  EXPECT_EQ(r.status, 201) << r.body;
  return r.js()["id"];
}

bool is_running(const json& j) { return j["state"] == "running"; }
bool is_final(const json& j) {
  return j["state"] == "succeeded" || j["state"] == "failed" || j["state"] == "canceled";
}

}  // namespace

TEST(ServerLifecycle, CancelQueuedAndRunningJobs) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  std::string up = upload(srv.port(), 30000);
  std::string a = long_job(srv.port(), up);
  std::string b = long_job(srv.port(), up);  // queued behind a (one worker)
  ASSERT_EQ(poll_job(srv.port(), a, is_running)["state"], "running");

  // A client that gives up on ?wait= is noticed at once (499 in the metrics, the reply dropped),
  // not when the job ends.
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket s(ioc);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), srv.port()});
    boost::asio::write(s, boost::asio::buffer("GET /v1/jobs/" + a + "?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const std::string gone = "tensorslm_http_requests_total{route=\"/v1/jobs/{id}\",status=\"499\"} 1";
  std::string metrics;
  for (int i = 0; i < 100 && metrics.find(gone) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    metrics = GET(srv.port(), "/metrics").body;
  }
  EXPECT_NE(metrics.find(gone), std::string::npos) << metrics;
  EXPECT_EQ(GET(srv.port(), "/v1/jobs/" + a).js()["state"], "running");

  auto rb = http_request(srv.port(), http::verb::delete_, "/v1/jobs/" + b);
  EXPECT_EQ(rb.status, 200) << rb.body;
  EXPECT_EQ(rb.js()["state"], "canceled");
  auto ra = http_request(srv.port(), http::verb::delete_, "/v1/jobs/" + a);
  EXPECT_EQ(ra.status, 202) << ra.body;
  EXPECT_TRUE(ra.js()["cancel_requested"].get<bool>());
  json j = poll_job(srv.port(), a, is_final, 60);
  EXPECT_EQ(j["state"], "canceled") << j.dump();
  EXPECT_EQ(http_request(srv.port(), http::verb::delete_, "/v1/jobs/" + a).status, 409);
  EXPECT_EQ(http_request(srv.port(), http::verb::delete_, "/v1/jobs/j_0123456789abcdef").status, 404);
}

TEST(ServerLifecycle, ShutdownAndKill9RequeueAndFinish) {
  TempDir tmp;
  auto srv = std::make_unique<ServerProcess>(tmp.path + "/data");
  std::string up = upload(srv->port(), 30000);
  std::string id = long_job(srv->port(), up);
  ASSERT_EQ(poll_job(srv->port(), id, is_running)["state"], "running");
  // Graceful: the running job is checkpointed back to queued.
  EXPECT_EQ(srv->stop(), 0);
  EXPECT_NE(srv->log().find("queued again"), std::string::npos) << srv->log();
  srv->start();
  ASSERT_EQ(poll_job(srv->port(), id, is_running)["state"], "running");
  // Crash: kill -9 mid-run; at start-up the job goes back to queued and runs to the end.
  srv->kill9();
  srv->start();
  EXPECT_NE(srv->log().find("were running when the server stopped"), std::string::npos) << srv->log();
  auto r = GET(srv->port(), "/v1/jobs/" + id + "?wait=240");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
  EXPECT_GE(r.js()["attempts"].get<int>(), 3);
  EXPECT_EQ(GET(srv->port(), r.js()["result"]["artifact"]["url"].get<std::string>()).status, 200);
  EXPECT_EQ(count_files(srv->data_dir() + "/tmp"), 0);
}

TEST(ServerLifecycle, QualityGateFailsTheJob) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  std::string up = upload(srv.port(), 200);
  json j = {{"upload", up}, {"method", "tt-token"}, {"params", {{"shape", {8, 8, 12}}, {"ranks", {1, 1}}}},
            {"quality_gate", {{"max_rel_error", 1e-4}}}, {"publish", {{"model", "m"}, {"tag", "v1"}}}};
  auto r = POST(srv.port(), "/v1/jobs?wait=60", j.dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.js()["state"], "failed");
  EXPECT_NE(r.js()["error"].get<std::string>().find("max_rel_error"), std::string::npos);
  EXPECT_EQ(GET(srv.port(), "/v1/models/m/latest").status, 404);  // a failed gate publishes nothing
  j["quality_gate"]["max_rel_error"] = 0.9999;
  EXPECT_EQ(POST(srv.port(), "/v1/jobs?wait=60", j.dump()).js()["state"], "succeeded");
  EXPECT_EQ(GET(srv.port(), "/v1/models/m/latest").status, 200);
}

TEST(ServerLifecycle, BearerTokensAndScopes) {
  TempDir tmp;
  std::string cfg = tmp.path + "/server.json";
  write_bytes(cfg, "// test config\n{\"tokens\": [\n"
                   "  {\"name\": \"ci\", \"sha256\": \"" + sha256_hex("ci-secret") + "\", \"scopes\": [\"ci\"]},\n"
                   "  {\"name\": \"pi\", \"sha256\": \"" + sha256_hex("pi-secret") + "\", \"scopes\": [\"device\"], \"devices\": [\"pi\"]}]}\n");
  ServerProcess srv(tmp.path + "/data", {}, {"--config", cfg});
  const std::map<std::string, std::string> ci = {{"Authorization", "Bearer ci-secret"}};
  const std::map<std::string, std::string> pi = {{"Authorization", "Bearer pi-secret"}};
  std::string m = npy_of(test_matrix(8, 96));
  EXPECT_EQ(POST(srv.port(), "/v1/uploads", m).status, 401);
  EXPECT_EQ(POST(srv.port(), "/v1/uploads", m, {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(POST(srv.port(), "/v1/uploads", m, pi).status, 403);
  EXPECT_EQ(POST(srv.port(), "/v1/uploads", m, ci).status, 201);
  EXPECT_EQ(GET(srv.port(), "/v1/models", pi).status, 200);
  EXPECT_EQ(GET(srv.port(), "/v1/jobs", pi).status, 403);
  EXPECT_EQ(POST(srv.port(), "/v1/devices/pi/reports", "{\"model\": \"m\"}", pi).status, 201);
  EXPECT_EQ(POST(srv.port(), "/v1/devices/pi/reports", "{\"model\": \"m\"}", ci).status, 403);
  EXPECT_EQ(POST(srv.port(), "/v1/devices/other/reports", "{\"model\": \"m\"}", pi).status, 403);  // not its device
  EXPECT_EQ(GET(srv.port(), "/healthz").status, 200);
  EXPECT_EQ(srv.log().find("ci-secret"), std::string::npos);  // tokens never logged
}

TEST(ServerLifecycle, RefusesPublicBindWithoutTokens) {
  TempDir tmp;
  int rc = 0;
  std::string out = sh(std::string(TSM_BIN_DIR) + "/tensorslm-server --listen 0.0.0.0:0 --data-dir " + tmp.path + " 2>&1", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("without tokens"), std::string::npos) << out;
  out = sh(std::string(TSM_BIN_DIR) + "/tensorslm-server --listen 127.0.0.1:0 --data-dir " + tmp.path +
               " --config /nonexistent.json 2>&1",
           &rc);
  EXPECT_EQ(rc, 1);
}
