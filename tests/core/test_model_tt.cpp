// The runtime with a tt-token embedding (TensorSLM): at full TT ranks the model gives the dense
// logits (tied heads in both materialize and stream mode); at lower ranks the KL to the dense
// model is > 0 and grows as the ranks fall; a whole-model artifact runs without the HF directory.
#include <gtest/gtest.h>

#include "support/test_paths.h"
#include "formats/array_pack.h"
#include "pipeline/compress.h"
#include "common/error.h"
#include "formats/hf_model_dir.h"
#include "model/evaluate.h"
#include "pipeline/model_loader.h"

using namespace tsm;

namespace {

std::string fixture(const std::string& name) { return std::string(TSM_FIXTURES_DIR) + "/" + name; }

// An embedding-only artifact: the model's embedding compressed with tt-token at `ranks` (shape 4x4x4 for d = 64).
std::shared_ptr<v1::Artifact> tt_artifact(const HfModelDir& dir, const std::string& emb, std::vector<int64_t> ranks) {
  MatrixRM W = dir.at(emb).to_matrix();
  json params = {{"shape", {4, 4, 4}}, {"ranks", ranks}};
  CompressOptions opt;
  opt.baselines = false;
  auto a = std::make_shared<v1::Artifact>();
  *a->add_tensors() = compress_matrix(W, emb, DType::F32, "tt-token", params, CodecContext{}, opt);
  return a;
}

MatrixRM logits_of(const Transformer& net, const std::vector<int32_t>& ids) {
  MatrixRM out(ids.size(), net.cfg.vocab);
  KvCache c = net.new_cache();
  net.forward(ids, c, out.data(), true);
  return out;
}

const std::vector<int32_t> kIds{5, 17, 300, 2, 999, 41, 41, 7, 123, 640, 88, 1, 0, 512, 77, 3};

class TtModel : public ::testing::TestWithParam<std::string> {};

TEST_P(TtModel, FullRanksGiveTheDenseLogits) {
  HfModelDir dir = HfModelDir::open(fixture(GetParam()));
  auto dense = load_transformer(ModelWeights::from_parts(dir, nullptr));
  const std::string emb = embedding_tensor_name(ModelWeights::from_parts(dir, nullptr));
  auto w = ModelWeights::from_parts(dir, tt_artifact(dir, emb, {4, 4}));  // full ranks of 4x4x4
  MatrixRM ref = logits_of(*dense, kIds);
  for (HeadMode head : {HeadMode::kMaterialize, HeadMode::kStream}) {
    LoadOptions opt;
    opt.embedding = EmbeddingMode::kCompressed;
    opt.head = head;
    opt.stream_block_rows = 96;  // not a divisor of 1000: exercises the last partial block
    auto tt = load_transformer(w, opt);
    EXPECT_STREQ(tt->embed->kind(), "tt");
    if (dense->cfg.tied_head) EXPECT_STREQ(tt->head->kind(), head == HeadMode::kStream ? "stream" : "materialize");
    const double diff = (logits_of(*tt, kIds) - ref).cwiseAbs().maxCoeff();
    std::printf("%s head=%s: max |tt - dense| = %.3g\n", GetParam().c_str(), tt->head->kind(), diff);
    EXPECT_LT(diff, 1e-4);
  }
  // The dense decode of the same artifact is also available.
  LoadOptions d;
  d.embedding = EmbeddingMode::kDense;
  auto dd = load_transformer(w, d);
  EXPECT_STREQ(dd->embed->kind(), "dense");
  EXPECT_LT((logits_of(*dd, kIds) - ref).cwiseAbs().maxCoeff(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TtModel, ::testing::Values("gpt2-tiny", "opt-tiny", "llama-tiny"));

TEST(TtModelQuality, KlGrowsAsRanksFall) {
  HfModelDir dir = HfModelDir::open(fixture("gpt2-tiny"));
  auto dense = load_transformer(ModelWeights::from_parts(dir, nullptr));
  auto seqs = sample_sequences(*dense, 4, 32, 7);
  ASSERT_EQ(seqs.size(), 4u);
  ASSERT_EQ(seqs[0].size(), 32u);
  // The dense model against itself: KL 0, full agreement.
  QualityResult self = compare_models(*dense, *dense, seqs, "self-sampled");
  EXPECT_NEAR(self.kl_mean, 0.0, 1e-9);
  EXPECT_EQ(self.top1_agreement, 1.0);
  EXPECT_EQ(self.tokens, 4u * 31u);

  double prev_kl = 0;
  for (std::vector<int64_t> ranks : {std::vector<int64_t>{4, 4}, {3, 3}, {2, 2}, {1, 1}}) {
    auto tt = load_transformer(ModelWeights::from_parts(dir, tt_artifact(dir, "transformer.wte.weight", ranks)));
    QualityResult q = compare_models(*dense, *tt, seqs, "self-sampled");
    std::printf("ranks [%lld, %lld]: KL %.4g, top-1 %.3f, ppl %.3f -> %.3f\n", (long long)ranks[0], (long long)ranks[1],
                q.kl_mean, q.top1_agreement, q.ppl_dense, q.ppl_compressed);
    if (ranks[0] == 4) {
      EXPECT_LT(q.kl_mean, 1e-8);
      EXPECT_EQ(q.top1_agreement, 1.0);
    } else {
      EXPECT_GT(q.kl_mean, prev_kl);
      EXPECT_GT(q.kl_mean, 1e-6);
    }
    EXPECT_NEAR(q.ppl_dense, perplexity(*dense, seqs), 1e-6 * q.ppl_dense);
    auto proto = q.to_proto();
    EXPECT_EQ(proto.kl_mean(), q.kl_mean);
    EXPECT_EQ(proto.tokens(), q.tokens);
    prev_kl = q.kl_mean;
  }
}

TEST(TtModelQuality, WholeModelArtifactRunsWithoutTheDirectory) {
  HfModelDir dir = HfModelDir::open(fixture("opt-tiny"));
  const std::string emb = "model.decoder.embed_tokens.weight";
  auto art = tt_artifact(dir, emb, {2, 3});
  for (const auto& name : dir.tensor_names()) {
    if (name == emb) continue;
    const Tensor& t = dir.at(name);
    *art->add_passthrough() = make_array(name, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
  }
  art->set_config_json(dir.config().dump());
  auto combined = load_transformer(ModelWeights::from_parts(dir, art));
  auto alone = load_transformer(ModelWeights::from_parts(std::nullopt, art));
  EXPECT_EQ((logits_of(*alone, kIds) - logits_of(*combined, kIds)).cwiseAbs().maxCoeff(), 0.0f);

  // A passthrough tensor that is missing is named in the error.
  art->mutable_passthrough()->RemoveLast();
  try {
    load_transformer(ModelWeights::from_parts(std::nullopt, art));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor '"), std::string::npos) << e.what();
  }
}

TEST(TtModelQuality, TtModeNeedsATtEmbedding) {
  HfModelDir dir = HfModelDir::open(fixture("gpt2-tiny"));
  LoadOptions opt;
  opt.embedding = EmbeddingMode::kCompressed;
  EXPECT_THROW(load_transformer(ModelWeights::from_parts(dir, nullptr), opt), ParamError);
  EXPECT_THROW(parse_head_mode("lazy"), ParamError);
  EXPECT_THROW(parse_embedding_mode("sparse"), ParamError);
}

TEST(Evaluate, IdsFilesAndWindows) {
  EXPECT_EQ(parse_ids("1, 2,3\n4 [5]"), (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_THROW(parse_ids("1,-2"), ParamError);
  EXPECT_THROW(parse_ids("1,x"), ParamError);
  std::vector<int32_t> ids(10);
  auto w = split_windows(ids, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2].size(), 2u);
  EXPECT_EQ(split_windows(std::vector<int32_t>(9), 4).size(), 2u);  // a 1-token tail is dropped
}

}  // namespace
