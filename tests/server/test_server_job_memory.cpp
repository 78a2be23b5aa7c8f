// Per-job memory limits against a real tensorslm-server child process: a job whose estimated
// working set (pipeline/memory_estimate.h) exceeds --job-memory-max-bytes is refused with a 422
// problem naming "memory", the estimate and the limit, and nothing is queued; a job that fits runs;
// whole-model and plan jobs are estimated too (an HF model tar of the trained fixture gpt2-man).
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

const std::map<std::string, std::string> kJson = {{"Content-Type", "application/json"}};

void expect_memory_refusal(const HttpResult& r, uint64_t limit) {
  ASSERT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  const json p = r.js();
  EXPECT_EQ(p.value("field", ""), "memory") << r.body;
  EXPECT_EQ(p.value("limit_bytes", uint64_t(0)), limit);
  EXPECT_GT(p.value("estimated_bytes", uint64_t(0)), limit);
  EXPECT_NE(p.value("detail", "").find("job_memory_max_bytes"), std::string::npos) << r.body;
}

}  // namespace

TEST(ServerJobMemory, RefusesJobsThatCannotFitAndRunsThoseThatDo) {
  TempDir tmp;
  const uint64_t limit = uint64_t(128) << 20;
  ServerProcess srv(tmp.path + "/data", {}, {"--job-memory-max-bytes", std::to_string(limit)});
  const uint16_t port = srv.port();
  // 1024 x 1024 f32 (4 MiB): saten's estimate (TT-SVD, refinement, baselines) is about 190 MiB; int8's about 85.
  auto up = POST(port, "/v1/uploads?name=big", npy_of(test_matrix(1024, 1024)));
  ASSERT_EQ(up.status, 201) << up.body;
  const std::string id = up.js()["id"];
  expect_memory_refusal(POST(port, "/v1/jobs", json{{"upload", id}, {"method", "saten"}}.dump(), kJson), limit);
  EXPECT_EQ(GET(port, "/v1/jobs").js()["jobs"].size(), 0u);  // nothing queued
  auto ok = POST(port, "/v1/jobs?wait=60", json{{"upload", id}, {"method", "int8"}}.dump(), kJson);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.js()["state"], "succeeded") << ok.body;

  // A whole model with evaluation (two f32 copies of the model, reference logits) and a plan job.
  auto model = POST(port, "/v1/uploads?name=gpt2-man", fixture_tar(tmp.path, "gpt2-man"), {{"Content-Type", "application/x-tar"}});
  ASSERT_EQ(model.status, 201) << model.body;
  const std::string mid = model.js()["id"];
  auto whole = POST(port, "/v1/jobs", json{{"upload", mid}, {"method", "q4_0"}, {"whole_model", true},
                                           {"evaluation", {{"tokens", 1 << 20}}}}.dump(), kJson);
  expect_memory_refusal(whole, limit);
  auto plan = POST(port, "/v1/jobs", json{{"upload", mid}, {"plan", {{"target_ratio", 4}}}, {"evaluation", {{"tokens", 1 << 20}}}}.dump(),
                   kJson);
  expect_memory_refusal(plan, limit);
  EXPECT_EQ(GET(port, "/v1/jobs").js()["jobs"].size(), 1u);
}

// The default limit is 3/4 of the machine's memory: ordinary jobs pass it.
TEST(ServerJobMemory, DefaultLimitAcceptsOrdinaryJobs) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  auto up = POST(srv.port(), "/v1/uploads?name=m", npy_of(test_matrix(256, 96)));
  ASSERT_EQ(up.status, 201) << up.body;
  auto r = POST(srv.port(), "/v1/jobs?wait=60", json{{"upload", up.js()["id"]}, {"method", "saten"}}.dump(), kJson);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js()["state"], "succeeded") << r.body;
}
