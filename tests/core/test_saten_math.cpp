// Saten math: layouts, sparse residuals (unstructured, N:M), data-free fit and refinement,
// calibration-aware fit with Adam, and the factorized apply.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "methods/saten/saten_calibrate.h"
#include "methods/saten/saten_fit.h"
#include "methods/saten/packed_2of4.h"
#include "methods/saten/saten_operator.h"

using namespace tsm;

namespace {

MatrixRM randn(int64_t r, int64_t c, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, scale);
  MatrixRM m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  return m;
}

// A weight-like matrix: a low-rank part, a few large outliers and noise.
MatrixRM weight_like(int64_t r, int64_t c, uint32_t seed) {
  MatrixRM W = randn(r, 6, seed) * randn(6, c, seed + 1) * 0.3f + randn(r, c, seed + 2, 0.05f);
  std::mt19937 g(seed + 3);
  std::uniform_int_distribution<int64_t> ri(0, r - 1), ci(0, c - 1);
  for (int k = 0; k < (r * c) / 50; ++k) W(ri(g), ci(g)) += (k % 2 ? 3.f : -3.f);
  return W;
}

double rel(const MatrixRM& A, const MatrixRM& B) { return (A - B).norm() / A.norm(); }

SatenFitOptions opts(const SatenLayout& L, std::vector<int64_t> ranks, const std::string& sp, double density) {
  SatenFitOptions o;
  o.layout = L;
  o.ranks = std::move(ranks);
  o.sparsity = SparsitySpec::parse(sp, density);
  return o;
}

}  // namespace

TEST(SatenLayout, RoundTripAndIndexing) {
  const MatrixRM W = randn(12, 20, 1);
  for (auto kind : {SatenLayoutKind::Saten, SatenLayoutKind::Mpo}) {
    const auto L = make_saten_layout(kind, 12, 20, kind == SatenLayoutKind::Saten ? 4 : 2);
    const auto t = to_layout_tensor(L, W);
    EXPECT_EQ((from_layout_tensor(L, t) - W).norm(), 0.f);
  }
  // saten: the tensor is W^T (d_in, d_out) row-major.
  const auto L = make_saten_layout(SatenLayoutKind::Saten, 12, 20, 4);
  const auto t = to_layout_tensor(L, W);
  EXPECT_EQ(t[7 * 12 + 5], W(5, 7));
  // mpo with out (3, 4), in (4, 5): element (o, i) = ((o1, i1), (o2, i2)) with combined o_k * i_k_size + i_k.
  const auto M = make_saten_layout(SatenLayoutKind::Mpo, std::vector<int64_t>{3, 4}, std::vector<int64_t>{4, 5});
  const auto tm = to_layout_tensor(M, W);
  const int64_t o = 2 * 4 + 3, i = 1 * 5 + 4;  // o = (2, 3), i = (1, 4)
  EXPECT_EQ(tm[(2 * 4 + 1) * 20 + (3 * 5 + 4)], W(o, i));
  EXPECT_THROW(make_saten_layout(SatenLayoutKind::Mpo, std::vector<int64_t>{3, 4}, std::vector<int64_t>{20}), ParamError);
  EXPECT_THROW(parse_layout("tucker"), ParamError);
}

TEST(SatenSparse, NmMasksAreValid) {
  const MatrixRM E = randn(16, 32, 2);
  for (auto [n, m] : {std::pair{2, 4}, {1, 4}, {3, 8}, {4, 4}}) {
    const auto spec = SparsitySpec::parse(std::to_string(n) + ":" + std::to_string(m), 0);
    const auto S = select_sparse(E, spec);
    S.validate();
    EXPECT_TRUE(S.satisfies_nm(n, m));
    EXPECT_EQ(S.nnz(), 16 * 32 / m * n);
    // each kept entry is at least as large as every dropped entry of its group
    const MatrixRM D = S.dense();
    for (int64_t r = 0; r < 16; ++r)
      for (int64_t g = 0; g < 32 / m; ++g) {
        float kept_min = INFINITY, drop_max = 0;
        for (int j = 0; j < m; ++j) {
          const int64_t c = g * m + j;
          if (D(r, c) != 0) kept_min = std::min(kept_min, std::abs(E(r, c)));
          else drop_max = std::max(drop_max, std::abs(E(r, c)));
        }
        EXPECT_GE(kept_min, drop_max);
      }
  }
  EXPECT_FALSE(select_sparse(E, SparsitySpec::parse("unstructured", 0.5)).satisfies_nm(2, 4));
  EXPECT_THROW(select_sparse(randn(4, 30, 3), SparsitySpec::parse("2:4", 0)), ParamError);
  EXPECT_THROW(SparsitySpec::parse("5:4", 0), ParamError);
  EXPECT_THROW(SparsitySpec::parse("2:x", 0), ParamError);
  EXPECT_THROW(SparsitySpec::parse("unstructured", 1.5), ParamError);
}

TEST(SatenSparse, UnstructuredKeepsTopK) {
  const MatrixRM E = randn(10, 30, 4);
  const auto S = select_sparse(E, SparsitySpec::parse("unstructured", 0.1));
  S.validate();
  EXPECT_EQ(S.nnz(), 30);
  float kept_min = INFINITY;
  for (float v : S.values) kept_min = std::min(kept_min, std::abs(v));
  const MatrixRM D = S.dense();
  for (int64_t k = 0; k < E.size(); ++k)
    if (D.data()[k] == 0) EXPECT_LE(std::abs(E.data()[k]), kept_min);
}

TEST(SatenSparse, ValidateRejectsCorruptCsr) {
  auto S = select_sparse(randn(4, 8, 5), SparsitySpec::parse("unstructured", 0.5));
  auto bad = S;
  bad.col[1] = 8;
  EXPECT_THROW(bad.validate(), FormatError);
  bad = S;
  std::swap(bad.col[0], bad.col[1]);
  EXPECT_THROW(bad.validate(), FormatError);
  bad = S;
  bad.row_ptr[2] = bad.row_ptr[1] - 1;
  EXPECT_THROW(bad.validate(), FormatError);
  bad = S;
  bad.values.pop_back();
  EXPECT_THROW(bad.validate(), FormatError);
}

TEST(SatenFit, ExactAtFullRanksAndAtDensityOne) {
  const MatrixRM W = randn(24, 36, 6);
  for (auto kind : {SatenLayoutKind::Saten, SatenLayoutKind::Mpo}) {
    const auto L = make_saten_layout(kind, 24, 36, kind == SatenLayoutKind::Saten ? 4 : 2);
    const auto f = saten_fit(W, opts(L, {}, "none", 0));
    EXPECT_LT(rel(W, f.reconstruct()), 1e-5) << layout_name(kind);
    const auto g = saten_fit(W, opts(L, std::vector<int64_t>(L.tensor_modes().size() - 1, 1), "unstructured", 1.0));
    EXPECT_LT(rel(W, g.reconstruct()), 1e-6) << layout_name(kind);
  }
}

TEST(SatenFit, ErrorFallsAsDensityOrRanksGrow) {
  const MatrixRM W = weight_like(48, 64, 7);
  const auto L = make_saten_layout(SatenLayoutKind::Saten, 48, 64, 4);
  double prev = INFINITY;
  for (double dens : {0.0, 0.02, 0.05, 0.1, 0.2, 0.4}) {
    const double e = rel(W, saten_fit(W, opts(L, {4, 4, 4}, "unstructured", dens)).reconstruct());
    EXPECT_LT(e, prev) << "density " << dens;
    prev = e;
  }
  prev = INFINITY;
  for (int64_t r : {1, 2, 4, 8, 16}) {
    const double e = rel(W, saten_fit(W, opts(L, {r, r, r}, "2:4", 0)).reconstruct());
    EXPECT_LT(e, prev) << "rank " << r;
    prev = e;
  }
  // eps bound of TT-SVD carries over (the sparse part only lowers the error)
  auto o = opts(L, {}, "unstructured", 0.05);
  o.eps = 0.3;
  EXPECT_LE(rel(W, saten_fit(W, o).reconstruct()), 0.3 + 1e-6);
}

TEST(SatenFit, RefinementNeverRaisesTheError) {
  for (uint32_t seed : {8u, 9u, 10u}) {
    const MatrixRM W = weight_like(40, 60, seed);
    for (const char* sp : {"unstructured", "2:4"}) {
      const auto L = make_saten_layout(SatenLayoutKind::Saten, 40, 60, 4);
      auto o = opts(L, {3, 3, 3}, sp, 0.05);
      o.refine_rounds = 6;
      SatenFitReport rep;
      const auto f = saten_fit(W, o, &rep);
      ASSERT_FALSE(rep.history.empty());
      for (size_t k = 1; k < rep.history.size(); ++k) EXPECT_LE(rep.history[k], rep.history[k - 1]);
      EXPECT_NEAR(rel(W, f.reconstruct()), rep.history.back(), 1e-5);
      o.refine_rounds = 0;
      EXPECT_LE(rep.history.back(), rel(W, saten_fit(W, o).reconstruct()) + 1e-7);
    }
  }
  // With outliers on top of a low-rank matrix, refinement must actually help.
  const MatrixRM W = weight_like(40, 60, 11);
  auto o = opts(make_saten_layout(SatenLayoutKind::Saten, 40, 60, 4), {6, 6, 6}, "unstructured", 0.03);
  o.refine_rounds = 5;
  SatenFitReport rep;
  saten_fit(W, o, &rep);
  EXPECT_LT(rep.history.back(), 0.9 * rep.history.front());
}

TEST(SatenOperator, FactorizedApplyEqualsDenseProduct) {
  const MatrixRM W = weight_like(48, 60, 12);
  struct Case { SatenLayoutKind kind; int order; const char* sp; };
  for (auto c : {Case{SatenLayoutKind::Saten, 4, "unstructured"}, Case{SatenLayoutKind::Saten, 2, "2:4"},
                 Case{SatenLayoutKind::Saten, 5, "none"}, Case{SatenLayoutKind::Mpo, 2, "2:4"},
                 Case{SatenLayoutKind::Mpo, 3, "unstructured"}, Case{SatenLayoutKind::Mpo, 1, "none"}}) {
    const auto L = make_saten_layout(c.kind, 48, 60, c.order);
    const auto f = saten_fit(W, opts(L, std::vector<int64_t>(L.tensor_modes().size() - 1, 5), c.sp, 0.1));
    const MatrixRM Wh = f.reconstruct();
    SatenOperator op(f);
    for (int64_t n : {1, 7}) {
      const MatrixRM X = randn(n, 60, 13);
      MatrixRM Y(n, 48);
      op.forward(X.data(), n, Y.data());
      const MatrixRM Yref = X * Wh.transpose();
      EXPECT_LT((Y - Yref).norm(), 1e-4 * Yref.norm()) << layout_name(c.kind) << " order " << c.order << " n " << n;
    }
    EXPECT_GT(op.flops_per_row(), 0);
  }
}

// The packed 2:4 apply (two permutes and a blend per 16 inputs) equals the CSR apply, also with
// groups that keep fewer than 2 entries (zero padding); it declines what it cannot or should not
// hold; and a 2:4 Saten operator that uses it still equals the dense product.
TEST(SatenSparse, Packed2of4MatchesCsrApply) {
  const MatrixRM E = randn(40, 64, 21);
  const SparseResidual full = select_sparse(E, SparsitySpec::parse("2:4", 0));
  SparseResidual s = SparseResidual::empty(40, 64);  // 2:4 with every entry in a column % 5 == 0 dropped
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t q = full.row_ptr[size_t(r)]; q < full.row_ptr[size_t(r + 1)]; ++q)
      if (full.col[size_t(q)] % 5 != 0) s.col.push_back(full.col[size_t(q)]), s.values.push_back(full.values[size_t(q)]);
    s.row_ptr[size_t(r + 1)] = s.nnz();
  }
  s.validate();
  const auto packed = Packed2of4::from(s);
  ASSERT_TRUE(packed.has_value());
  EXPECT_LT(packed->resident_bytes(), uint64_t(s.nnz()) * 8);
  for (int64_t n : {1, 3}) {
    const MatrixRM X = randn(n, 64, 22);
    MatrixRM Y1 = randn(n, 40, 23), Y2 = Y1;
    s.apply_add(X.data(), n, Y1.data());
    packed->apply_add(X.data(), n, Y2.data());
    EXPECT_LT((Y1 - Y2).norm(), 1e-5 * Y1.norm()) << "n " << n;
  }
  EXPECT_FALSE(Packed2of4::from(select_sparse(E, SparsitySpec::parse("3:4", 0))));           // 3 in a group
  EXPECT_FALSE(Packed2of4::from(select_sparse(randn(40, 60, 24), SparsitySpec::parse("2:4", 0))));  // 60 % 16
  EXPECT_FALSE(Packed2of4::from(select_sparse(E, SparsitySpec::parse("unstructured", 0.05))));  // CSR is smaller

  const MatrixRM W = weight_like(48, 64, 25);
  const auto f = saten_fit(W, opts(make_saten_layout(SatenLayoutKind::Saten, 48, 64, 3), {4, 4}, "2:4", 0));
  SatenOperator op(f);
  for (int64_t n : {1, 5}) {
    const MatrixRM X = randn(n, 64, 26);
    MatrixRM Y(n, 48);
    op.forward(X.data(), n, Y.data());
    const MatrixRM Yref = X * f.reconstruct().transpose();
    EXPECT_LT((Y - Yref).norm(), 1e-4 * Yref.norm()) << "n " << n;
  }
}

TEST(SatenCalibration, FineTuningLowersHeldOutLayerLoss) {
  const int64_t dout = 32, din = 48;
  const MatrixRM W = weight_like(dout, din, 14);
  // Anisotropic, correlated activations: a few input features carry most of the energy.
  MatrixRM A = randn(din, din, 15, 0.3f);
  for (int64_t j = 0; j < din; ++j) A.row(j) *= (j % 7 == 0) ? 6.f : 0.5f;
  const MatrixRM Xtr = randn(600, din, 16) * A, Xte = randn(600, din, 17) * A;
  const MatrixRMd Ctr = activation_covariance(Xtr), Cte = activation_covariance(Xte);
  const auto L = make_saten_layout(SatenLayoutKind::Saten, dout, din, 4);
  const auto fit = opts(L, {3, 3, 3}, "2:4", 0);

  const auto plain = saten_fit(W, fit);
  const double test_plain = relative_layer_loss(W, plain.reconstruct(), Cte);
  for (auto wh : {Whitening::Cholesky, Whitening::Diagonal}) {
    CalibrationOptions cal;
    cal.whitening = wh;
    cal.adam_steps = 150;
    CalibrationReport rep;
    const auto f = saten_fit_calibrated(W, Ctr, fit, cal, &rep);
    EXPECT_LE(rep.loss_whitened, rep.loss_data_free);
    EXPECT_LT(rep.loss_final, rep.loss_whitened);
    const double test_cal = relative_layer_loss(W, f.reconstruct(), Cte);
    EXPECT_LT(test_cal, 0.9 * test_plain) << "held-out loss " << test_cal << " vs data-free " << test_plain;
    EXPECT_TRUE(f.sparse.satisfies_nm(2, 4));  // the mask stays N:M
    EXPECT_EQ(f.sparse.nnz(), plain.sparse.nnz());
  }
  // Adam alone from the data-free fit lowers the held-out loss too.
  auto g = plain;
  CalibrationOptions cal;
  cal.adam_steps = 100;
  std::vector<double> hist;
  saten_finetune(g, W, Ctr, cal, &hist);
  EXPECT_LT(hist.back(), hist.front());
  EXPECT_LT(relative_layer_loss(W, g.reconstruct(), Cte), test_plain);
}
