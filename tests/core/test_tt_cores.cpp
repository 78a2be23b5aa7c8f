// Low-precision tensor-train cores (methods/tt_core_arrays.h) and the methods that store them:
// saten with core_bits 8 / 4, and qtt (a block-quantized base plus a TT-matrix correction of its
// residual). Properties: rounding error within half a step per column; 4-bit packing of an odd
// count; exact reconstruction at full TT rank with f32 cores; a correction never worse than its
// base beyond the cores' rounding; honest bytes; corrupted arrays refused.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <cstring>
#include <functional>
#include <random>

#include "common/error.h"
#include "formats/array_pack.h"
#include "methods/method_table.h"
#include "methods/saten/saten_codec.h"
#include "methods/tt_core_arrays.h"
#include "pipeline/compress.h"
#include "support/param_error.h"

using namespace tsm;

namespace {

MatrixRM random_matrix(int64_t r, int64_t c, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, scale);
  MatrixRM M(r, c);
  for (int64_t i = 0; i < M.size(); ++i) M.data()[i] = n(g);
  return M;
}

double rel(const MatrixRM& A, const MatrixRM& B) { return double((A - B).norm() / A.norm()); }

v1::Array* array(v1::CompressedTensor& t, const std::string& name) {
  for (auto& a : *t.mutable_arrays())
    if (a.name() == name) return &a;
  return nullptr;
}

}  // namespace

TEST(TtCoreArrays, RoundingStaysWithinHalfAStepPerColumn) {
  const std::vector<int64_t> shape{3, 5, 7};  // 105 values: an odd count for the 4-bit packing
  std::vector<float> core(105);
  std::mt19937 g(1);
  std::normal_distribution<float> n;
  for (size_t e = 0; e < core.size(); ++e) core[e] = n(g) * float(1 + e % 7);  // columns of unequal size
  core[3] = 0.f;
  for (int bits : {32, 8, 4}) {
    v1::CompressedTensor t;
    add_core_arrays(t, 2, shape, core, bits);
    const auto back = read_core_arrays(t, 2, shape, bits, "test: ");
    ASSERT_EQ(back, round_core(core, 7, bits)) << bits;
    std::vector<float> colmax(7, 0.f);
    for (size_t e = 0; e < core.size(); ++e) colmax[e % 7] = std::max(colmax[e % 7], std::abs(core[e]));
    for (size_t e = 0; e < core.size(); ++e) {
      const float step = bits == 32 ? 0.f : colmax[e % 7] / (bits == 8 ? 127.f : 7.f);
      EXPECT_LE(std::abs(back[e] - core[e]), 0.5f * step * 1.0001f) << bits << " element " << e;
    }
    EXPECT_EQ(t.arrays(0).data().size(), bits == 32 ? 420u : bits == 8 ? 105u : 53u);
    EXPECT_EQ(core_payload_bytes(shape, bits), bits == 32 ? 420u : (bits == 8 ? 105u : 53u) + 28u);
  }
  EXPECT_EQ(test::param_error_field([] { checked_core_bits(16); }), "core_bits");
}

TEST(TtCoreArrays, CorruptedArraysAreRefused) {
  const std::vector<int64_t> shape{2, 3, 4};
  const std::vector<float> core(24, 0.5f);
  for (int bits : {8, 4}) {
    v1::CompressedTensor good;
    add_core_arrays(good, 0, shape, core, bits);
    auto expect_bad = [&](const std::function<void(v1::CompressedTensor&)>& corrupt, const char* what) {
      v1::CompressedTensor t = good;
      corrupt(t);
      EXPECT_THROW(read_core_arrays(t, 0, shape, bits, "test: "), FormatError) << bits << ": " << what;
    };
    expect_bad([](auto& t) { t.mutable_arrays(0)->mutable_data()->pop_back(); }, "truncated core");
    expect_bad([](auto& t) { t.mutable_arrays()->RemoveLast(); }, "no scales");
    expect_bad([](auto& t) { t.mutable_arrays(1)->set_shape(0, 3); t.mutable_arrays(1)->mutable_data()->resize(12); }, "scales shape");
    expect_bad([](auto& t) { const float nan = std::nanf(""); std::memcpy(t.mutable_arrays(1)->mutable_data()->data(), &nan, 4); },
               "NaN scale");
    expect_bad([&](auto& t) { t.mutable_arrays(0)->set_dtype(bits == 8 ? v1::U8 : v1::I8); }, "dtype");
    // read at the other width
    EXPECT_THROW(read_core_arrays(good, 0, shape, bits == 8 ? 4 : 8, "test: "), FormatError);
    EXPECT_THROW(read_core_arrays(good, 0, shape, 32, "test: "), FormatError);
  }
}

TEST(SatenCoreBits, LowPrecisionCoresCostFewerBytesAndLittleError) {
  MatrixRM W = random_matrix(64, 96, 2, 0.05f);
  W += random_matrix(64, 4, 3) * random_matrix(4, 96, 4) * 0.3f;
  const Codec& c = find_codec("saten");
  const json base{{"ranks", 8}, {"density", 0.03}};
  std::vector<uint64_t> bytes;
  std::vector<double> err;
  for (int bits : {32, 8, 4}) {
    json p = base;
    p["core_bits"] = bits;
    const auto t = compress_matrix(W, "w", DType::F32, "saten", p, {}, {false});
    bytes.push_back(c.stored_bytes(t));
    err.push_back(rel(W, c.decode(t)));
    auto op = make_compressed_linear(t);  // the runtime operator reads the rounded cores
    const MatrixRM X = random_matrix(5, 96, 5), D = c.decode(t);
    MatrixRM Y(5, 64);
    op->forward(X.data(), 5, Y.data());
    EXPECT_LT((Y - X * D.transpose()).norm(), 1e-4 * Y.norm()) << bits;
  }
  EXPECT_LT(bytes[1], bytes[0]);
  EXPECT_LT(bytes[2], bytes[1]);
  EXPECT_LE(err[1], 1.05 * err[0] + 1e-3) << "8-bit cores: the sparse part re-fitted to them";
  EXPECT_LE(err[2], 4 * err[0]);  // 4-bit cores: each core's rounding compounds along the train (~3x here)
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"core_bits", 16}}, 64, 96); }), "core_bits");
  // A stored core_bits that disagrees with the arrays is a format error.
  auto t = compress_matrix(W, "w", DType::F32, "saten", json{{"ranks", 4}, {"core_bits", 8}}, {}, {false});
  json pj = json::parse(t.params_json());
  pj["core_bits"] = 4;
  t.set_params_json(pj.dump());
  EXPECT_THROW(c.decode(t), FormatError);
  pj["core_bits"] = "8";
  t.set_params_json(pj.dump());
  EXPECT_THROW(c.decode(t), FormatError);
}

TEST(Qtt, FullRankF32CoresReconstructTheResidualExactly) {
  const MatrixRM W = random_matrix(32, 48, 6);
  const Codec& c = find_codec("qtt");
  const auto t = c.encode(W, c.resolve({{"base", "q2_k"}, {"rank", 4096}, {"core_bits", 32}}, 32, 48), {});
  EXPECT_LT(rel(W, c.decode(t)), 1e-5);
}

TEST(Qtt, TwoCoreCorrectionIsTheEckartYoungOptimumOfTheRearrangedResidual) {
  // With two cores the TT-matrix of R (64, 256), modes (8, 8) x (16, 16), is the matrix
  // M[(o1, i1), (o2, i2)] (Van Loan's rearrangement), and a rank-r TT is a rank-r factorization of
  // M: the best one leaves the energy of M's singular values beyond r.
  const MatrixRM W = random_matrix(64, 256, 7);
  const Codec& q = find_codec("q2_k");
  const Codec& c = find_codec("qtt");
  const auto base = q.encode(W, q.resolve({}, 64, 256), {});
  const MatrixRM R = W - q.decode(base);
  Eigen::MatrixXd M(8 * 16, 8 * 16);
  for (int64_t i = 0; i < 64; ++i)
    for (int64_t j = 0; j < 256; ++j) M((i / 8) * 16 + j / 16, (i % 8) * 16 + j % 16) = R(i, j);
  const Eigen::VectorXd s = Eigen::JacobiSVD<Eigen::MatrixXd>(M).singularValues();
  const int64_t r = 6;
  const double optimum = s.tail(s.size() - r).squaredNorm();
  std::vector<double> err;
  for (int bits : {32, 8, 4}) {
    const auto t = c.encode(W, c.resolve({{"base", "q2_k"}, {"order", 2}, {"rank", r}, {"core_bits", bits}}, 64, 256), {});
    err.push_back((W - c.decode(t)).cast<double>().squaredNorm());
    // stored: the base's blocks, three small i64 arrays (out_modes, in_modes, ranks), the cores
    // (r_k, o_k, i_k, r_{k+1}) and, quantized, their scales; each array's shape costs 8 bytes a dimension
    const std::vector<int64_t> ranks = unpack<int64_t>(find_array(t, "ranks"));
    ASSERT_EQ(ranks, (std::vector<int64_t>{1, r, 1}));
    uint64_t cores = 0;
    const std::vector<int64_t> om{8, 8}, im{16, 16};
    for (size_t k = 0; k < 2; ++k) {
      const std::vector<int64_t> sh{ranks[k], om[k], im[k], ranks[k + 1]};
      cores += core_payload_bytes(sh, bits) + 8 * (bits == 32 ? 4 : bits == 8 ? 4 + 1 : 1 + 1);  // 4-bit: packed 1-D
    }
    EXPECT_EQ(c.stored_bytes(t), q.stored_bytes(base) + cores + (16 + 8) + (16 + 8) + (24 + 8)) << bits;
  }
  EXPECT_GE(err[0], 0.999 * optimum);
  EXPECT_LE(err[0], 1.001 * optimum);
  EXPECT_LE(err[1], 1.02 * optimum);
  EXPECT_LT(err[2], R.cast<double>().squaredNorm());
  EXPECT_LT(err[0], R.cast<double>().squaredNorm());
}

TEST(Qtt, WhiteResidualGainsLittleAndInOutCorrectsTheSameWeight) {
  const MatrixRM W = random_matrix(64, 256, 10);
  const Codec& c = find_codec("qtt");
  const Codec& q = find_codec("q4_k");
  const double eb = rel(W, q.decode(q.encode(W, q.resolve({}, 64, 256), {})));
  const auto t = c.encode(W, c.resolve({{"rank", 4}}, 64, 256), {});
  const double ec = rel(W, c.decode(t));
  EXPECT_LE(ec, eb * 1.001);
  EXPECT_GT(ec, eb * 0.9);  // i.i.d. noise holds no TT structure for rank 4 to take
  const MatrixRM Wt = W.transpose();
  const auto b = c.encode(Wt, c.resolve({{"rank", 4}, {"orientation", "in_out"}}, 256, 64), {});
  EXPECT_LT((MatrixRM(c.decode(b).transpose()) - c.decode(t)).norm(), 1e-5 * W.norm());
}

TEST(Qtt, CalibratedBaseIsGptq) {
  const int64_t out = 48, in = 256;
  const MatrixRM W = random_matrix(out, in, 11);
  MatrixRMd C = MatrixRMd::Zero(in, in);
  for (int64_t i = 0; i < in; ++i) C(i, i) = i < 16 ? 100.0 : 0.01;
  const Codec& c = find_codec("qtt");
  const json plain = c.resolve({{"base", "q3_k"}}, out, in), gptq = c.resolve({{"base", "q3_k"}, {"calibration", "gptq"}}, out, in);
  EXPECT_TRUE(c.needs_calibration(gptq));
  EXPECT_FALSE(c.needs_calibration(plain));
  EXPECT_THROW(c.encode(W, gptq, {}), ParamError);
  const Calibration cal{&C, 0, "cholesky"};
  auto loss = [&](const MatrixRM& Wh) {
    const Eigen::MatrixXd E = (W - Wh).cast<double>();
    return (E * C * E.transpose()).trace();
  };
  EXPECT_LT(loss(c.decode(c.encode_calibrated(W, gptq, cal, {}))), loss(c.decode(c.encode(W, plain, {}))));
}

TEST(Qtt, BadParamsAndCorruptedTensors) {
  const Codec& c = find_codec("qtt");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"rank", 0}}, 8, 32); }), "rank");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"order", 1}}, 8, 32); }), "order");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"core_bits", 2}}, 8, 32); }), "core_bits");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"base", "q9"}}, 8, 32); }), "base");
  const MatrixRM W = random_matrix(16, 64, 12);
  const auto good = c.encode(W, c.resolve({{"rank", 3}, {"order", 2}}, 16, 64), {});
  ASSERT_NO_THROW(c.decode(good));
  auto expect_bad = [&](const std::function<void(v1::CompressedTensor&)>& corrupt, const char* what) {
    v1::CompressedTensor t = good;
    corrupt(t);
    EXPECT_THROW(c.decode(t), FormatError) << what;
  };
  expect_bad([](auto& t) { array(t, "core_1")->mutable_data()->pop_back(); }, "truncated core");
  expect_bad([](auto& t) { array(t, "blocks")->mutable_data()->pop_back(); }, "truncated base");
  expect_bad([](auto& t) { int64_t v = 2; std::memcpy(array(t, "ranks")->mutable_data()->data(), &v, 8); }, "r_0 != 1");
  expect_bad([](auto& t) { int64_t v = 99; std::memcpy(array(t, "ranks")->mutable_data()->data() + 8, &v, 8); }, "rank above the cap");
  expect_bad([](auto& t) { int64_t v = 3; std::memcpy(array(t, "in_modes")->mutable_data()->data(), &v, 8); }, "modes");
  expect_bad([](auto& t) { int64_t v = 0; std::memcpy(array(t, "out_modes")->mutable_data()->data(), &v, 8); }, "zero mode");
  expect_bad([](auto& t) { t.set_params_json("{not json"); }, "params_json");
  expect_bad([](auto& t) {
    json p = json::parse(t.params_json());
    p["core_bits"] = 4;
    t.set_params_json(p.dump());
  }, "core_bits disagrees");
  expect_bad([](auto& t) {
    json p = json::parse(t.params_json());
    p["order"] = 3;
    t.set_params_json(p.dump());
  }, "order disagrees");
  expect_bad([](auto& t) { array(t, "core_scales_0")->set_name("x"); }, "scales missing");
}

TEST(CorrectionBase, NarrowRowsShareSuperBlocksAndOlderTensorsReadAsRows) {
  // 128 inputs: a k-quant base in rows packing pads each row to 256 values; auto packs two rows per
  // super-block, as the block types do. A tensor written before the base had packing (no "packing"
  // in its params) holds rows-packed blocks and still decodes.
  const MatrixRM W = random_matrix(64, 128, 13);
  for (const char* method : {"qtt", "qlr"}) {
    const Codec& c = find_codec(method);
    const json fl = c.resolve({{"base", "q3_k"}, {"rank", 4}}, 64, 128), rw = c.resolve({{"base", "q3_k"}, {"rank", 4}, {"packing", "rows"}}, 64, 128);
    EXPECT_EQ(fl["packing"], "flat") << method;
    const auto tf = c.encode(W, fl, {}), tr = c.encode(W, rw, {});
    const Codec& q = find_codec("q3_k");
    EXPECT_EQ(c.stored_bytes(tr) - c.stored_bytes(tf),
              q.stored_bytes(q.encode(W, q.resolve({{"packing", "rows"}}, 64, 128), {})) - q.stored_bytes(q.encode(W, q.resolve({}, 64, 128), {})))
        << method;
    EXPECT_GT(c.stored_bytes(tr), c.stored_bytes(tf)) << method;
    auto old = tr;
    json p = json::parse(old.params_json());
    p.erase("packing");
    old.set_params_json(p.dump());
    EXPECT_EQ(c.decode(old), c.decode(tr)) << method;
    auto bad = tf;
    json pb = json::parse(bad.params_json());
    pb.erase("packing");  // flat blocks read as rows: the sizes disagree
    bad.set_params_json(pb.dump());
    EXPECT_THROW(c.decode(bad), FormatError) << method;
  }
  EXPECT_EQ(test::param_error_field([] { find_codec("qtt").resolve({{"base", "q3_k"}, {"packing", "flat"}}, 64, 100); }), "packing");
}
