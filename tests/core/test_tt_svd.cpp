// TT-SVD, TT rounding and the small batched TT-SVD: exactness, the eps bound, rank-1 tensors,
// monotone error in the ranks, element/fiber evaluation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/error.h"
#include "tt/small_tt_svd.h"
#include "tt/tt_svd.h"

using namespace tsm;

namespace {

std::vector<float> random_tensor(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// A tensor that is a sum of `terms` rank-1 outer products with decaying weights (low TT ranks).
std::vector<float> structured_tensor(const std::vector<int64_t>& modes, int terms, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  int64_t n = 1;
  for (auto m : modes) n *= m;
  std::vector<float> out(n, 0.f);
  for (int t = 0; t < terms; ++t) {
    std::vector<std::vector<float>> f;
    for (auto m : modes) {
      std::vector<float> v(m);
      for (auto& x : v) x = d(g);
      f.push_back(v);
    }
    const float w = std::pow(0.5f, t);
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i;
      float p = w;
      for (int k = static_cast<int>(modes.size()) - 1; k >= 0; --k) {
        p *= f[k][rem % modes[k]];
        rem /= modes[k];
      }
      out[i] += p;
    }
  }
  return out;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(a[i]) * a[i];
  }
  return std::sqrt(num / den);
}

}  // namespace

TEST(TtSvd, ExactAtFullRank) {
  for (auto modes : {std::vector<int64_t>{8, 8, 12}, std::vector<int64_t>{4, 4, 4, 12}, std::vector<int64_t>{3, 5, 2, 7},
                     std::vector<int64_t>{30}, std::vector<int64_t>{6, 9}}) {
    int64_t n = 1;
    for (auto m : modes) n *= m;
    auto a = random_tensor(n, 1);
    TensorTrain tt = tt_svd(a, modes, {});
    EXPECT_EQ(tt.ranks.front(), 1);
    EXPECT_EQ(tt.ranks.back(), 1);
    for (int k = 0; k < tt.order(); ++k)
      EXPECT_EQ(static_cast<int64_t>(tt.cores[k].size()), tt.ranks[k] * modes[k] * tt.ranks[k + 1]);
    EXPECT_LT(rel_err(a, tt.full()), 1e-5);
  }
}

TEST(TtSvd, EpsBoundHoldsOnRandomAndStructured) {
  const std::vector<int64_t> modes{4, 6, 5, 8};
  for (double eps : {0.01, 0.05, 0.1, 0.3, 0.6}) {
    for (uint32_t seed = 0; seed < 3; ++seed) {
      for (bool structured : {false, true}) {
        auto a = structured ? structured_tensor(modes, 12, seed) : random_tensor(4 * 6 * 5 * 8, seed);
        TtSvdOptions o;
        o.eps = eps;
        TensorTrain tt = tt_svd(a, modes, o);
        EXPECT_LE(rel_err(a, tt.full()), eps * (1 + 1e-5)) << "eps " << eps << " structured " << structured;
        if (structured && eps >= 0.05) EXPECT_LT(tt.params(), 4 * 6 * 5 * 8) << "structured tensors compress";
      }
    }
  }
}

TEST(TtSvd, RankOneOuterProductGivesRanksOne) {
  const std::vector<int64_t> modes{5, 7, 3, 4};
  auto a = structured_tensor(modes, 1, 42);
  TtSvdOptions o;
  o.eps = 1e-5;
  TensorTrain tt = tt_svd(a, modes, o);
  EXPECT_EQ(tt.ranks, (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_LT(rel_err(a, tt.full()), 1e-5);
  TensorTrain r = tt_round(tt_svd(a, modes, {}), o);
  EXPECT_EQ(r.ranks, (std::vector<int64_t>{1, 1, 1, 1, 1}));
}

TEST(TtSvd, ErrorNeverGrowsWithRanks) {
  const std::vector<int64_t> modes{8, 8, 12};
  auto a = random_tensor(768, 7);
  double prev = 1e9;
  for (int64_t r = 1; r <= 12; ++r) {
    TtSvdOptions o;
    o.max_ranks = {std::min<int64_t>(r, 8), r};
    double e = rel_err(a, tt_svd(a, modes, o).full());
    EXPECT_LE(e, prev + 1e-6) << "rank " << r;
    prev = e;
  }
  EXPECT_LT(prev, 1e-5);  // (8, 12) is full rank for 8x8x12
}

TEST(TtSvd, ElementAndFiberMatchFull) {
  const std::vector<int64_t> modes{3, 4, 5};
  auto a = random_tensor(60, 3);
  TtSvdOptions o;
  o.max_ranks = {2, 3};
  TensorTrain tt = tt_svd(a, modes, o);
  auto full = tt.full();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 5; ++k) {
        std::vector<int64_t> idx{i, j, k};
        EXPECT_NEAR(tt.element(idx), full[(i * 4 + j) * 5 + k], 1e-5);
      }
  std::vector<int64_t> idx{2, 0, 3};
  auto f = tt.fiber(idx, 1);
  for (int64_t j = 0; j < 4; ++j) EXPECT_NEAR(f[j], full[(2 * 4 + j) * 5 + 3], 1e-5);
}

TEST(TtSvd, RoundingKeepsBoundAndReducesRanks) {
  const std::vector<int64_t> modes{4, 6, 5, 8};
  auto a = structured_tensor(modes, 3, 9);
  TensorTrain full = tt_svd(a, modes, {});
  TtSvdOptions o;
  o.eps = 1e-4;
  TensorTrain r = tt_round(full, o);
  EXPECT_LE(rel_err(a, r.full()), 1e-4 * 1.01);
  for (int k = 1; k < 4; ++k) EXPECT_LE(r.ranks[k], 3);
  o.eps = 0.2;
  auto b = random_tensor(960, 5);
  TensorTrain rb = tt_round(tt_svd(b, modes, {}), o);
  EXPECT_LE(rel_err(b, rb.full()), 0.2 * 1.001);
  o.eps = 0;
  o.max_ranks = {2, 2, 2};
  TensorTrain rc = tt_round(tt_svd(b, modes, {}), o);
  EXPECT_EQ(rc.ranks, (std::vector<int64_t>{1, 2, 2, 2, 1}));
}

TEST(TtSvd, RejectsBadArguments) {
  std::vector<float> a(24, 1.f);
  std::vector<int64_t> modes{2, 3, 5};
  EXPECT_THROW(tt_svd(a, modes, {}), ParamError);
  std::vector<int64_t> good{2, 3, 4};
  TtSvdOptions o;
  o.max_ranks = {1};
  EXPECT_THROW(tt_svd(a, good, o), ParamError);
  o.max_ranks = {0, 1};
  EXPECT_THROW(tt_svd(a, good, o), ParamError);
}

// The fast per-token kernel agrees with the reference TT-SVD (full SVDs) on the reconstruction.
TEST(SmallTtSvd, MatchesReferenceTtSvd) {
  for (auto [modes, caps] : {std::pair{std::vector<int64_t>{8, 8, 12}, std::vector<int64_t>{4, 4}},
                             std::pair{std::vector<int64_t>{4, 4, 4, 12}, std::vector<int64_t>{4, 8, 4}},
                             std::pair{std::vector<int64_t>{8, 8, 12}, std::vector<int64_t>{8, 12}},
                             std::pair{std::vector<int64_t>{6, 5, 4, 3}, std::vector<int64_t>{3, 5, 2}}}) {
    int64_t n = 1;
    for (auto m : modes) n *= m;
    SmallTtSvd ws(modes);
    for (uint32_t seed = 0; seed < 20; ++seed) {
      auto a = seed % 2 ? random_tensor(n, seed) : structured_tensor(modes, 6, seed);
      TtSvdOptions o;
      o.max_ranks = caps;
      TensorTrain ref = tt_svd(a, modes, o);
      const double err2 = ws.run(a.data(), caps, 0.0);
      TensorTrain fast;
      fast.modes = modes;
      fast.ranks.assign(ws.ranks().begin(), ws.ranks().end());
      for (int k = 0; k < static_cast<int>(modes.size()); ++k) fast.cores.emplace_back(ws.core(k), ws.core(k) + ws.core_size(k));
      EXPECT_EQ(fast.ranks, ref.ranks);
      auto rf = ref.full(), ff = fast.full();
      EXPECT_LT(rel_err(rf, ff), 1e-5) << "seed " << seed;
      // the reported error equals the actual one
      double num = 0, den = 0;
      for (int64_t i = 0; i < n; ++i) num += (double(a[i]) - ff[i]) * (double(a[i]) - ff[i]), den += double(a[i]) * a[i];
      EXPECT_NEAR(std::sqrt(err2 / den), std::sqrt(num / den), 1e-4);
    }
  }
}

TEST(SmallTtSvd, EpsBoundAndFullRank) {
  const std::vector<int64_t> modes{4, 4, 4, 12};
  SmallTtSvd ws(modes);
  auto a = random_tensor(768, 11);
  double n2 = 0;
  for (float x : a) n2 += double(x) * x;
  for (double eps : {0.0, 0.05, 0.2, 0.5}) {
    ws.run(a.data(), {}, eps * eps * n2 / 3);
    TensorTrain tt;
    tt.modes = modes;
    tt.ranks.assign(ws.ranks().begin(), ws.ranks().end());
    for (int k = 0; k < 4; ++k) tt.cores.emplace_back(ws.core(k), ws.core(k) + ws.core_size(k));
    EXPECT_LE(rel_err(a, tt.full()), std::max(eps * (1 + 1e-5), 1e-5));
  }
}
