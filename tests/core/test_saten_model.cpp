// Whole-model saten jobs on the fixture models: the artifact holds every tensor once, runs in the
// runtime from the artifact alone, and its KL to the dense model is reported (≈ 0 when lossless).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "support/test_paths.h"
#include "pipeline/model_artifact.h"
#include "pipeline/model_quality.h"
#include "methods/saten/saten_codec.h"
#include "formats/artifact_io.h"
#include "formats/array_pack.h"
#include "pipeline/compress.h"
#include "formats/hf_model_dir.h"
#include "pipeline/model_loader.h"

using namespace tsm;

namespace {

std::string fixture(const std::string& name) { return std::string(TSM_FIXTURES_DIR) + "/" + name; }

// Linear weights of each fixture (not embeddings / heads / norms).
const char* kLinearRegex = R"((attn|mlp|self_attn|fc1|fc2)\..*weight$)";

ModelArtifactOptions quick() {
  ModelArtifactOptions o;
  o.baselines = false;
  o.eval_set.sequences = 2;
  o.eval_set.length = 16;
  o.compare = false;
  return o;
}

}  // namespace

class SatenModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SatenModel, ArtifactRunsAndReportsKl) {
  const HfModelDir dir = HfModelDir::open(fixture(GetParam()));
  const auto art = build_model_artifact(dir, kLinearRegex, "saten", json{{"ranks", 4}, {"sparsity", "2:4"}}, {}, "abc", quick());
  // every tensor exactly once
  std::multiset<std::string> names;
  for (const auto& t : art.tensors()) names.insert(t.name());
  for (const auto& a : art.passthrough()) names.insert(a.name());
  const auto src = dir.tensor_names();
  EXPECT_EQ(names, std::multiset<std::string>(src.begin(), src.end()));
  ASSERT_GT(art.tensors_size(), 0);
  for (const auto& t : art.tensors()) {
    EXPECT_EQ(t.method(), "saten");
    EXPECT_GT(t.metrics().stored_bytes(), 0u);
  }
  EXPECT_FALSE(art.config_json().empty());
  EXPECT_GT(art.total().stored_bytes(), 0u);
  EXPECT_LT(art.total().stored_bytes(), art.total().dense_f32_bytes());
  // quality measured in the runtime
  const auto& q = art.quality();
  ASSERT_GT(q.tokens(), 0u) << q.source();
  EXPECT_TRUE(std::isfinite(q.kl_mean()));
  EXPECT_GT(q.kl_mean(), 0.0);
  EXPECT_GT(q.ppl_dense(), 1.0);
  EXPECT_GT(q.ppl_compressed(), 1.0);

  // lossless settings (density 1: the residual holds everything the rank-1 train misses) -> the
  // compressed model runs like the dense one
  const auto exact = build_model_artifact(dir, kLinearRegex, "saten", json{{"ranks", 1}, {"density", 1.0}}, {}, "abc", quick());
  EXPECT_LT(exact.quality().kl_mean(), 1e-6) << exact.quality().source();
  EXPECT_DOUBLE_EQ(exact.quality().top1_agreement(), 1.0);
  EXPECT_LT(exact.quality().kl_mean(), q.kl_mean());
  // and at full TT ranks (eps 0) with no sparse part at all
  const auto full = build_model_artifact(dir, kLinearRegex, "saten", json{{"eps", 0.0}, {"sparsity", "none"}}, {}, "abc", quick());
  EXPECT_LT(full.quality().kl_mean(), 1e-6) << full.quality().source();
  EXPECT_DOUBLE_EQ(full.quality().top1_agreement(), 1.0);

  // the artifact survives serialization and still runs
  const auto parsed = parse_artifact(serialize_artifact(art));
  const auto q2 = measure_model_quality(dir, parsed, quick());
  EXPECT_NEAR(q2.kl_mean(), q.kl_mean(), 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SatenModel, ::testing::Values("gpt2-tiny", "opt-tiny", "llama-tiny"));

TEST(SatenModelJob, Gpt2Conv1DIsCompressedInItsLogicalOrientation) {
  const HfModelDir dir = HfModelDir::open(fixture("gpt2-tiny"));
  const auto art = build_model_artifact(dir, R"(mlp\.c_fc\.weight)", "saten", json{{"ranks", 4}, {"sparsity", "2:4"}}, {}, "", quick());
  ASSERT_EQ(art.tensors_size(), 2);
  for (const auto& t : art.tensors()) {
    EXPECT_EQ(t.shape(0), 64u);   // stored (in, out) as the checkpoint
    EXPECT_EQ(t.shape(1), 256u);
    EXPECT_TRUE(saten_in_out(json::parse(t.params_json())));
    const auto f = saten_from_proto(t);
    EXPECT_EQ(f.layout.d_in, 64);  // 2:4 runs along the 64 inputs of each of the 256 outputs
    EXPECT_TRUE(f.sparse.satisfies_nm(2, 4));
  }
}

// The runtime applies GPT-2's (in, out) Conv1D saten tensors through the factorized operator (not
// a dense decode) and gets the logits of the densely decoded reconstruction (tolerance 1e-4 on
// logits of magnitude ~10: f32 summation order differs between TT(x) + Sx and W_hat x).
TEST(SatenModelJob, Gpt2Conv1DRunsFactorized) {
  const HfModelDir dir = HfModelDir::open(fixture("gpt2-tiny"));
  auto art = std::make_shared<const v1::Artifact>(
      build_model_artifact(dir, kLinearRegex, "saten", json{{"ranks", 4}, {"sparsity", "2:4"}}, {}, "", quick()));
  const auto net = load_transformer(ModelWeights::from_parts(dir, art));
  for (const auto& L : net->layers)
    for (const LinearOp* op : {L.qkv.get(), L.o.get(), L.up.get(), L.down.get()})
      EXPECT_EQ(dynamic_cast<const DenseLinear*>(op), nullptr);  // SatenLinear (+ bias), not decoded

  // the same model with every saten tensor decoded to a dense (in, out) Conv1D weight
  v1::Artifact decoded = *art;
  for (auto& t : *decoded.mutable_tensors()) {
    const Tensor w = Tensor::from_matrix(t.name(), decode_tensor(t));  // stored (in, out) layout
    decoded.add_passthrough()->CopyFrom(make_array(t.name(), w.dtype, w.shape, w.bytes.data(), w.bytes.size()));
  }
  decoded.clear_tensors();
  const auto ref = load_transformer(ModelWeights::from_parts(dir, std::make_shared<const v1::Artifact>(decoded)));
  EXPECT_NE(dynamic_cast<const DenseLinear*>(ref->layers[0].up.get()), nullptr);

  const std::vector<int32_t> ids{464, 20, 758, 218, 180, 625, 262, 169, 329, 13};
  const int64_t V = net->cfg.vocab;
  std::vector<float> a(ids.size() * V), b(ids.size() * V);
  auto ca = net->new_cache(), cb = ref->new_cache();
  net->forward(ids, ca, a.data(), true);
  ref->forward(ids, cb, b.data(), true);
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LT(worst, 1e-4f);
}

TEST(SatenModelJob, BadRegexOrNoMatchIsAParamError) {
  const HfModelDir dir = HfModelDir::open(fixture("opt-tiny"));
  EXPECT_THROW(build_model_artifact(dir, "(", "saten", json::object(), {}, ""), ParamError);
  EXPECT_THROW(build_model_artifact(dir, "no_such_tensor", "saten", json::object(), {}, ""), ParamError);
  EXPECT_THROW(build_model_artifact(dir, "fc1", "saten", json{{"bogus", 1}}, {}, ""), ParamError);
}

TEST(SatenModelJob, CalibrationLowersKl) {
  const HfModelDir dir = HfModelDir::open(fixture("llama-tiny"));
  const json p{{"ranks", 4}, {"sparsity", "2:4"}};
  auto o = quick();
  o.eval_set.sequences = 4;
  const auto plain = build_model_artifact(dir, R"(mlp\..*weight$)", "saten", p, {}, "", o);
  o.calibrate = true;
  o.calib_set.sequences = 32;
  o.adam_steps = 60;
  const auto cal = build_model_artifact(dir, R"(mlp\..*weight$)", "saten", p, {}, "", o);
  std::printf("KL plain %.5f calibrated %.5f\n", plain.quality().kl_mean(), cal.quality().kl_mean());
  EXPECT_LT(cal.quality().kl_mean(), plain.quality().kl_mean());
  EXPECT_EQ(cal.total().stored_bytes(), plain.total().stored_bytes());
}
