// Job memory estimates (pipeline/memory_estimate.h) against what the jobs really allocate: each job
// runs in a forked child whose peak RSS is reset first (/proc/self/clear_refs "5"), and the growth
// of its peak (VmHWM minus the RSS before the job) must stay within the estimate. The estimate must
// also stay useful: within 12x the measured growth plus 48 MiB, so a limit based on it refuses
// jobs that cannot fit and not every job.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "support/test_paths.h"
#include "formats/hf_model_dir.h"
#include "methods/method_table.h"
#include "pipeline/compress.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/model_artifact.h"
#include "model/model_config.h"
#include "pipeline/planner.h"

using namespace tsm;

namespace {

uint64_t status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::string(key).size()));
  return 0;
}

/// Peak RSS growth (bytes) of `job` run in a forked child after `setup` (not measured); -1 when the
/// child failed. The parent must not have run an OpenMP region before (libgomp's pool does not
/// survive fork), so inputs that need one are built by `setup` in the child.
int64_t measured_growth(const std::function<void()>& job, const std::function<void()>& setup = {}) {
  int fd[2];
  if (pipe(fd) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    int64_t growth = -1;
    {
      if (setup) setup();
      std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := VmRSS
      const uint64_t before = status_kib("VmRSS:");
      try {
        job();
        growth = int64_t(status_kib("VmHWM:") - before) * 1024;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "job failed: %s\n", e.what());
      }
    }
    [[maybe_unused]] auto n = write(fd[1], &growth, sizeof growth);
    _exit(0);
  }
  close(fd[1]);
  int64_t growth = -1;
  if (read(fd[0], &growth, sizeof growth) != sizeof growth) growth = -1;
  close(fd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return growth;
}

bool peak_reset_works() {
  std::ofstream f("/proc/self/clear_refs");
  return bool(f << "5" << std::flush);
}

void expect_bound(const std::string& what, const MemoryEstimate& est, int64_t growth) {
  ASSERT_GE(growth, 0) << what << ": the job failed in the child";
  std::printf("%-28s measured %7.1f MiB, estimate %s\n", what.c_str(), double(growth) / (1 << 20), est.text().c_str());
  EXPECT_LE(uint64_t(growth), est.bytes) << what << ": " << est.text();
  EXPECT_LE(est.bytes, 12 * uint64_t(growth) + (uint64_t(48) << 20)) << what << ": " << est.text();
}

MatrixRM random_matrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  MatrixRM W(rows, cols);
  for (int64_t i = 0; i < W.size(); ++i) W.data()[i] = nd(rng);
  return W;
}

}  // namespace

TEST(MemoryEstimate, MatrixJobsStayWithinTheirEstimate) {
  if (!peak_reset_works()) GTEST_SKIP() << "/proc/self/clear_refs is not writable: peak RSS cannot be reset";
  const int64_t rows = 1536, cols = 1024;
  const MatrixRM W = random_matrix(rows, cols, 3);
  const std::vector<std::pair<std::string, json>> jobs = {
      {"int8", json::object()},
      {"fp16", json::object()},
      {"q4_0", json::object()},
      {"q4_k", json::object()},
      {"svd", {{"rank", 64}}},
      {"tt-token", {{"shape", {8, 8, 16}}, {"ranks", {8, 8}}}},
      {"saten", json::object()},
      {"qlr", {{"base", "q3_k"}, {"rank", 16}}},
      {"qtt", {{"base", "q3_k"}, {"rank", 16}}},
      {"saten", {{"core_bits", 4}}},
  };
  for (const auto& job : jobs) {
    const std::string& method = job.first;  // not structured bindings: clang 14 cannot capture them
    const json& params = job.second;
    const Codec& c = find_codec(method);
    const json r = c.resolve(params, rows, cols);
    const MemoryEstimate est = estimate_matrix_job(c, rows, cols, r, true);
    const int64_t g = measured_growth([&] { compress_matrix(W, "w", DType::F32, method, params, CodecContext{}); });
    expect_bound(method, est, g);
  }
}

TEST(MemoryEstimate, GptqStaysWithinItsEstimate) {
  if (!peak_reset_works()) GTEST_SKIP() << "/proc/self/clear_refs is not writable: peak RSS cannot be reset";
  const int64_t rows = 768, cols = 512;
  const MatrixRM W = random_matrix(rows, cols, 4);
  MatrixRMd C;  // the inputs' covariance, built in the child (an Eigen product may use OpenMP)
  auto setup = [&] {
    const MatrixRM X = random_matrix(1024, cols, 5);
    C = (X.transpose() * X).cast<double>() / 1024.0;
  };
  for (const std::string method : {"q4_k", "q4_0"}) {
    const Codec& c = find_codec(method);
    const json r = c.resolve({{"calibration", "gptq"}}, rows, cols);
    MemoryEstimate est;
    est.add("matrix f32", 4 * uint64_t(rows * cols));
    est.add("gptq encode", c.working_set_bytes(rows, cols, r, true));
    EXPECT_GT(c.working_set_bytes(rows, cols, r, true), c.working_set_bytes(rows, cols, r, false));
    Calibration cal;
    cal.input_covariance = &C;
    const int64_t g = measured_growth([&] { c.encode_calibrated(W, r, cal, CodecContext{}); }, setup);
    expect_bound(method + " gptq", est, g);
  }
}

TEST(MemoryEstimate, WholeModelAndPlanJobsStayWithinTheirEstimate) {
  if (!peak_reset_works()) GTEST_SKIP() << "/proc/self/clear_refs is not writable: peak RSS cannot be reset";
  const HfModelDir model = HfModelDir::open(std::string(TSM_FIXTURES_DIR) + "/gpt2-man");
  const std::vector<TensorMeta> metas = tensor_metas(model);
  {
    ModelArtifactOptions opt;
    const ModelPlan plan = plan_model_artifact(model, "", "q4_0", json::object(), opt);
    const MemoryEstimate est = estimate_model_job(metas, plan, opt);
    const int64_t g = measured_growth([&] { build_model_artifact(model, plan, CodecContext{}, "", opt, json::object()); });
    expect_bound("whole model q4_0 + eval", est, g);
  }
  {
    ModelArtifactOptions opt;
    opt.calibrate = true;
    opt.calib_set.sequences = 16;
    const ModelPlan plan = plan_model_artifact(model, "h\\.0\\.mlp\\.c_fc", "saten", json::object(), opt);
    const MemoryEstimate est = estimate_model_job(metas, plan, opt);
    const int64_t g = measured_growth([&] { build_model_artifact(model, plan, CodecContext{}, "", opt, json::object()); });
    expect_bound("whole model saten calibrated", est, g);
  }
  {
    PlannerOptions opt;
    opt.target = {PlanTarget::Kind::kRatio, 1.1};  // only layer 0 is planned: the rest stays f32
    opt.candidates = parse_plan_candidates("q8_0,q4_k");
    opt.tensors = "h\\.0\\.";
    opt.calib_set.sequences = 8;
    opt.compare = false;
    const MemoryEstimate est = estimate_plan_job(metas, parse_model_config(model.config()), opt);
    const int64_t g = measured_growth([&] { plan_model(model, opt, CodecContext{}, ""); });
    expect_bound("plan 1.1x (layer 0), 2 candidates", est, g);
  }
}

// Estimates grow with the job: a larger matrix, calibration, more evaluation tokens.
TEST(MemoryEstimate, GrowsWithTheJob) {
  const Codec& q = find_codec("q4_k");
  const json r = q.resolve({{"calibration", "gptq"}}, 512, 512);
  EXPECT_LT(estimate_matrix_job(q, 512, 512, r, false).bytes, estimate_matrix_job(q, 1024, 1024, r, false).bytes);
  EXPECT_LT(estimate_matrix_job(q, 512, 512, r, false).bytes, estimate_matrix_job(q, 512, 512, r, true).bytes);
  SequenceSpec a = default_eval_spec(), b = a;
  b.min_tokens *= 4;
  EXPECT_LT(logits_bytes(a, 50257, 1024), logits_bytes(b, 50257, 1024));
  EXPECT_EQ(logits_bytes(a, 0, 1024), logits_bytes(a, 0, 1024));
  const MemoryEstimate e = estimate_matrix_job(q, 512, 512, r, true);
  EXPECT_NE(e.text().find("baselines"), std::string::npos) << e.text();
}
