// Block quantization (llama.cpp layouts): blocks encoded by hand, round-trip bounds per block,
// zero and constant blocks, padding of odd column counts, orientation, corrupted tensors, GPTQ
// against round-to-nearest in the layer loss, and in KL on the trained fixtures.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "common/dtype.h"
#include "common/error.h"
#include "formats/array_pack.h"
#include "formats/hf_model_dir.h"
#include "methods/block_quant/block_formats.h"
#include "methods/block_quant/block_quant_codec.h"
#include "methods/block_quant/gptq.h"
#include "methods/method_table.h"
#include "model/evaluate.h"
#include "pipeline/model_artifact.h"
#include "pipeline/model_loader.h"

using namespace tsm;

namespace {

constexpr BlockType kAll[] = {BlockType::kQ8_0, BlockType::kQ4_0, BlockType::kQ4_1, BlockType::kQ5_0, BlockType::kQ5_1};

std::vector<uint8_t> encode_block(BlockType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(size_t(block_format(t).bytes));
  quantize_row(t, x.data(), 32, out.data());
  return out;
}

uint16_t u16(const std::vector<uint8_t>& b, size_t at) { return uint16_t(b[at] | (b[at + 1] << 8)); }

}  // namespace

// Each type's block written out byte by byte from ggml's formulas for inputs chosen so that the
// scale and every code are exact.
TEST(BlockFormats, Q8_0ByHand) {
  std::vector<float> x(32, 0.f);
  x[0] = 127.f;   // amax 127 -> d = 1 (f16 0x3C00)
  x[1] = -63.6f;  // round(-63.6) = -64
  x[2] = 2.5f;    // roundf: half away from zero -> 3
  auto b = encode_block(BlockType::kQ8_0, x);
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(u16(b, 0), 0x3C00);
  EXPECT_EQ(int8_t(b[2]), 127);
  EXPECT_EQ(int8_t(b[3]), -64);
  EXPECT_EQ(int8_t(b[4]), 3);
  for (int j = 3; j < 32; ++j) EXPECT_EQ(b[2 + j], 0) << j;
}

TEST(BlockFormats, Q4_0ByHand) {
  // x[j] = (j - 8) / 4 and x[16 + j] = (7 - j) / 4: the largest magnitude is x[0] = -2, so
  // d = -2 / -8 = 0.25 and code = j for the first half, 15 - j for the second.
  std::vector<float> x(32);
  for (int j = 0; j < 16; ++j) x[j] = float(j - 8) / 4, x[16 + j] = float(7 - j) / 4;
  auto b = encode_block(BlockType::kQ4_0, x);
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(u16(b, 0), 0x3400);  // 0.25
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[2 + j], uint8_t(j | ((15 - j) << 4))) << j;
  std::vector<float> y(32);
  dequantize_row(BlockType::kQ4_0, b.data(), 32, y.data());
  for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(y[j], x[j]) << j;
}

TEST(BlockFormats, Q4_1ByHand) {
  // min -1, max 14: d = 1, m = -1, code = x + 1.
  std::vector<float> x(32);
  for (int j = 0; j < 16; ++j) x[j] = float(j - 1), x[16 + j] = float(14 - j);
  auto b = encode_block(BlockType::kQ4_1, x);
  ASSERT_EQ(b.size(), 20u);
  EXPECT_EQ(u16(b, 0), 0x3C00);  // d = 1
  EXPECT_EQ(u16(b, 2), 0xBC00);  // m = -1
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[4 + j], uint8_t(j | ((15 - j) << 4))) << j;
}

TEST(BlockFormats, Q5_0ByHand) {
  // x[j] = (j - 16) / 2: largest magnitude x[0] = -8, d = 0.5, code = j; bit 4 set for j >= 16.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16) / 2;
  auto b = encode_block(BlockType::kQ5_0, x);
  ASSERT_EQ(b.size(), 22u);
  EXPECT_EQ(u16(b, 0), 0x3800);  // 0.5
  EXPECT_EQ(b[2], 0x00);
  EXPECT_EQ(b[3], 0x00);
  EXPECT_EQ(b[4], 0xFF);
  EXPECT_EQ(b[5], 0xFF);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[6 + j], uint8_t(j | (j << 4))) << j;
  std::vector<float> y(32);
  dequantize_row(BlockType::kQ5_0, b.data(), 32, y.data());
  for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(y[j], x[j]) << j;
}

TEST(BlockFormats, Q5_1ByHand) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = float(j);  // min 0, max 31: d = 1, m = 0, code = j
  auto b = encode_block(BlockType::kQ5_1, x);
  ASSERT_EQ(b.size(), 24u);
  EXPECT_EQ(u16(b, 0), 0x3C00);
  EXPECT_EQ(u16(b, 2), 0x0000);
  EXPECT_EQ(b[4] | (b[5] << 8), 0x0000);
  EXPECT_EQ(b[6] | (b[7] << 8), 0xFFFF);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[8 + j], uint8_t(j | (j << 4))) << j;
  std::vector<float> y(32);
  dequantize_row(BlockType::kQ5_1, b.data(), 32, y.data());
  for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(y[j], x[j]) << j;
}

// Every value within half a quantization step of its original, plus the f16 rounding of the
// block's scale (and offset) times the largest code; q4_0 / q5_0 clip the side opposite to the
// largest magnitude at 7 (15) steps for 8 (16), so there the bound is one whole step.
TEST(BlockFormats, RoundTripWithinHalfAStepPerBlock) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  for (BlockType t : kAll) {
    const BlockFormat& f = block_format(t);
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> x(32);
      const float scale = std::pow(10.f, float(trial % 7) - 3);
      for (auto& v : x) v = nd(rng) * scale + (f.has_min ? scale * 2 : 0);
      const BlockParams p = fit_block(t, x.data());
      auto b = encode_block(t, x);
      std::vector<float> y(32);
      dequantize_row(t, b.data(), 32, y.data());
      const float step = std::fabs(p.d), max_code = float(f.levels);
      const bool clips = t == BlockType::kQ4_0 || t == BlockType::kQ5_0;
      const float tol = (clips ? step : step / 2) + std::fabs(p.d - p.d_stored) * max_code + std::fabs(p.m - p.m_stored) + 1e-6f * scale;
      for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[j] - y[j]), tol) << f.name << " trial " << trial << " j " << j;
    }
  }
}

TEST(BlockFormats, ZeroAndConstantBlocks) {
  for (BlockType t : kAll) {
    std::vector<float> zero(32, 0.f), y(32, 1.f);
    auto b = encode_block(t, zero);
    dequantize_row(t, b.data(), 32, y.data());
    for (float v : y) EXPECT_EQ(v, 0.f) << block_format(t).name;
    std::vector<float> c(32, 0.3f);
    b = encode_block(t, c);
    dequantize_row(t, b.data(), 32, y.data());
    for (float v : y) EXPECT_NEAR(v, 0.3f, 2e-4f) << block_format(t).name;  // f16 of 0.3 (or of d)
  }
  EXPECT_THROW(quantize_row(BlockType::kQ4_0, std::vector<float>(33).data(), 33, nullptr), Error);
}

TEST(BlockQuantCodec, OddColumnsArePaddedAndCounted) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  MatrixRM W(7, 50);
  for (int64_t i = 0; i < W.size(); ++i) W.data()[i] = nd(rng);
  for (BlockType t : kAll) {
    const Codec& c = find_codec(block_format(t).name);
    const json r = c.resolve(json::object(), 7, 50);
    auto ct = c.encode(W, r, CodecContext{});
    EXPECT_EQ(ct.method(), block_format(t).name);
    const v1::Array& a = find_array(ct, "blocks");
    EXPECT_EQ(array_shape(a), (std::vector<int64_t>{7, 2 * block_format(t).bytes}));  // 50 -> 64 inputs
    EXPECT_GE(c.stored_bytes(ct), uint64_t(7 * 2 * block_format(t).bytes));
    MatrixRM D = c.decode(ct);
    ASSERT_EQ(D.rows(), 7);
    ASSERT_EQ(D.cols(), 50);
    const double rel = (D - W).norm() / W.norm();
    EXPECT_LT(rel, t == BlockType::kQ8_0 ? 0.01 : 0.2) << block_format(t).name;
  }
}

TEST(BlockQuantCodec, InOutOrientationQuantizesAlongTheInputs) {
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0, 1);
  MatrixRM W(40, 6);  // stored (in = 40, out = 6), as a GPT-2 Conv1D weight
  for (int64_t i = 0; i < W.size(); ++i) W.data()[i] = nd(rng);
  const Codec& c = find_codec("q8_0");
  auto ct = c.encode(W, c.resolve({{"orientation", "in_out"}}, 40, 6), CodecContext{});
  EXPECT_EQ(array_shape(find_array(ct, "blocks")), (std::vector<int64_t>{6, 2 * 34}));
  MatrixRM D = c.decode(ct);
  ASSERT_EQ(D.rows(), 40);
  EXPECT_LT((D - W).norm() / W.norm(), 0.01);
  // The same bytes as the transposed matrix quantized out_in: blocks always run along the inputs.
  auto ct2 = c.encode(MatrixRM(W.transpose()), c.resolve(json::object(), 6, 40), CodecContext{});
  EXPECT_EQ(find_array(ct2, "blocks").data(), find_array(ct, "blocks").data());
}

TEST(BlockQuantCodec, BadParamsAndCorruptTensors) {
  const Codec& c = find_codec("q4_0");
  EXPECT_THROW(c.resolve({{"bits", 4}}, 4, 32), ParamError);
  EXPECT_THROW(c.resolve({{"orientation", "sideways"}}, 4, 32), ParamError);
  EXPECT_THROW(c.resolve({{"calibration", "awq"}}, 4, 32), ParamError);
  MatrixRM W = MatrixRM::Random(4, 32);
  EXPECT_THROW(c.encode(W, c.resolve({{"calibration", "gptq"}}, 4, 32), CodecContext{}), ParamError);
  auto ct = c.encode(W, c.resolve(json::object(), 4, 32), CodecContext{});
  {
    auto bad = ct;
    bad.mutable_arrays(0)->mutable_data()->resize(10);  // size no longer matches its shape
    EXPECT_THROW(c.decode(bad), FormatError);
  }
  {
    auto bad = ct;
    bad.set_shape(1, 64);  // claims 64 inputs: the blocks of 32 do not cover them
    EXPECT_THROW(c.decode(bad), FormatError);
  }
  {
    auto bad = ct;
    bad.set_params_json("{not json");
    EXPECT_THROW(c.decode(bad), FormatError);
  }
  {
    auto bad = ct;
    bad.mutable_arrays(0)->set_dtype(v1::I8);
    EXPECT_THROW(c.decode(bad), FormatError);
  }
}

// GPTQ minimises the layer loss tr(D C D^T) that round-to-nearest ignores: on correlated inputs
// it must be clearly lower for every type.
TEST(Gptq, LowerLayerLossThanRoundToNearest) {
  std::mt19937 rng(9);
  std::normal_distribution<double> nd(0, 1);
  const int64_t out = 48, in = 96, n = 2000, k = 12;
  Eigen::MatrixXd A(n, k), B(k, in), X(n, in);
  for (int64_t i = 0; i < A.size(); ++i) A.data()[i] = nd(rng);
  for (int64_t i = 0; i < B.size(); ++i) B.data()[i] = nd(rng);
  X = A * B;
  for (int64_t i = 0; i < X.size(); ++i) X.data()[i] += 0.1 * nd(rng);
  const MatrixRMd C = (X.transpose() * X) / double(n);
  MatrixRM W(out, in);
  for (int64_t i = 0; i < W.size(); ++i) W.data()[i] = float(nd(rng));
  auto loss = [&](const MatrixRM& Q) {
    const Eigen::MatrixXd D = (W - Q).cast<double>();
    return (D * C * D.transpose()).trace();
  };
  for (BlockType t : kAll) {
    const int64_t rb = in / 32 * block_format(t).bytes;
    std::vector<uint8_t> rtn(size_t(out * rb)), gq(size_t(out * rb));
    for (int64_t o = 0; o < out; ++o) quantize_row(t, W.row(o).data(), in, rtn.data() + o * rb);
    gptq_quantize(t, W, C, gq.data());
    const double l_rtn = loss(dequantize_blocks(t, rtn.data(), out, in));
    const double l_gptq = loss(dequantize_blocks(t, gq.data(), out, in));
    EXPECT_LT(l_gptq, 0.8 * l_rtn) << block_format(t).name << ": gptq " << l_gptq << " vs rtn " << l_rtn;
  }
}

// On the trained fixtures, q4_0 of every attention and MLP weight with GPTQ calibration has a lower
// KL to the dense model than plain q4_0, measured on held-out text (the fixtures' eval_ids, 16
// windows of 128 tokens) that calibration (self-sampled sequences) never saw.
class BlockQuantModel : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(BlockQuantModel, GptqBeatsRoundToNearestInKl) {
  const auto& [name, regex] = GetParam();
  const std::string dir = std::string(TSM_FIXTURES_DIR) + "/" + name;
  const HfModelDir model = HfModelDir::open(dir);
  std::ifstream f(dir + "/reference.json");
  const json ref = json::parse(f);
  const auto ids = ref.at("eval_ids").get<std::vector<int32_t>>();
  auto windows = split_windows(std::span<const int32_t>(ids.data(), 2048), 128);
  ASSERT_EQ(windows.size(), 16u);
  const auto dense = load_transformer(ModelWeights::from_parts(model, nullptr));
  auto kl_of = [&](const json& params, bool calibrate) {
    ModelArtifactOptions opt;
    opt.eval = false;
    opt.baselines = false;
    opt.calibrate = calibrate;
    const auto art = build_model_artifact(model, regex, "q4_0", params, CodecContext{}, "", opt);
    const auto comp = load_transformer(ModelWeights::from_parts(std::nullopt, std::make_shared<const v1::Artifact>(art)));
    return compare_models(*dense, *comp, windows, "held-out").kl_mean;
  };
  const double rtn = kl_of(json::object(), false);
  const double gptq = kl_of({{"calibration", "gptq"}}, true);
  EXPECT_GT(rtn, 0);
  EXPECT_LT(gptq, rtn) << name << ": gptq KL " << gptq << " vs plain " << rtn;
  RecordProperty("kl_q4_0", std::to_string(rtn));
  RecordProperty("kl_q4_0_gptq", std::to_string(gptq));
  std::printf("%s: KL q4_0 %.4f, q4_0 + gptq %.4f\n", name.c_str(), rtn, gptq);
}

INSTANTIATE_TEST_SUITE_P(Trained, BlockQuantModel,
                         ::testing::Values(std::make_pair(std::string("gpt2-man"), std::string(R"(\.h\.\d+\.(attn|mlp)\.)")),
                                           std::make_pair(std::string("llama-man"), std::string(R"(layers\.\d+\.(self_attn|mlp)\.)"))),
                         [](const auto& info) { return info.param.first == "gpt2-man" ? std::string("Gpt2Man") : std::string("LlamaMan"); });
