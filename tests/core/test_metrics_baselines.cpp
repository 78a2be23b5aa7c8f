// Metrics (relative error, cosine stats) and the baselines: fp16, int8-row, Q4_0 (llama.cpp's exact
// scheme), truncated SVD at the nearest bytes; plus the svd / fp16 / int8 codecs of the method table.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <random>

#include "formats/array_pack.h"
#include "pipeline/baselines.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "methods/svd/svd_codec.h"
#include "metrics/metrics.h"

using namespace tsm;

namespace {

MatrixRM random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

const v1::Baseline& find(const std::vector<v1::Baseline>& b, const std::string& m) {
  for (const auto& x : b)
    if (x.method() == m) return x;
  throw std::runtime_error("no baseline " + m);
}

}  // namespace

TEST(Metrics, KnownValues) {
  MatrixRM A(3, 2), B(3, 2);
  A << 1, 0, 0, 1, 0, 0;
  B << 1, 0, 0, 0, 0, 0;
  ErrorStats s = error_stats(A, B);
  EXPECT_NEAR(s.rel_error, std::sqrt(0.5), 1e-12);
  EXPECT_DOUBLE_EQ(s.cos_min, 0.0);               // row 1 lost entirely
  EXPECT_NEAR(s.cos_mean, 2.0 / 3.0, 1e-12);      // rows 0 and 2 (both zero) count as 1
  EXPECT_DOUBLE_EQ(s.max_abs_error, 1.0);
  ErrorStats same = error_stats(A, A);
  EXPECT_EQ(same.rel_error, 0.0);
  EXPECT_EQ(same.cos_min, 1.0);
  MatrixRM Z = MatrixRM::Zero(3, 2);
  EXPECT_EQ(error_stats(Z, Z).rel_error, 0.0);
  EXPECT_TRUE(std::isinf(error_stats(Z, A).rel_error));
  EXPECT_THROW(error_stats(A, MatrixRM::Zero(2, 2)), Error);
}

TEST(Metrics, PercentileAndFill) {
  MatrixRM A = MatrixRM::Ones(1000, 4), B = A;
  for (int i = 0; i < 20; ++i) B.row(i) << 1, -1, 1, -1;  // cosine 0 for 2% of the rows
  ErrorStats s = error_stats(A, B);
  EXPECT_NEAR(s.cos_p01, 0.0, 1e-12);
  EXPECT_NEAR(s.cos_mean, 0.98, 1e-12);
  v1::Metrics m;
  fill_metrics(m, s, 1000, 1000, 4, 2);
  EXPECT_EQ(m.dense_f32_bytes(), 16000u);
  EXPECT_EQ(m.source_bytes(), 8000u);
  EXPECT_DOUBLE_EQ(m.ratio_f32(), 16.0);
  EXPECT_DOUBLE_EQ(m.ratio_source(), 8.0);
}

TEST(Baselines, SizesAndErrorsAreSane) {
  MatrixRM A = random_matrix(256, 512, 1);
  const uint64_t n = 256 * 512;
  auto b = compute_baselines(A, n, 4);  // target: 1/4 of f32
  ASSERT_EQ(b.size(), 4u);
  const auto& f16 = find(b, "fp16").metrics();
  const auto& i8 = find(b, "int8-row").metrics();
  const auto& q4 = find(b, "q4_0").metrics();
  const auto& sv = find(b, "svd");
  EXPECT_EQ(f16.stored_bytes(), 2 * n + 32);
  EXPECT_EQ(i8.stored_bytes(), n + 4 * 256 + 40);
  EXPECT_EQ(q4.stored_bytes(), n / 32 * 18 + 32);
  EXPECT_GT(f16.rel_error(), 1e-5);
  EXPECT_LT(f16.rel_error(), 5e-4);   // half precision: ~2^-11 relative
  EXPECT_LT(i8.rel_error(), 2e-2);
  EXPECT_GT(i8.rel_error(), f16.rel_error());
  EXPECT_LT(q4.rel_error(), 0.2);
  EXPECT_GT(q4.rel_error(), i8.rel_error());
  EXPECT_GT(f16.cos_min(), 0.9999);
  // svd: rank whose bytes (rank * (rows + cols) * 4 + metadata) are nearest n bytes: 131072 / 3072 -> 43
  EXPECT_EQ(json::parse(sv.params_json())["rank"], 43);
  EXPECT_NEAR(double(sv.metrics().stored_bytes()), double(n), 4.0 * (256 + 512));
  EXPECT_GT(sv.metrics().rel_error(), 0.3);  // random matrices are not low rank
  EXPECT_LT(sv.metrics().rel_error(), 1.0);
  for (const auto& x : b) EXPECT_DOUBLE_EQ(x.metrics().ratio_f32(), double(4 * n) / x.metrics().stored_bytes());
}

TEST(Baselines, Q4_0IsLlamaCppExact) {
  // Integers in [-8, 7] with -8 the largest magnitude in every block: d = -8 / -8 = 1, exact.
  MatrixRM A(4, 64);
  std::mt19937 g(3);
  for (int64_t i = 0; i < A.size(); ++i) A.data()[i] = static_cast<float>(int(g() % 16) - 8);
  for (int blk = 0; blk < 8; ++blk) A.data()[blk * 32 + 5] = -8.f;
  EXPECT_EQ(find(compute_baselines(A, 1000, 4), "q4_0").metrics().rel_error(), 0.0);
  // +8 as the largest magnitude: d = -1, so a -8 in the same block clips to -7 (llama.cpp behaviour).
  MatrixRM B = MatrixRM::Zero(1, 32);
  B(0, 0) = 8.f;
  B(0, 1) = -8.f;
  B(0, 2) = 3.f;
  const auto m = find(compute_baselines(B, 1000, 4), "q4_0").metrics();
  EXPECT_DOUBLE_EQ(m.max_abs_error(), 1.0);
  EXPECT_NEAR(m.rel_error(), 1.0 / std::sqrt(64 + 64 + 9), 1e-12);
  // a row length that is not a multiple of 32 is padded, bytes count whole blocks
  MatrixRM C = random_matrix(2, 40, 4);
  EXPECT_EQ(find(compute_baselines(C, 1000, 4), "q4_0").metrics().stored_bytes(), 2u * 2 * 18 + 32);
}

TEST(Baselines, SvdExactOnLowRank) {
  MatrixRM A = random_matrix(300, 5, 5) * random_matrix(5, 128, 6);
  const uint64_t target = 5 * (300 + 128) * 4 + 48;
  const auto all = compute_baselines(A, target, 2);
  const auto& sv = find(all, "svd");
  EXPECT_EQ(json::parse(sv.params_json())["rank"], 5);
  EXPECT_LT(sv.metrics().rel_error(), 1e-5);
  EXPECT_DOUBLE_EQ(sv.metrics().ratio_source(), double(300 * 128 * 2) / sv.metrics().stored_bytes());
}

TEST(SvdCodec, EckartYoungAndEps) {
  for (auto [rows, cols] : {std::pair{200, 60}, std::pair{50, 120}}) {
    MatrixRM A = random_matrix(rows, cols, 7);
    for (int i = 0; i < A.cols(); ++i) A.col(i) *= std::pow(0.9f, i);  // decaying spectrum
    Eigen::JacobiSVD<Eigen::MatrixXf> ref(A);
    const auto S = ref.singularValues().cast<double>();
    const Codec& c = find_codec("svd");
    for (int k : {1, 5, 20}) {
      auto t = c.encode(A, c.resolve({{"rank", k}}, rows, cols), {});
      double err = (A - c.decode(t)).norm() / A.norm();
      double opt = std::sqrt(S.tail(S.size() - k).squaredNorm() / S.squaredNorm());
      EXPECT_NEAR(err, opt, 1e-4 * opt + 1e-6) << rows << "x" << cols << " rank " << k;
    }
    auto t = c.encode(A, c.resolve({{"eps", 0.1}}, rows, cols), {});
    EXPECT_LE((A - c.decode(t)).norm() / A.norm(), 0.1 + 1e-5);
    EXPECT_THROW(c.resolve({{"rank", 0}}, rows, cols), ParamError);
    EXPECT_THROW(c.resolve({{"rank", 3}, {"eps", 0.1}}, rows, cols), ParamError);
    EXPECT_THROW(c.resolve({{"rnak", 3}}, rows, cols), ParamError);
  }
}

TEST(MethodTable, RowsAndRoundTrips) {
  std::vector<std::string> names;
  for (const Codec* c : all_codecs()) names.emplace_back(c->name());
  ASSERT_GE(names.size(), 4u);  // other methods (saten, ...) follow these rows
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4), (std::vector<std::string>{"tt-token", "svd", "fp16", "int8"}));
  for (const auto& n : names) EXPECT_EQ(std::count(names.begin(), names.end(), n), 1) << n;
  try {
    find_codec("ttm-typo");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tt-token"), std::string::npos);
  }
  MatrixRM A = random_matrix(64, 96, 8);
  for (const char* m : {"tt-token", "svd", "fp16", "int8"}) {
    const Codec* c = &find_codec(m);
    EXPECT_TRUE(c->param_schema().is_object());
    auto t = compress_matrix(A, "x", DType::F16, std::string(c->name()), json::object(), {}, {});
    EXPECT_EQ(decode_tensor(t).rows(), 64);
    EXPECT_EQ(t.metrics().stored_bytes(), c->stored_bytes(t));
    EXPECT_EQ(t.baselines_size(), 4);
  }
  auto f = compress_matrix(A, "x", DType::F32, "fp16", json::object(), {}, {false});
  EXPECT_EQ(f.baselines_size(), 0);
  EXPECT_LT(f.metrics().rel_error(), 5e-4);
  auto q = compress_matrix(A, "x", DType::F32, "int8", json::object(), {}, {false});
  EXPECT_LT(q.metrics().rel_error(), 2e-2);
  EXPECT_THROW(compress_matrix(A, "x", DType::F32, "fp16", {{"rank", 3}}, {}, {}), ParamError);
}

TEST(QuantCodecs, RejectCorruptedArrays) {
  MatrixRM A = random_matrix(8, 16, 9);
  for (const char* m : {"fp16", "int8", "svd"}) {
    const Codec& c = find_codec(m);
    auto t = c.encode(A, c.resolve(json::object(), 8, 16), {});
    auto bad = t;
    bad.mutable_arrays(0)->mutable_data()->resize(3);
    EXPECT_THROW(c.decode(bad), FormatError) << m;
    auto wrong_shape = t;
    wrong_shape.set_shape(0, 9);
    EXPECT_THROW(c.decode(wrong_shape), FormatError) << m;
    auto missing = t;
    missing.mutable_arrays()->RemoveLast();
    EXPECT_THROW(c.decode(missing), FormatError) << m;
  }
}
