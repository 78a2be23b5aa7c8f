// Deterministic, self-verifying artifacts through real tensorslm-server processes: identical jobs
// give the same artifact sha256 (twice on one server, and on two servers with 1 and 2 codec threads),
// for a single tensor and for a whole model with its quality measured; the stored artifact carries a
// content hash that verifies and no creation time, which the API takes from the database instead.
#include "support/test_paths.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

/// A server whose config file sets codec_threads.
std::unique_ptr<ServerProcess> server_with_threads(const std::string& dir, int codec_threads) {
  fs::create_directories(dir);
  const std::string cfg = dir + "/server.json";
  write_bytes(cfg, json{{"codec_threads", codec_threads}, {"workers", 1}}.dump());
  return std::make_unique<ServerProcess>(dir + "/data", std::vector<std::pair<std::string, std::string>>{},
                                         std::vector<std::string>{"--config", cfg});
}

std::string upload(uint16_t port, const std::string& body, const std::string& type) {
  auto r = POST(port, "/v1/uploads?name=x", body, {{"Content-Type", type}});
  EXPECT_EQ(r.status, 201) << r.body;
  return r.js().value("id", "");
}

json run_job(uint16_t port, const json& body) {
  auto r = POST(port, "/v1/jobs?wait=300", body.dump(), {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200) << r.body;
  json j = r.js();
  EXPECT_EQ(j.value("state", ""), "succeeded") << r.body;
  return j;
}

std::string gpt2_tar(const std::string& dir) {
  int rc = 0;
  sh("tar -C " + std::string(TSM_FIXTURES_DIR) + " -cf " + dir + "/gpt2.tar gpt2-tiny", &rc);
  EXPECT_EQ(rc, 0);
  std::ifstream in(dir + "/gpt2.tar", std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace

TEST(ArtifactDeterminism, IdenticalJobsGiveTheSameArtifactWhateverTheCodecThreads) {
  TempDir tmp;
  const std::string npy = npy_of(test_matrix(512, 96));
  const std::string tar = gpt2_tar(tmp.path);
  auto one = server_with_threads(tmp.path + "/one", 1);
  auto two = server_with_threads(tmp.path + "/two", 2);

  // tt-token with the baselines, saten (TT + 2:4 residual, refined), q4_0: each a single tensor.
  const std::vector<json> tensor_jobs = {
      {{"method", "tt-token"}, {"params", {{"shape", {4, 4, 6}}, {"ranks", {4, 4}}}}},
      {{"method", "saten"}, {"params", {{"ranks", 4}, {"sparsity", "2:4"}}}},
      {{"method", "q4_0"}, {"params", json::object()}}};
  // A whole model, quality measured: the KL figures are in the bytes too.
  const json model_job = {{"whole_model", true}, {"tensors", {R"(mlp\..*weight$)"}}, {"method", "int8"}, {"params", json::object()},
                          {"evaluation", {{"tokens", 32}, {"length", 16}}}};

  std::map<std::string, std::vector<std::string>> shas;  // job -> artifact sha256 per run
  for (auto* srv : {one.get(), two.get(), two.get()}) {
    const std::string u = upload(srv->port(), npy, "application/x-npy");
    for (json body : tensor_jobs) {
      body["upload"] = u;
      json j = run_job(srv->port(), body);
      shas[body["method"]].push_back(j["result"]["artifact"]["sha256"]);
    }
    json body = model_job;
    body["upload"] = upload(srv->port(), tar, "application/x-tar");
    json j = run_job(srv->port(), body);
    EXPECT_GT(j["result"]["quality"]["tokens"].get<int>(), 0) << j.dump();
    shas["whole model"].push_back(j["result"]["artifact"]["sha256"]);
  }
  for (const auto& [job, s] : shas) {
    SCOPED_TRACE(job);
    ASSERT_EQ(s.size(), 3u);
    EXPECT_EQ(s[0].size(), 64u);
    EXPECT_EQ(s[0], s[1]) << "codec_threads 1 and 2 differ";
    EXPECT_EQ(s[1], s[2]) << "the same job twice on one server differs";
  }
}

TEST(ArtifactDeterminism, StoredArtifactVerifiesAndItsCreationTimeComesFromTheDatabase) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  const std::string u = upload(srv.port(), npy_of(test_matrix(256, 64)), "application/x-npy");
  const json body = {{"upload", u}, {"method", "tt-token"}, {"params", {{"shape", {4, 4, 4}}, {"ranks", {2, 2}}}}};
  json first = run_job(srv.port(), body);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a later second: a clock in the bytes would show
  json second = run_job(srv.port(), body);
  const json& a1 = first["result"]["artifact"];
  const json& a2 = second["result"]["artifact"];
  EXPECT_EQ(a1["sha256"], a2["sha256"]);
  EXPECT_EQ(a1["content_sha256"], a2["content_sha256"]);
  // The artifact row keeps the time these bytes were first made; both jobs report it.
  EXPECT_GT(a1["created_unix"].get<int64_t>(), 1600000000);
  EXPECT_EQ(a2["created_unix"], a1["created_unix"]);
  // Wall time stays in the job's result (from the run), not in the artifact.
  EXPECT_GT(first["result"]["tensors"][0]["metrics"]["seconds"].get<double>(), 0.0);

  auto r = GET(srv.port(), "/v1/artifacts/" + a1["sha256"].get<std::string>());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(sha256_hex(r.body), a1["sha256"]);
  ArtifactIntegrity in;
  const v1::Artifact art = parse_artifact(r.body, ContentCheck::kVerify, &in);
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kVerified);
  EXPECT_EQ(in.content_sha256, a1["content_sha256"]);
  EXPECT_EQ(art.created_unix(), 0u);
  EXPECT_EQ(art.tensors(0).metrics().seconds(), 0.0);
}
