// The tt-token codec (TensorSLM): parameters, rank modes (fixed / eps / ratio), storage dtypes,
// agreement with the reference TT-SVD, the TokenTrainTable decode API and corrupted inputs.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>

#include "formats/array_pack.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "methods/tt_token/token_train_table.h"
#include "methods/tt_token/tt_token_codec.h"
#include "metrics/metrics.h"
#include "tt/tt_svd.h"

using namespace tsm;

namespace {

MatrixRM random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

// Row i: a sum of `terms` rank-1 outer products over modes 8x8x12 (TT ranks <= terms).
void fill_low_rank_row(float* row, int terms, std::mt19937& g) {
  std::normal_distribution<float> d;
  std::fill(row, row + 768, 0.f);
  for (int t = 0; t < terms; ++t) {
    float a[8], b[8], c[12];
    for (auto& x : a) x = d(g);
    for (auto& x : b) x = d(g);
    for (auto& x : c) x = d(g);
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j)
        for (int k = 0; k < 12; ++k) row[(i * 8 + j) * 12 + k] += a[i] * b[j] * c[k];
  }
}

// Rows of unequal difficulty: even rows are rank-1 tensors (exact at ranks 1), odd rows random.
MatrixRM mixed_matrix(int64_t rows, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  MatrixRM m(rows, 768);
  for (int64_t i = 0; i < rows; ++i) {
    if (i % 2 == 0) {
      fill_low_rank_row(m.row(i).data(), 1, g);
      m.row(i) *= 0.3f;
    } else {
      for (int64_t j = 0; j < 768; ++j) m(i, j) = d(g);
    }
  }
  return m;
}

double rel(const MatrixRM& a, const MatrixRM& b) { return (a - b).norm() / a.norm(); }

v1::CompressedTensor enc(const MatrixRM& W, const json& params, const CodecContext& ctx = {}) {
  TtTokenCodec c;
  return c.encode(W, c.resolve(params, W.rows(), W.cols()), ctx);
}

v1::Array* array_named(v1::CompressedTensor& t, const std::string& name) {
  for (auto& a : *t.mutable_arrays())
    if (a.name() == name) return &a;
  return nullptr;
}

}  // namespace

TEST(TtTokenParams, DefaultsAndValidation) {
  TtTokenCodec c;
  json r = c.resolve(json::object(), 100, 768);
  EXPECT_EQ(r["shape"], (json{8, 8, 12}));
  EXPECT_EQ(r["ranks"], (json{4, 4}));
  EXPECT_EQ(r["core_dtype"], "f32");
  EXPECT_EQ(c.resolve({{"order", 4}}, 100, 768)["shape"], (json{4, 4, 4, 12}));
  EXPECT_EQ(c.resolve({{"shape", "auto"}, {"eps", 0.1}}, 100, 768)["eps"], 0.1);
  EXPECT_EQ(c.resolve({{"ranks", 16}}, 100, 768)["ranks"], (json{8, 12}));  // one integer, capped at full ranks
  auto bad = [&](const json& p, const std::string& field) {
    try {
      c.resolve(p, 100, 768);
      ADD_FAILURE() << p.dump() << " accepted";
    } catch (const ParamError& e) {
      EXPECT_EQ(e.field(), field) << p.dump() << ": " << e.what();
    }
  };
  bad({{"bogus", 1}}, "bogus");
  bad({{"shape", {8, 8, 8}}}, "shape");
  bad({{"shape", "square"}}, "shape");
  bad({{"ranks", {4}}}, "ranks");
  bad({{"ranks", {9, 4}}}, "ranks");          // exceeds full rank 8
  bad({{"shape", {4, 4, 4, 12}}, {"ranks", {2, 16, 2}}}, "ranks");  // r_2 > r_1 * n_2 (inconsistent)
  bad({{"ranks", {4, 4}}, {"eps", 0.1}}, "ranks");
  bad({{"eps", -1}}, "eps");
  bad({{"ratio", 0}}, "ratio");
  bad({{"ratio", 100}}, "ratio");             // all-ones ranks already need more than 1/100
  bad({{"core_dtype", "int4"}}, "core_dtype");
  bad({{"order", 0}}, "order");
}

TEST(TtToken, ExactAtFullRanks) {
  MatrixRM W = random_matrix(64, 768, 1);
  for (const json& p : {json{{"ranks", {8, 12}}}, json{{"shape", {4, 4, 4, 12}}, {"ranks", {4, 16, 12}}}, json{{"eps", 0.0}}}) {
    auto t = enc(W, p);
    EXPECT_LT(rel(W, TtTokenCodec().decode(t)), 1e-5) << p.dump();
  }
}

TEST(TtToken, FixedRanksMatchReferenceTtSvdPerRow) {
  MatrixRM W = random_matrix(40, 768, 2);
  for (auto [shape, ranks] : {std::pair{std::vector<int64_t>{8, 8, 12}, std::vector<int64_t>{4, 4}},
                              std::pair{std::vector<int64_t>{4, 4, 4, 12}, std::vector<int64_t>{4, 8, 4}}}) {
    auto t = enc(W, {{"shape", shape}, {"ranks", ranks}});
    MatrixRM D = TtTokenCodec().decode(t);
    TtSvdOptions o;
    o.max_ranks = ranks;
    for (int64_t i = 0; i < W.rows(); ++i) {
      auto ref = tt_svd(std::span<const float>(W.row(i).data(), 768), shape, o).full();
      Eigen::Map<const Eigen::RowVectorXf> R(ref.data(), 768);
      EXPECT_LT((D.row(i) - R).norm() / R.norm(), 1e-5) << "row " << i;
    }
  }
}

TEST(TtToken, ErrorNeverGrowsAsRanksGrow) {
  MatrixRM W = random_matrix(32, 768, 3);
  double prev = 1e9;
  for (int64_t r = 1; r <= 12; ++r) {
    auto t = enc(W, {{"ranks", {std::min<int64_t>(r, 8), r}}});
    double e = rel(W, TtTokenCodec().decode(t));
    EXPECT_LE(e, prev + 1e-6) << r;
    prev = e;
  }
}

TEST(TtToken, EpsBoundPerTokenAndRaggedRanks) {
  MatrixRM W = mixed_matrix(60, 4);
  for (double eps : {0.05, 0.3}) {
    auto t = enc(W, {{"eps", eps}});
    ASSERT_NE(try_find_array(t, "token_ranks"), nullptr);
    ASSERT_NE(try_find_array(t, "offsets"), nullptr);
    MatrixRM D = TtTokenCodec().decode(t);
    for (int64_t i = 0; i < W.rows(); ++i) EXPECT_LE((W.row(i) - D.row(i)).norm(), eps * W.row(i).norm() * (1 + 1e-4) + 1e-6) << i;
    auto tab = TokenTrainTable::from_proto(t);
    EXPECT_EQ(tab.token_ranks(0), (std::vector<int64_t>{1, 1, 1, 1}));  // rank-1 row
    EXPECT_GT(tab.token_ranks(1)[1], 1);                                // random row
  }
}

TEST(TtToken, RatioMeetsBudgetAndBeatsUniformRanks) {
  MatrixRM W = mixed_matrix(200, 5);
  const double dense = 200.0 * 768 * 4;
  TtTokenCodec c;
  for (int64_t r : {2, 4, 6}) {
    auto u = enc(W, {{"ranks", {r, r}}});
    const double eu = rel(W, c.decode(u));
    const double ratio = dense / double(c.stored_bytes(u));
    auto t = enc(W, {{"ratio", ratio}});
    EXPECT_LE(double(c.stored_bytes(t)), dense / ratio) << "budget";
    EXPECT_GT(double(c.stored_bytes(t)), 0.9 * dense / ratio) << "budget mostly used";
    const double et = rel(W, c.decode(t));
    EXPECT_LT(et, (r >= 4 ? 0.9 : 0.99) * eu) << "ratio mode must beat uniform ranks " << r << " at the same size";
  }
  // A bigger budget never hurts.
  double prev = 1e9;
  for (double ratio : {20.0, 10.0, 5.0, 2.0}) {
    double e = rel(W, c.decode(enc(W, {{"ratio", ratio}})));
    EXPECT_LE(e, prev + 1e-9);
    prev = e;
  }
}

TEST(TtToken, RatioHonoursRowWeights) {
  MatrixRM W = random_matrix(100, 768, 6);
  std::vector<float> w(100, 1.f);
  for (int i = 0; i < 10; ++i) w[i] = 100.f;  // frequent tokens
  CodecContext ctx;
  ctx.row_weights = w;
  TtTokenCodec c;
  auto plain = enc(W, {{"ratio", 8.0}});
  auto weighted = enc(W, {{"ratio", 8.0}}, ctx);
  MatrixRM Dp = c.decode(plain), Dw = c.decode(weighted);
  auto weighted_err = [&](const MatrixRM& D) {
    double s = 0;
    for (int i = 0; i < 100; ++i) s += w[i] * (W.row(i) - D.row(i)).squaredNorm();
    return s;
  };
  EXPECT_LT(weighted_err(Dw), weighted_err(Dp));
  EXPECT_LT((W.topRows(10) - Dw.topRows(10)).norm(), (W.topRows(10) - Dp.topRows(10)).norm());
  EXPECT_LE(double(c.stored_bytes(weighted)), 100.0 * 768 * 4 / 8.0);
}

TEST(TtToken, CoreDtypes) {
  MatrixRM W = random_matrix(50, 768, 7);
  TtTokenCodec c;
  for (const char* mode : {"ranks", "eps"}) {
    json base = std::string(mode) == "ranks" ? json{{"ranks", {4, 4}}} : json{{"eps", 0.5}};
    auto t32 = enc(W, base);
    MatrixRM D32 = c.decode(t32);
    for (auto [dt, tol, size_frac] : {std::tuple{"f16", 2e-3, 0.55}, std::tuple{"bf16", 1e-2, 0.55}, std::tuple{"int8", 2e-2, 0.4}}) {
      json p = base;
      p["core_dtype"] = dt;
      auto t = enc(W, p);
      MatrixRM D = c.decode(t);
      EXPECT_LT(rel(D32, D), tol) << mode << " " << dt;
      EXPECT_GT(rel(D32, D), 0.0) << mode << " " << dt << " really quantized";
      EXPECT_LT(double(c.stored_bytes(t)), size_frac * double(c.stored_bytes(t32))) << mode << " " << dt;
      EXPECT_EQ(TokenTrainTable::from_proto(t).core_dtype(), std::string(dt) == "int8" ? DType::I8 : parse_dtype(dt));
    }
  }
}

TEST(TtToken, StoredBytesAreHonest) {
  MatrixRM W = random_matrix(10, 768, 8);
  auto t = enc(W, {{"ranks", {4, 4}}});
  uint64_t arrays = 0;
  for (const auto& a : t.arrays()) arrays += a.data().size();
  // per token: cores 8*4 + 4*8*4 + 4*12 = 208 floats; plus modes and ranks arrays
  EXPECT_EQ(arrays, 10u * 208 * 4 + 3 * 8 + 4 * 8);
  TtTokenCodec c;
  EXPECT_GE(c.stored_bytes(t), arrays);
  EXPECT_LE(c.stored_bytes(t), arrays + 200);
  EXPECT_EQ(TokenTrainTable::from_proto(t).stored_bytes(), c.stored_bytes(t));
  auto e = enc(W, {{"eps", 0.3}, {"core_dtype", "int8"}});
  uint64_t ea = 0;
  for (const auto& a : e.arrays()) ea += a.data().size();
  EXPECT_GE(c.stored_bytes(e), ea);
  EXPECT_NE(try_find_array(e, "scales"), nullptr);
}

TEST(TokenTrainTable, DecodeRowsEqualsDecodeAll) {
  MatrixRM W = random_matrix(5000, 768, 9);  // > 4096 so batched decode runs on several threads
  for (const json& p : {json{{"ranks", {4, 4}}}, json{{"eps", 0.4}, {"core_dtype", "f16"}},
                        json{{"shape", {4, 4, 4, 12}}, {"ranks", {4, 8, 4}}, {"core_dtype", "int8"}}}) {
    auto tab = TokenTrainTable::from_proto(enc(W, p));
    ASSERT_EQ(tab.rows(), 5000);
    ASSERT_EQ(tab.cols(), 768);
    MatrixRM all(5000, 768);
    tab.decode_all(all.data());
    std::mt19937 g(1);
    std::vector<int32_t> ids(4500);
    for (auto& id : ids) id = static_cast<int32_t>(g() % 5000);
    MatrixRM batch(ids.size(), 768);
    tab.decode_rows(ids, batch.data());
    for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(batch.row(i), all.row(ids[i])) << p.dump() << " id " << ids[i];
    std::vector<int32_t> few{7, 3, 4999, 7};
    MatrixRM b2(4, 768);
    tab.decode_rows(few, b2.data());
    for (int i = 0; i < 4; ++i) ASSERT_EQ(b2.row(i), all.row(few[i]));
    MatrixRM range(10, 768);
    tab.decode_range(100, 110, range.data());
    EXPECT_EQ(range, all.middleRows(100, 10));
    Eigen::RowVectorXf one(768);
    tab.decode_row(4321, one.data());
    EXPECT_EQ(one, all.row(4321));
    EXPECT_THROW(tab.decode_row(5000, one.data()), Error);
    std::vector<int32_t> badid{1, -1};
    EXPECT_THROW(tab.decode_rows(badid, batch.data()), Error);
    EXPECT_THROW(tab.decode_range(10, 5001, batch.data()), Error);
  }
}

TEST(TokenTrainTable, RejectsCorruptedTensors) {
  MatrixRM W = random_matrix(20, 768, 10);
  const auto fixed = enc(W, {{"ranks", {4, 4}}});
  const auto ragged = enc(W, {{"eps", 0.3}});
  const auto q8 = enc(W, {{"ranks", {4, 4}}, {"core_dtype", "int8"}});
  ASSERT_NO_THROW(TokenTrainTable::from_proto(fixed));
  ASSERT_NO_THROW(TokenTrainTable::from_proto(ragged));
  auto expect_bad = [](v1::CompressedTensor t, const char* what) {
    EXPECT_THROW(TokenTrainTable::from_proto(t), FormatError) << what;
    EXPECT_THROW(TtTokenCodec().decode(t), FormatError) << what;
  };
  {  // wrong byte size of a core
    auto t = fixed;
    array_named(t, "core_1")->mutable_data()->resize(100);
    expect_bad(t, "truncated core");
  }
  {  // ranks inconsistent with the core shapes
    auto t = fixed;
    std::vector<int64_t> r{1, 5, 4, 1};
    array_named(t, "ranks")->set_data(r.data(), 32);
    expect_bad(t, "ranks vs cores");
    std::vector<int64_t> r0{2, 4, 4, 1};
    array_named(t, "ranks")->set_data(r0.data(), 32);
    expect_bad(t, "r_0 != 1");
  }
  {  // core shape lies consistently (shape and bytes) but disagrees with ranks
    auto t = fixed;
    auto* a = array_named(t, "core_2");
    a->set_shape(1, 3);
    a->mutable_data()->resize(20 * 3 * 12 * 4);
    expect_bad(t, "core shape vs ranks");
  }
  {  // modes that do not multiply to cols
    auto t = fixed;
    std::vector<int64_t> m{8, 8, 8};
    array_named(t, "modes")->set_data(m.data(), 24);
    expect_bad(t, "modes");
  }
  {  // missing array / wrong dtype
    auto t = fixed;
    array_named(t, "core_0")->set_name("something_else");
    expect_bad(t, "missing core");
    auto u = fixed;
    array_named(u, "modes")->set_dtype(v1::F64);
    expect_bad(u, "modes dtype");
    auto v = fixed;
    v.clear_shape();
    v.add_shape(20);
    expect_bad(v, "1-D tensor shape");
  }
  {  // offsets out of range / not matching the ranks
    auto t = ragged;
    auto* o = array_named(t, "offsets");
    ASSERT_EQ(o->dtype(), v1::U32);
    uint32_t big = 1u << 30;
    std::memcpy(o->mutable_data()->data() + 4 * 20, &big, 4);
    expect_bad(t, "last offset out of range");
    auto u = ragged;
    uint32_t x = 3;
    std::memcpy(array_named(u, "offsets")->mutable_data()->data() + 4 * 5, &x, 4);
    expect_bad(u, "offset inside");
  }
  {  // ragged ranks: zero or inconsistent with offsets
    auto t = ragged;
    uint16_t z = 0;
    std::memcpy(array_named(t, "token_ranks")->mutable_data()->data() + 2 * 3, &z, 2);
    expect_bad(t, "rank 0");
    auto u = ragged;
    uint16_t big = 9;
    std::memcpy(array_named(u, "token_ranks")->mutable_data()->data(), &big, 2);
    expect_bad(u, "ranks vs offsets");
    auto v = ragged;
    array_named(v, "cores")->mutable_data()->resize(array_named(v, "cores")->data().size() - 4);
    expect_bad(v, "cores truncated");
  }
  {  // int8 without its scales
    auto t = q8;
    array_named(t, "scales")->set_name("nope");
    expect_bad(t, "scales missing");
    auto u = q8;
    float nan = std::nanf("");
    std::memcpy(array_named(u, "scales")->mutable_data()->data(), &nan, 4);
    expect_bad(u, "nan scale");
  }
}

TEST(TtToken, ThroughMethodTableAndCompress) {
  MatrixRM W = random_matrix(300, 768, 11);
  EXPECT_EQ(find_codec("tt-token").name(), "tt-token");
  EXPECT_THROW(find_codec("nope"), Error);
  CodecContext ctx;
  ctx.threads = 2;
  auto t = compress_matrix(W, "wte", DType::F32, "tt-token", {{"ranks", {4, 4}}}, ctx);
  EXPECT_EQ(t.name(), "wte");
  EXPECT_EQ(t.method(), "tt-token");
  const auto& m = t.metrics();
  EXPECT_EQ(m.dense_f32_bytes(), 300u * 768 * 4);
  EXPECT_EQ(m.stored_bytes(), TtTokenCodec().stored_bytes(t));
  EXPECT_NEAR(m.ratio_f32(), double(m.dense_f32_bytes()) / m.stored_bytes(), 1e-9);
  EXPECT_NEAR(m.rel_error(), rel(W, decode_tensor(t)), 1e-6);
  EXPECT_GT(m.rel_error(), 0.1);  // random rows are far from low TT rank
  ASSERT_EQ(t.baselines_size(), 4);
  EXPECT_EQ(t.baselines(0).method(), "fp16");
  EXPECT_EQ(t.baselines(3).method(), "svd");
  MatrixRM N = W;
  N(7, 3) = std::nanf("");
  EXPECT_THROW(compress_matrix(N, "wte", DType::F32, "tt-token", json::object(), ctx), Error);
  std::atomic<bool> cancel{true};
  ctx.cancel = &cancel;
  EXPECT_THROW(compress_matrix(W, "wte", DType::F32, "tt-token", json::object(), ctx), Canceled);
}
