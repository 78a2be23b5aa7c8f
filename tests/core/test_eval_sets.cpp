// Evaluation users can trust (issue 11): calibration and evaluation sequences are disjoint; the
// default evaluation covers >= 2,048 predicted tokens; tt-token's ratio allocation weighted by token
// frequency beats uniform ranks in KL on the trained fixtures, at fewer bytes.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "formats/hf_model_dir.h"
#include "model/evaluate.h"
#include "pipeline/model_artifact.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_weights.h"
#include "support/param_error.h"

namespace tsm {
namespace {

std::string fixture(const std::string& name) { return std::string(TSM_FIXTURES_DIR) + "/" + name; }

std::string field_of(const std::function<void()>& f) { return test::param_error_field(f); }

TEST(EvalSets, DefaultsAreLargeAndHeldOutFromCalibration) {
  const auto net = load_transformer(ModelWeights::open(fixture("gpt2-tiny")));  // context 64
  const SequenceSpec e = default_eval_spec(), c = default_calib_spec();
  const SequenceSet es = make_sequence_set(*net, e, "evaluation");
  EXPECT_GE(es.predicted_tokens(), 2048u);
  for (const auto& s : es.seqs) EXPECT_EQ(s.size(), 64u);  // as long as the context allows (129 asked)
  EXPECT_NE(es.source.find("2079 predicted"), std::string::npos) << es.source;
  const SequenceSet cs = make_sequence_set(*net, c, "calibration");
  EXPECT_NO_THROW(require_disjoint(c, cs, e, es, 64));
  for (const auto& a : cs.seqs)
    for (const auto& b : es.seqs) EXPECT_NE(a, b);
  // Overlapping seed ranges, or a given sequence in both sets, are refused.
  SequenceSpec c2 = c;
  c2.seed = e.seed + 5;
  EXPECT_EQ(field_of([&] { require_disjoint(c2, cs, e, es, 64); }), "calibrate");
  SequenceSpec g = e;
  g.given = {{1, 2, 3}, {4, 5, 6}};
  SequenceSpec gc = c;
  gc.given = {{7, 8}, {4, 5, 6}};
  EXPECT_EQ(field_of([&] {
              require_disjoint(gc, make_sequence_set(*net, gc, "calibration"), g, make_sequence_set(*net, g, "evaluation"), 64);
            }),
            "calibrate");
  // Given sequences are checked against the model.
  g.given = {{1, 2, 5000}};
  EXPECT_EQ(field_of([&] { make_sequence_set(*net, g, "evaluation"); }), "evaluation");
  g.given = {std::vector<int32_t>(65, 1)};
  EXPECT_EQ(field_of([&] { make_sequence_set(*net, g, "evaluation"); }), "evaluation");
}

TEST(EvalSets, SequenceFilesAndCorruptInput) {
  const std::string dir = ::testing::TempDir() + "/tsm_eval_sets";
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/lines.txt", "1 2 3\n\n4,5\n");
  EXPECT_EQ(read_sequences_file(dir + "/lines.txt"), (std::vector<std::vector<int32_t>>{{1, 2, 3}, {4, 5}}));
  write_file_atomic(dir + "/arr.json", " [ [1, 2], [3, 4, 5] ]");
  EXPECT_EQ(read_sequences_file(dir + "/arr.json").size(), 2u);
  for (const char* bad : {"[[1, 2], [3, \"x\"]]", "[[1, 2], 5]", "[[1, 2]", "1 2\n3\n", "1 two 3\n", "", "[[1, -2]]"}) {
    write_file_atomic(dir + "/bad.txt", bad);
    EXPECT_THROW(read_sequences_file(dir + "/bad.txt"), FormatError) << bad;
  }
}

// A whole-model job whose own evaluation sequences are also its calibration sequences is refused.
TEST(EvalSets, BuildRefusesEvaluationOnCalibrationData) {
  const HfModelDir dir = HfModelDir::open(fixture("gpt2-tiny"));
  ModelArtifactOptions o;
  o.baselines = false;
  o.compare = false;
  o.calibrate = true;
  o.calib_set.given = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  o.eval_set.given = {{5, 6, 7, 8}};
  EXPECT_EQ(field_of([&] { build_model_artifact(dir, R"(mlp\.c_fc)", "q4_0", json{{"calibration", "gptq"}}, {}, "", o); }),
            "calibrate");
}

// tt-token `ratio` 2 with token-frequency weights (the default in whole-model jobs) against uniform
// ranks 3,3 (1.78x, so more bytes), both judged on the held-out eval_ids of the trained fixtures.
class TokenWeights : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(TokenWeights, RatioAllocationBeatsUniformRanksInKl) {
  const auto [name, embedding_binding] = GetParam();
  const auto embedding = embedding_binding;  // a copy the lambda captures: clang 14 cannot capture a structured binding
  const HfModelDir model = HfModelDir::open(fixture(name));
  std::ifstream f(fixture(std::string(name) + "/reference.json"));
  const auto ids = nlohmann::json::parse(f).at("eval_ids").get<std::vector<int32_t>>();
  const auto windows = split_windows(std::span<const int32_t>(ids.data(), 2048), 128);
  const auto dense = load_transformer(ModelWeights::from_parts(model, nullptr));
  auto judge = [&](const json& params, bool weights, uint64_t* bytes) {
    ModelArtifactOptions o;
    o.eval = false;
    o.baselines = false;
    o.token_weights = weights;
    const auto art = build_model_artifact(model, embedding, "tt-token", params, {}, "", o);
    *bytes = art.tensors(0).metrics().stored_bytes();
    const auto comp = load_transformer(ModelWeights::from_parts(std::nullopt, std::make_shared<const v1::Artifact>(art)));
    return compare_models(*dense, *comp, windows, "held-out").kl_mean;
  };
  uint64_t b_ratio = 0, b_uniform = 0, b_plain = 0;
  const double kl_ratio = judge({{"ratio", 2}}, true, &b_ratio);
  const double kl_uniform = judge({{"ranks", {3, 3}}}, true, &b_uniform);
  const double kl_plain = judge({{"ratio", 2}}, false, &b_plain);
  std::printf("%s: KL ratio 2 weighted %.3f (%llu B), unweighted %.3f, uniform 3,3 %.3f (%llu B)\n", name, kl_ratio,
              (unsigned long long)b_ratio, kl_plain, kl_uniform, (unsigned long long)b_uniform);
  EXPECT_LE(b_ratio, b_uniform);
  EXPECT_LT(kl_ratio, kl_uniform);
  EXPECT_LT(kl_ratio, kl_plain);  // the weights are what makes the difference
}

INSTANTIATE_TEST_SUITE_P(Trained, TokenWeights,
                         ::testing::Values(std::make_pair("gpt2-man", R"(^transformer\.wte\.weight$)"),
                                           std::make_pair("llama-man", R"(embed_tokens\.weight$)")),
                         [](const auto& info) { return std::string(info.param.first) == "gpt2-man" ? "gpt2_man" : "llama_man"; });

}  // namespace
}  // namespace tsm
