// The agent against the real tensorslm-server on loopback: a fixture model published by a real
// job is pulled with --once, a workload runs and the report appears in /v1/reports with sane
// figures; server down -> reports spool, server back -> delivered once, in order; a corrupted
// artifact (sha mismatch) is rejected, the previous model kept and the error reported; so is one
// whose sha256 matches its manifest but whose content hash does not (damaged before it was named).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/sha256.h"
#include "lib/agent.h"
#include "lib/http_client.h"
#include "lib/tar_writer.h"
#include "support/loopback_server.h"
#include "support/server_process.h"

using namespace tsm::client;
using json = nlohmann::json;
using tsm::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny";

fs::path fresh(const std::string& n) {
  auto d = fs::temp_directory_path() / ("tsm_agent_" + n + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

HttpOptions opts(const std::string& url) {
  HttpOptions o;
  o.server = url;
  o.max_attempts = 2;
  o.backoff_base = std::chrono::milliseconds(10);
  o.backoff_max = std::chrono::milliseconds(50);
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.io_timeout = std::chrono::milliseconds(60000);
  return o;
}

/// Uploads the gpt2-tiny fixture as a tar; returns the upload id.
std::string upload_fixture(HttpClient& c, const fs::path& work) {
  const auto tar = (work / "gpt2-tiny.tar").string();
  write_tar(kFixture, tar);
  auto r = c.upload_file("/v1/uploads?format=tar&name=gpt2-tiny", tar, "application/x-tar");
  return json::parse(r.body).at("id").get<std::string>();
}

/// A real tt-token job on the embedding, published as model:tag; returns the artifact sha256.
std::string publish(HttpClient& c, const std::string& upload, const std::string& model, const std::string& tag, double eps) {
  json body = {{"upload", upload},
               {"method", "tt-token"},
               {"tensors", {"transformer.wte.weight"}},
               {"params", {{"shape", {4, 4, 4}}, {"eps", eps}}},
               {"publish", {{"model", model}, {"tag", tag}}}};
  json j = json::parse(c.post_json("/v1/jobs?wait=120", body.dump()).body);
  EXPECT_EQ(j.value("state", ""), "succeeded") << j.dump();
  json m = json::parse(c.get("/v1/models/" + model + "/latest").body);
  return m.at("sha256").get<std::string>();
}

std::string agent_config_json(const std::string& url, const fs::path& data, const std::vector<std::string>& models,
                              bool dense_ab, double idle_s) {
  json c = {{"server", url},
            {"device_id", "pi-test-1"},
            {"models", models},
            {"poll_interval_s", 1},
            {"data_dir", data.string()},
            {"http", {{"max_attempts", 2}, {"backoff_base_ms", 10}, {"backoff_max_ms", 50}, {"connect_timeout_ms", 1000}}},
            {"workload",
             {{"token_ids", {{464, 313, 286, 481}, {17, 18, 19}}},
              {"max_new_tokens", 4},
              {"warmup", 1},
              {"repetitions", 2},
              {"threads", 1},
              {"idle_s", idle_s},
              {"dense_ab", dense_ab}}},
            {"runtime", {{"embedding", "auto"}, {"head", "materialize"}, {"base_model_dir", kFixture}}},
            // A configured model-meter fit: real /proc/stat utilisation on any CI machine.
            {"energy", {{"source", "model"}, {"model_idle_w", 3.0}, {"model_max_w", 9.0}}}};
  return "// written by test_agent_server\n" + c.dump(2);
}

json reports(HttpClient& c, const std::string& model) {
  return json::parse(c.get("/v1/reports?model=" + model + "&limit=100").body).at("reports");
}

}  // namespace

class AgentServer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ServerProcess::available()) GTEST_SKIP() << ServerProcess::binary() << " is not built";
  }
};

TEST_F(AgentServer, OncePullsPublishedModelRunsWorkloadAndReports) {
  auto work = fresh("once");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  const std::string sha = publish(c, upload_fixture(c, work), "gpt2-tiny-tt", "v1", 0.2);
  ASSERT_EQ(sha.size(), 64u);

  const auto cfg = (work / "agent.json").string();
  tsm::write_file_atomic(cfg, agent_config_json(srv.url(), work / "agent", {"gpt2-tiny-tt"}, true, 0.3));
  const std::string agent = std::string(TSM_BIN_DIR) + "/tensorslm-agent";
  const std::string cmd = agent + " --config " + cfg + " --once 2>" + (work / "agent.log").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << tsm::read_file((work / "agent.log").string());

  json reps = reports(c, "gpt2-tiny-tt");
  ASSERT_EQ(reps.size(), 1u) << reps.dump(2);
  const json& r = reps[0]["report"];
  EXPECT_EQ(reps[0]["device"], "pi-test-1");
  EXPECT_EQ(r["artifact_sha256"], sha);
  EXPECT_EQ(r["tag"], "v1");
  EXPECT_EQ(r["device"]["agent_version"], TSM_VERSION);
  EXPECT_GT(std::stoull(r["device"]["mem_bytes"].get<std::string>()), 0u);  // uint64 is a string in proto3 JSON
  EXPECT_FALSE(r.contains("error")) << r.dump(2);
  ASSERT_EQ(r["runs"].size(), 2u) << r.dump(2);  // compressed + dense A/B
  for (const auto& run : r["runs"]) {
    SCOPED_TRACE(run.value("variant", "?"));
    ASSERT_EQ(run["queries"].size(), 4u);  // 2 prompts x 2 repetitions
    for (const auto& q : run["queries"]) {
      EXPECT_EQ(q["tokens"], 4);
      EXPECT_GT(q["ttft_ms"].get<double>(), 0);
      EXPECT_GE(q["total_ms"].get<double>(), q["ttft_ms"].get<double>());
    }
    EXPECT_GT(run["p50_ms"].get<double>(), 0);
    EXPECT_LE(run["p50_ms"].get<double>(), run["p90_ms"].get<double>());
    EXPECT_LE(run["p90_ms"].get<double>(), run["p99_ms"].get<double>());
    EXPECT_GT(run["tokens_per_s"].get<double>(), 0);
    EXPECT_GT(run["cold_start_s"].get<double>(), 0);
    EXPECT_GT(std::stoull(run["peak_rss_bytes"].get<std::string>()), 1u << 20);
    const json& e = run["energy"];
    EXPECT_EQ(e["source"], "model");
    EXPECT_DOUBLE_EQ(e["uncertainty_rel"].get<double>(), 0.25);
    // The configured fit bounds mean power to [3, 9] W, and idle to the same range. 10% slack: the
    // window here is a few milliseconds, and the clock reads that bracket the meter's two
    // /proc/stat reads make it up to a few hundred microseconds longer than the metered interval.
    EXPECT_GE(e["mean_watts"].get<double>(), 3.0 * 0.9);
    EXPECT_LE(e["mean_watts"].get<double>(), 9.0 * 1.1);
    EXPECT_GE(e["idle_watts"].get<double>(), 3.0 - 1e-9);
    EXPECT_NEAR(e["joules_per_query"].get<double>() * 4, e["mean_watts"].get<double>() * e["window_s"].get<double>(), 1e-6);
  }
  EXPECT_EQ(r["runs"][0]["variant"], "compressed");
  EXPECT_EQ(r["runs"][1]["variant"], "dense");
  EXPECT_TRUE(fs::exists(work / "agent" / "models" / (sha + ".tsm")));

  // Unchanged manifest (304): a second --once reports nothing new.
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(reports(c, "gpt2-tiny-tt").size(), 1u);
  srv.stop();
  fs::remove_all(work);
}

TEST_F(AgentServer, ServerDownSpoolsThenDeliversOnceInOrder) {
  auto work = fresh("spool");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  const std::string up = upload_fixture(c, work);
  const std::string sha_a = publish(c, up, "model-a", "v1", 0.3);
  const std::string sha_b = publish(c, up, "model-b", "v1", 0.1);
  ASSERT_NE(sha_a, sha_b);
  const int port = srv.port();

  auto cfg = parse_agent_config(agent_config_json(srv.url(), work / "agent", {"model-a", "model-b"}, false, 1.5));
  Agent agent(cfg);
  // Let the cycle download both artifacts, then take the server down before the reports go out
  // (the 1.5 s idle-baseline window of model-b leaves time).
  std::thread killer([&] {
    const auto b = work / "agent" / "models" / (sha_b + ".tsm");
    for (int i = 0; i < 6000 && !fs::exists(b); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    srv.stop();
  });
  CycleStats st = agent.run_once();
  killer.join();
  EXPECT_EQ(st.updated, 2);
  EXPECT_EQ(st.delivered, 0u);
  EXPECT_EQ(st.spooled, 2u);

  // Still down: nothing delivered, nothing lost.
  st = agent.run_once();
  EXPECT_EQ(st.spooled, 2u);

  ASSERT_TRUE(srv.start(port));  // back, same data
  st = agent.run_once();
  EXPECT_EQ(st.delivered, 2u);
  EXPECT_EQ(st.spooled, 0u);
  st = agent.run_once();
  EXPECT_EQ(st.delivered, 0u);

  json ra = reports(c, "model-a"), rb = reports(c, "model-b");
  ASSERT_EQ(ra.size(), 1u);  // exactly once
  ASSERT_EQ(rb.size(), 1u);
  EXPECT_LT(ra[0]["id"].get<int64_t>(), rb[0]["id"].get<int64_t>());  // in order: a was measured first
  EXPECT_EQ(ra[0]["report"]["artifact_sha256"], sha_a);
  EXPECT_EQ(rb[0]["report"]["artifact_sha256"], sha_b);
  srv.stop();
  fs::remove_all(work);
}

// remeasure_interval_s: an unchanged model is measured again once the interval has passed (and not
// before), the report names the same artifact, and the clock survives a restart (state.json).
TEST_F(AgentServer, RemeasuresTheCurrentModelOnItsInterval) {
  auto work = fresh("remeasure");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  const std::string sha = publish(c, upload_fixture(c, work), "model-r", "v1", 0.3);
  json cj = json::parse(agent_config_json(srv.url(), work / "agent", {"model-r"}, false, 0.0), nullptr, true,
                        /*ignore_comments=*/true);
  cj["remeasure_interval_s"] = 3;
  const AgentConfig cfg = parse_agent_config(cj.dump());
  {
    Agent agent(cfg);
    CycleStats st = agent.run_once();
    EXPECT_EQ(st.updated, 1);
    EXPECT_EQ(st.workloads, 1);
    st = agent.run_once();  // 304, interval not over
    EXPECT_EQ(st.workloads, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));
  Agent restarted(cfg);
  CycleStats st = restarted.run_once();
  EXPECT_EQ(st.updated, 0);
  EXPECT_EQ(st.workloads, 1) << (st.errors.empty() ? "" : st.errors[0]);
  EXPECT_EQ(restarted.run_once().workloads, 0);
  json reps = reports(c, "model-r");
  ASSERT_EQ(reps.size(), 2u) << reps.dump(2);
  for (const auto& r : reps) {
    EXPECT_EQ(r["report"]["artifact_sha256"], sha);
    EXPECT_FALSE(r["report"].contains("error")) << r.dump(2);
    EXPECT_EQ(r["report"]["runs"].size(), 1u);
  }
  srv.stop();
  fs::remove_all(work);
}

TEST_F(AgentServer, CorruptedArtifactIsRejectedAndPreviousModelKept) {
  auto work = fresh("corrupt");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  const std::string up = upload_fixture(c, work);
  const std::string v1 = publish(c, up, "gpt2-tiny-tt", "v1", 0.3);
  auto cfg = parse_agent_config(agent_config_json(srv.url(), work / "agent", {"gpt2-tiny-tt"}, false, 0));
  Agent agent(cfg);
  CycleStats st = agent.run_once();
  ASSERT_EQ(st.updated, 1) << (st.errors.empty() ? "" : st.errors[0]);
  ASSERT_EQ(agent.state().at("gpt2-tiny-tt").sha256, v1);

  const std::string v2 = publish(c, up, "gpt2-tiny-tt", "v2", 0.1);
  ASSERT_NE(v1, v2);
  // Corrupt v2's blob in the server's content-addressed store (same size, one byte flipped).
  const fs::path blob = fs::path(srv.data_dir()) / "blobs" / v2.substr(0, 2) / v2;
  ASSERT_TRUE(fs::exists(blob)) << blob;
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char ch;
    f.get(ch);
    f.seekp(100);
    f.put(static_cast<char>(ch ^ 0x5a));
  }
  st = agent.run_once();
  EXPECT_EQ(st.rejected, 1);
  EXPECT_EQ(st.updated, 0);
  EXPECT_EQ(st.delivered, 1u);
  // The previous model keeps serving: state and file unchanged, nothing of v2 left on disk.
  EXPECT_EQ(agent.state().at("gpt2-tiny-tt").sha256, v1);
  EXPECT_TRUE(fs::exists(work / "agent" / "models" / (v1 + ".tsm")));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(work / "agent" / "models")) {
    ++files;
    EXPECT_EQ(e.path().filename().string(), v1 + ".tsm");
  }
  EXPECT_EQ(files, 1u);
  json reps = reports(c, "gpt2-tiny-tt");
  ASSERT_EQ(reps.size(), 2u);
  json err;
  for (const auto& r : reps)
    if (r["report"].contains("error")) err = r["report"];
  ASSERT_FALSE(err.is_null()) << reps.dump(2);
  EXPECT_EQ(err["artifact_sha256"], v2);
  EXPECT_EQ(err["tag"], "v2");
  EXPECT_NE(err["error"].get<std::string>().find("sha256"), std::string::npos) << err["error"];
  // Reported once: the next poll does not download or report the same bad artifact again.
  st = agent.run_once();
  EXPECT_EQ(st.rejected, 0);
  EXPECT_EQ(reports(c, "gpt2-tiny-tt").size(), 2u);
  srv.stop();
  fs::remove_all(work);
}

// The server's sha256 names whatever bytes it holds; the content hash inside the artifact says they
// are the bytes the writer wrote. A blob damaged before it was named (here: a real artifact from the
// real server with one byte flipped, served by a stand-in whose manifest names the damaged bytes
// exactly) passes the download check, and the agent must still refuse it once it is on disk.
TEST_F(AgentServer, ArtifactWhoseContentHashFailsIsRefusedAfterDownload) {
  auto work = fresh("content_hash");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  const std::string good_sha = publish(c, upload_fixture(c, work), "gpt2-tiny-tt", "v1", 0.3);
  std::string bytes = c.get("/v1/artifacts/" + good_sha).body;
  srv.stop();
  ASSERT_GT(bytes.size(), 1000u);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  const std::string bad_sha = tsm::sha256_hex(bytes);

  std::vector<std::string> posted;  // serialized DeviceReports
  std::mutex mu;
  tsm::testing::LoopbackServer stand_in([&](const auto& req) {
    const std::string target(req.target());
    tsm::testing::Reply r;
    if (target == "/v1/models/gpt2-tiny-tt/latest") {
      r.body = json{{"model", "gpt2-tiny-tt"}, {"tag", "v1"}, {"sha256", bad_sha}, {"size_bytes", bytes.size()},
                    {"url", "/v1/artifacts/" + bad_sha}}.dump();
      r.headers = {{"ETag", "\"" + bad_sha + "\""}, {"Content-Type", "application/json"}};
    } else if (target == "/v1/artifacts/" + bad_sha) {
      r.body = bytes;
    } else if (target.rfind("/v1/devices/", 0) == 0) {
      std::lock_guard lk(mu);
      posted.push_back(req.body());
      r.status = 201;
      r.body = "{}";
    } else {
      r.status = 404;
    }
    return r;
  });
  Agent agent(parse_agent_config(agent_config_json(stand_in.url(), work / "agent", {"gpt2-tiny-tt"}, false, 0)));
  CycleStats st = agent.run_once();
  EXPECT_EQ(st.rejected, 1);
  EXPECT_EQ(st.updated, 0);
  EXPECT_EQ(st.workloads, 0);  // refused before any load
  ASSERT_EQ(st.errors.size(), 1u);
  EXPECT_NE(st.errors[0].find("content hash mismatch"), std::string::npos) << st.errors[0];
  EXPECT_EQ(agent.state().at("gpt2-tiny-tt").sha256, "");  // no model adopted
  EXPECT_TRUE(fs::is_empty(work / "agent" / "models"));    // the refused file is gone
  {
    std::lock_guard lk(mu);
    ASSERT_EQ(posted.size(), 1u);
    tensorslm::v1::DeviceReport rep;
    ASSERT_TRUE(rep.ParseFromString(posted[0]));
    EXPECT_EQ(rep.artifact_sha256(), bad_sha);
    EXPECT_NE(rep.error().find("content hash mismatch"), std::string::npos) << rep.error();
  }
  // Reported once: the next poll neither downloads nor reports the same artifact again.
  st = agent.run_once();
  EXPECT_EQ(st.rejected, 0);
  std::lock_guard lk(mu);
  EXPECT_EQ(posted.size(), 1u);
  fs::remove_all(work);
}

TEST_F(AgentServer, DaemonReportsThenStopsCleanlyOnSigterm) {
  auto work = fresh("daemon");
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  HttpClient c(opts(srv.url()));
  publish(c, upload_fixture(c, work), "gpt2-tiny-tt", "v1", 0.3);
  const auto cfg = (work / "agent.json").string();
  tsm::write_file_atomic(cfg, agent_config_json(srv.url(), work / "agent", {"gpt2-tiny-tt"}, false, 0));
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::freopen((work / "agent.log").c_str(), "w", stderr);
    (void)f;
    const std::string bin = std::string(TSM_BIN_DIR) + "/tensorslm-agent";
    ::execl(bin.c_str(), "tensorslm-agent", "--config", cfg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool reported = false;
  for (int i = 0; i < 600 && !reported; ++i) {  // up to 60 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    reported = reports(c, "gpt2-tiny-tt").size() == 1;
  }
  EXPECT_TRUE(reported);
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st)) << "agent did not exit normally";
  EXPECT_EQ(WEXITSTATUS(st), 0) << tsm::read_file((work / "agent.log").string());
  EXPECT_NE(tsm::read_file((work / "agent.log").string()).find("stopping; flushed"), std::string::npos);
  EXPECT_EQ(reports(c, "gpt2-tiny-tt").size(), 1u);  // polled again meanwhile (304): no duplicate
  srv.stop();
  fs::remove_all(work);
}
