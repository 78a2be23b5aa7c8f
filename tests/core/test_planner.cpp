// The planner on the trained fixtures (gpt2-man, llama-man): a larger budget never gives a worse
// verified KL; the plan's held-out KL is no worse than every uniform reference representation at
// the same or fewer bytes (tolerance: 5% of that KL plus 1e-4 nats, for the sampling difference
// between the repair and the held-out sets); byte and ratio targets are honoured by the artifact
// and its file; --max-kl meets its bound or says it is out of reach; the spec re-runs to the same
// bytes; the file is at most the byte budget plus config.json and a few KiB; bad candidate lists, specs and targets are refused naming the field.
#include <gtest/gtest.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <unistd.h>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"
#include "pipeline/planner.h"
#include "support/param_error.h"

using namespace tsm;
namespace fs = std::filesystem;

namespace {

// Small sets and a short candidate list keep a plan to seconds; the defaults are exercised by the CLI test.
PlannerOptions small_options(PlanTarget target) {
  PlannerOptions o;
  o.target = target;
  o.candidates = parse_plan_candidates("fp16,q8_0,q4_k,q4_0,q3_k,qlr{\"base\":\"q2_k\",\"rank\":8}");
  o.calibrate = false;
  o.sensitivity_sequences = 4;
  o.calib_set.sequences = 4;
  o.calib_set.length = 64;
  o.repair_set.sequences = 8;
  o.repair_set.length = 65;
  o.verify_set.sequences = 8;
  o.verify_set.length = 65;
  return o;
}

/// The fixture without its tokenizer (so the artifact holds config.json alone besides tensors).
/// One directory per process, copied once and removed at exit: ctest runs tests of the same model
/// side by side, and rewriting a file another process has mapped is a SIGBUS there.
std::string bare_model(const std::string& name) {
  struct Dirs {
    std::vector<fs::path> made;
    ~Dirs() {
      std::error_code ec;
      for (const auto& d : made) fs::remove_all(d, ec);
    }
  };
  static Dirs dirs;
  const fs::path dir = fs::temp_directory_path() / ("tsm_planner_" + name + "_" + std::to_string(::getpid()));
  if (fs::create_directories(dir)) dirs.made.push_back(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fs::path(TSM_FIXTURES_DIR) / name / f, dir / f, fs::copy_options::skip_existing);
  return dir.string();
}

PlanOutcome plan(const std::string& model, PlanTarget t) { return plan_model(HfModelDir::open(bare_model(model)), small_options(t), {}, ""); }

class PlannerOnModel : public ::testing::TestWithParam<const char*> {};

}  // namespace

// One test for the byte targets (each plan takes seconds; ctest runs every test in its own process).
TEST_P(PlannerOnModel, ByteTargets) {
  double prev_kl = -1;
  for (double ratio : {6.0, 4.0, 2.5}) {
    const PlanOutcome o = plan(GetParam(), {PlanTarget::Kind::kRatio, ratio});
    ASSERT_TRUE(o.report.target_met) << o.report.message;
    // The size honours the target: the artifact's whole-model bytes, and its file.
    const uint64_t budget = uint64_t(double(o.report.dense_f32_bytes) / ratio);
    EXPECT_LE(o.artifact.total().stored_bytes(), budget);
    EXPECT_EQ(o.artifact.total().stored_bytes(), o.report.bytes);
    // The file: at most the budget plus config.json and a few KiB of metadata (names, metrics,
    // params: 2 KiB plus 256 bytes per tensor).
    const std::string bytes = serialize_artifact(o.artifact);
    EXPECT_LE(bytes.size(), budget + o.artifact.config_json().size() + 2048 + 256 * o.report.tensors.size()) << "ratio " << ratio;
    // A larger budget never gives a worse verified KL.
    const auto& q = o.artifact.quality();
    EXPECT_NEAR(q.kl_mean(), o.report.kl_verified, 1e-12);
    if (prev_kl >= 0) {
      EXPECT_LE(q.kl_mean(), prev_kl) << "ratio " << ratio << " (larger budget) got a worse verified KL";
    }
    prev_kl = q.kl_mean();
    // No worse than every uniform reference representation at the same or fewer bytes, among the
    // methods it was offered (this short list leaves out q6_k and q5_k, which at 4x beat it).
    ASSERT_GT(q.alternatives_size(), 5);
    int compared = 0;
    const std::vector<PlanCandidate> offered = small_options(PlanTarget{}).candidates;
    for (const auto& a : q.alternatives()) {
      if (a.stored_bytes() > o.artifact.total().stored_bytes()) continue;
      if (std::none_of(offered.begin(), offered.end(), [&](const PlanCandidate& c) { return c.method == a.method(); })) continue;
      ++compared;
      EXPECT_LE(q.kl_mean(), a.kl_mean() * 1.05 + 1e-4)
          << "ratio " << ratio << ": uniform " << a.method() << " at " << a.stored_bytes() << " bytes has KL " << a.kl_mean()
          << ", the plan at " << o.artifact.total().stored_bytes() << " has " << q.kl_mean();
    }
    EXPECT_GT(compared, 0) << "no reference representation is as small as the plan at ratio " << ratio;
    // The frontier: bytes ascending, estimated KL descending, several points.
    ASSERT_GE(o.report.frontier.size(), 4u);
    for (size_t i = 1; i < o.report.frontier.size(); ++i) {
      EXPECT_GT(o.report.frontier[i].bytes, o.report.frontier[i - 1].bytes);
      EXPECT_LE(o.report.frontier[i].kl_estimate, o.report.frontier[i - 1].kl_estimate);
    }
    if (ratio == 4.0) {  // the spec, through its text form as a file, re-runs to the same bytes
      const PlannerOptions opt = small_options({PlanTarget::Kind::kRatio, ratio});
      ModelArtifactOptions mo;
      mo.baselines = opt.baselines;
      mo.eval_set = opt.verify_set;
      mo.calib_set = opt.calib_set;
      const json spec = json::parse(plan_report_json(o.report)["spec"].dump());
      const v1::Artifact again = build_from_spec(HfModelDir::open(bare_model(GetParam())), spec, mo, {}, "");
      EXPECT_EQ(serialize_artifact(again), bytes);
    }
  }
}

TEST_P(PlannerOnModel, MaxKlMetOrOutOfReach) {
  const PlanOutcome ok = plan(GetParam(), {PlanTarget::Kind::kMaxKl, 0.05});
  ASSERT_TRUE(ok.report.target_met) << ok.report.message;
  EXPECT_LE(ok.artifact.quality().kl_mean(), 0.05);
  EXPECT_GT(ok.artifact.total().ratio_f32(), 2.2);  // smaller than fp16 everywhere: the bound leaves room for quantization
  const PlanOutcome far = plan(GetParam(), {PlanTarget::Kind::kMaxKl, 1e-9});
  EXPECT_FALSE(far.report.target_met);
  EXPECT_NE(far.report.message.find("out of reach"), std::string::npos) << far.report.message;
  EXPECT_NE(far.report.message.find("closest"), std::string::npos) << far.report.message;
  EXPECT_EQ(far.artifact.tensors_size(), 0);
}

INSTANTIATE_TEST_SUITE_P(Trained, PlannerOnModel, ::testing::Values("gpt2-man", "llama-man"));

// Large models measure one candidate per tensor and carry it to the others by their error in the
// inputs' norm: forced here on a small one, the plan still meets the budget and is no worse than
// every uniform reference at the same or fewer bytes (same tolerance as above).
TEST(Planner, ProxySensitivity) {
  auto o = small_options({PlanTarget::Kind::kRatio, 4.0});
  o.sensitivity = PlannerOptions::Sensitivity::kProxy;
  const PlanOutcome p = plan_model(HfModelDir::open(bare_model("gpt2-man")), o, {}, "");
  EXPECT_EQ(p.report.sensitivity_mode, "proxy");
  ASSERT_TRUE(p.report.target_met) << p.report.message;
  EXPECT_LE(p.artifact.total().stored_bytes(), uint64_t(double(p.report.dense_f32_bytes) / 4.0));
  for (const auto& a : p.artifact.quality().alternatives())
    if (a.stored_bytes() <= p.artifact.total().stored_bytes() &&
        std::any_of(o.candidates.begin(), o.candidates.end(), [&](const PlanCandidate& c) { return c.method == a.method(); }))
      EXPECT_LE(p.artifact.quality().kl_mean(), a.kl_mean() * 1.05 + 1e-4) << a.method();
  // Damage estimates are KL-scaled: every tensor's Pareto set descends from its smallest option.
  for (const auto& t : p.report.tensors) EXPECT_EQ(t.options.back().damage, 0.0) << t.name << ": keep is exact";
}

TEST(Planner, RefusesBadTargetsCandidatesAndSpecs) {
  EXPECT_EQ(test::param_error_field([] { parse_plan_candidates("q4_k,nope"); }), "plan.methods");
  EXPECT_EQ(test::param_error_field([] { parse_plan_candidates("qlr{\"rank\":4"); }), "plan.methods");
  EXPECT_EQ(test::param_error_field([] { parse_plan_candidates("qlr[1]"); }), "plan.methods");
  EXPECT_EQ(test::param_error_field([] { parse_plan_candidates("q4_k,q4_k"); }), "plan.methods");
  EXPECT_EQ(test::param_error_field([] { parse_plan_candidates(" , "); }), "plan.methods");
  const auto c = parse_plan_candidates("q8_0, qlr{\"base\":\"q3_k\",\"note\":\"a,b}\"},fp16");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].params["note"], "a,b}");
  EXPECT_EQ(default_plan_candidates().size(), parse_plan_candidates(default_plan_candidates_text()).size());

  for (const char* bad : {R"([])", R"({})", R"({"entries": []})", R"({"entries": [{"tensor": 3, "method": "q4_k"}]})",
                          R"({"entries": [{"tensor": "a", "method": "q4_k", "params": [1]}]})"})
    EXPECT_EQ(test::param_error_field([&] { spec_rules(json::parse(bad)); }), "entries") << bad;

  const HfModelDir m = HfModelDir::open(bare_model("gpt2-man"));
  EXPECT_EQ(test::param_error_field([&] { plan_model(m, small_options({PlanTarget::Kind::kRatio, 0.5}), {}, ""); }), "plan.target_ratio");
  EXPECT_EQ(test::param_error_field([&] { plan_model(m, small_options({PlanTarget::Kind::kMaxKl, -1}), {}, ""); }), "plan.max_kl");
  // 100 bytes cannot hold even the layer norms.
  EXPECT_EQ(test::param_error_field([&] { plan_model(m, small_options({PlanTarget::Kind::kBytes, 100}), {}, ""); }), "plan.target_bytes");
  auto o = small_options({PlanTarget::Kind::kRatio, 4});
  o.tensors = "no_such_tensor";
  EXPECT_EQ(test::param_error_field([&] { plan_model(m, o, {}, ""); }), "tensors");
}
