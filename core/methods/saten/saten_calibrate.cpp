#include "methods/saten/saten_calibrate.h"

#include <Eigen/Cholesky>
#include <Eigen/SVD>
#include <cmath>

#include "common/error.h"
#include "common/thin_svd.h"
#include "tt/tt_svd.h"

namespace tsm {

namespace {

using CMapF = Eigen::Map<const MatrixRM>;
using MapF = Eigen::Map<MatrixRM>;

// Lower-triangular L with C + lambda I = L L^T (diagonal whitening: L = diag(sqrt(C_jj + lambda))).
MatrixRMd whitening_factor(const MatrixRMd& C, Whitening w, double damping) {
  const int64_t d = C.rows();
  const double lambda = damping * std::max(C.diagonal().mean(), 1e-12);
  if (w == Whitening::Diagonal) {
    MatrixRMd L = MatrixRMd::Zero(d, d);
    for (int64_t j = 0; j < d; ++j) L(j, j) = std::sqrt(C(j, j) + lambda);
    return L;
  }
  MatrixRMd Cd = C;
  Cd.diagonal().array() += lambda;
  Eigen::LLT<MatrixRMd> llt(Cd);
  if (llt.info() != Eigen::Success) throw Error("calibration: activation covariance is not positive definite; raise damping");
  return llt.matrixL();
}

std::vector<float> col_weights(const MatrixRMd& C) {
  std::vector<float> w(size_t(C.rows()));
  for (int64_t j = 0; j < C.rows(); ++j) w[j] = float(std::sqrt(std::max(C(j, j), 0.0)));
  return w;
}

// The saten-layout tensor train of M whose input/output bond is the best rank-r_a fit of M in the
// norm ||. L||_F (SVD of M L), with the remaining ranks capped by `ranks` (r_1..r_{d-1}).
TensorTrain whitened_tt(const SatenLayout& Lay, ConstMatrixRef M, const MatrixRMd& L, bool diagonal,
                        const std::vector<int64_t>& ranks) {
  const int a = Lay.input_cores(), d = int(ranks.size()) + 1, b = d - a;
  const int64_t r = ranks[a - 1];
  MatrixRMd Y = M.cast<double>() * L;  // (d_out, d_in)
  const ThinSvd svd = thin_svd(Y);  // checked BDC, Jacobi fallback
  const Eigen::MatrixXd& U = svd.U;
  const Eigen::MatrixXd& V = svd.V;
  const Eigen::VectorXd& sv = svd.S;
  const int64_t re = std::min<int64_t>(r, sv.size());
  MatrixRMd Vr = V.leftCols(re);  // (d_in, re)
  MatrixRMd A;                                // (d_in, re) = L^{-T} V_r
  if (diagonal)
    A = L.diagonal().cwiseInverse().asDiagonal() * Vr;
  else
    A = L.transpose().triangularView<Eigen::Upper>().solve(Vr);
  MatrixRMd B = sv.head(re).asDiagonal() * U.leftCols(re).transpose();  // (re, d_out)

  // Input side: TT of A as the tensor (i_1..i_a, re); its last core (s, re, 1) is folded into B.
  std::vector<float> a_t(A.size());
  for (int64_t k = 0; k < A.size(); ++k) a_t[k] = float(A.data()[k]);
  std::vector<int64_t> a_modes = Lay.in_modes;
  a_modes.push_back(re);
  TtSvdOptions oa;
  oa.max_ranks.assign(ranks.begin(), ranks.begin() + a);  // r_1..r_{a-1}, then the bond cap
  oa.max_ranks.back() = re;
  TensorTrain ta = tt_svd(a_t, a_modes, oa);
  const int64_t s = ta.ranks[a];
  MatrixRMd H(s, re);
  for (int64_t k = 0; k < s * re; ++k) H.data()[k] = ta.cores[a][k];
  MatrixRMd Bp = H * B;  // (s, d_out)

  // Output side: TT of B' as the tensor (s * o_1, o_2..o_b); its first core is (1, s*o_1, t_1) = (s, o_1, t_1).
  std::vector<float> b_t(Bp.size());
  for (int64_t k = 0; k < Bp.size(); ++k) b_t[k] = float(Bp.data()[k]);
  std::vector<int64_t> b_modes = Lay.out_modes;
  b_modes[0] *= s;
  TtSvdOptions ob;
  ob.max_ranks.assign(ranks.begin() + a, ranks.end());
  TensorTrain tb = tt_svd(b_t, b_modes, ob);

  TensorTrain tt;
  tt.modes = Lay.tensor_modes();
  tt.ranks.assign(1, 1);
  for (int k = 0; k < a; ++k) {
    tt.cores.push_back(ta.cores[k]);
    tt.ranks.push_back(ta.ranks[k + 1]);
  }
  for (int k = 0; k < b; ++k) {
    tt.cores.push_back(tb.cores[k]);
    tt.ranks.push_back(tb.ranks[k + 1]);
  }
  return tt;
}

double loss_of(ConstMatrixRef W, const SatenFactors& f, const MatrixRMd& C) {
  return relative_layer_loss(W, f.reconstruct(), C);
}

}  // namespace

Whitening parse_whitening(std::string_view s) {
  if (s == "none") return Whitening::None;
  if (s == "diag" || s == "diagonal") return Whitening::Diagonal;
  if (s == "cholesky") return Whitening::Cholesky;
  throw ParamError("whitening", "must be \"none\", \"diag\" or \"cholesky\", got \"" + std::string(s) + "\"");
}

MatrixRMd activation_covariance(ConstMatrixRef X) {
  if (X.rows() < 1) throw ParamError("activations", "need at least one activation row");
  MatrixRMd Xd = X.cast<double>();
  MatrixRMd C = Xd.transpose() * Xd;
  C /= double(X.rows());
  return C;
}

double relative_layer_loss(ConstMatrixRef W, ConstMatrixRef W_hat, const MatrixRMd& C) {
  if (C.rows() != W.cols() || C.cols() != W.cols()) throw ParamError("activations", "covariance does not match d_in");
  const MatrixRMd D = (W - W_hat).cast<double>();
  const MatrixRMd Wd = W.cast<double>();
  const double num = (D * C).cwiseProduct(D).sum();
  const double den = (Wd * C).cwiseProduct(Wd).sum();
  return den > 0 ? num / den : num;
}

double saten_finetune(SatenFactors& f, ConstMatrixRef W, const MatrixRMd& C, const CalibrationOptions& cal,
                      std::vector<double>* history) {
  const auto& Lay = f.layout;
  auto& tt = f.tt;
  const int d = tt.order();
  const MatrixRM Cf = C.cast<float>();
  const MatrixRMd Wd = W.cast<double>();
  const double den = std::max((Wd * C).cwiseProduct(Wd).sum(), 1e-30);

  // Parameter groups: the d cores and the kept values; lr of a group = lr * its RMS at the start.
  const int groups = d + 1;
  auto group = [&](int g) -> std::vector<float>& { return g < d ? tt.cores[g] : f.sparse.values; };
  std::vector<double> lr(groups);
  std::vector<std::vector<float>> m1(groups), m2(groups), grad(groups);
  for (int g = 0; g < groups; ++g) {
    const auto& v = group(g);
    double ss = 0;
    for (float x : v) ss += double(x) * x;
    lr[g] = cal.lr * (v.empty() ? 0.0 : std::sqrt(ss / v.size()));
    m1[g].assign(v.size(), 0.f);
    m2[g].assign(v.size(), 0.f);
    grad[g].assign(v.size(), 0.f);
  }

  std::vector<std::vector<float>> lefts(d + 1), rights(d + 1);  // lefts[k]: (N_<k, r_k); rights[k]: (r_k, N_>=k)
  std::vector<int64_t> n_left(d + 1, 1), n_right(d + 1, 1);
  for (int k = 0; k < d; ++k) n_left[k + 1] = n_left[k] * tt.modes[k];
  for (int k = d - 1; k >= 0; --k) n_right[k] = n_right[k + 1] * tt.modes[k];

  double best = INFINITY;
  std::vector<std::vector<float>> best_params(groups);
  for (int g = 0; g < groups; ++g) best_params[g] = group(g);
  for (int step = 0; step <= cal.adam_steps; ++step) {
    if (cal.on_step) cal.on_step(step);
    // Forward: left partial products; lefts[d] is the full tensor.
    lefts[0].assign(1, 1.f);
    for (int k = 0; k < d; ++k) {
      lefts[k + 1].resize(size_t(n_left[k] * tt.modes[k] * tt.ranks[k + 1]));
      MapF(lefts[k + 1].data(), n_left[k], tt.modes[k] * tt.ranks[k + 1]).noalias() =
          CMapF(lefts[k].data(), n_left[k], tt.ranks[k]) * CMapF(tt.cores[k].data(), tt.ranks[k], tt.modes[k] * tt.ranks[k + 1]);
    }
    MatrixRM D = W - from_layout_tensor(Lay, lefts[d]);
    for (int64_t r = 0; r < f.sparse.rows; ++r)
      for (int64_t p = f.sparse.row_ptr[r]; p < f.sparse.row_ptr[r + 1]; ++p) D(r, f.sparse.col[p]) -= f.sparse.values[p];
    MatrixRM DC = D * Cf;  // (d_out, d_in)
    const double loss = double(DC.cwiseProduct(D).cast<double>().sum()) / den;
    if (history) history->push_back(loss);
    if (loss < best) {
      best = loss;
      for (int g = 0; g < groups; ++g) best_params[g] = group(g);
    }
    if (step == cal.adam_steps) break;

    // d loss / d W_hat = -2 D C / den; as a layout tensor for the cores.
    DC *= float(-2.0 / den);
    const auto gT = to_layout_tensor(Lay, DC);
    rights[d].assign(1, 1.f);
    for (int k = d - 1; k >= 0; --k) {
      rights[k].resize(size_t(tt.ranks[k] * n_right[k]));
      MapF(rights[k].data(), tt.ranks[k] * tt.modes[k], n_right[k + 1]).noalias() =
          CMapF(tt.cores[k].data(), tt.ranks[k] * tt.modes[k], tt.ranks[k + 1]) *
          CMapF(rights[k + 1].data(), tt.ranks[k + 1], n_right[k + 1]);
    }
    for (int k = 0; k < d; ++k) {
      // grad_k (r_k n_k, r_{k+1}) = reshape(L_k^T gT) R_{k+1}^T
      MatrixRM t1 = CMapF(lefts[k].data(), n_left[k], tt.ranks[k]).transpose() *
                    CMapF(gT.data(), n_left[k], tt.modes[k] * n_right[k + 1]);
      MapF(grad[k].data(), tt.ranks[k] * tt.modes[k], tt.ranks[k + 1]).noalias() =
          CMapF(t1.data(), tt.ranks[k] * tt.modes[k], n_right[k + 1]) *
          CMapF(rights[k + 1].data(), tt.ranks[k + 1], n_right[k + 1]).transpose();
    }
    for (int64_t r = 0; r < f.sparse.rows; ++r)
      for (int64_t p = f.sparse.row_ptr[r]; p < f.sparse.row_ptr[r + 1]; ++p) grad[d][p] = DC(r, f.sparse.col[p]);

    // Adam.
    const double bc1 = 1.0 - std::pow(cal.beta1, step + 1), bc2 = 1.0 - std::pow(cal.beta2, step + 1);
    for (int g = 0; g < groups; ++g) {
      auto& v = group(g);
      for (size_t i = 0; i < v.size(); ++i) {
        const float gi = grad[g][i];
        m1[g][i] = float(cal.beta1 * m1[g][i] + (1 - cal.beta1) * gi);
        m2[g][i] = float(cal.beta2 * m2[g][i] + (1 - cal.beta2) * double(gi) * gi);
        const double mh = m1[g][i] / bc1, vh = m2[g][i] / bc2;
        v[i] -= float(lr[g] * mh / (std::sqrt(vh) + cal.adam_eps));
      }
    }
  }
  for (int g = 0; g < groups; ++g) group(g) = std::move(best_params[g]);
  return best;
}

SatenFactors saten_fit_calibrated(ConstMatrixRef W, const MatrixRMd& C, const SatenFitOptions& fit,
                                  const CalibrationOptions& cal, CalibrationReport* report) {
  if (C.rows() != W.cols() || C.cols() != W.cols())
    throw ParamError("activations", "covariance is " + std::to_string(C.rows()) + "x" + std::to_string(C.cols()) +
                                        ", the layer has " + std::to_string(W.cols()) + " input features");
  CalibrationReport local;
  CalibrationReport& rep = report ? *report : local;
  rep = {};
  const auto cw = col_weights(C);
  SatenFitOptions fo = fit;
  if (cal.whitening != Whitening::None) fo.col_weight = cw;
  SatenFactors best = saten_fit(W, fo);
  double best_loss = loss_of(W, best, C);
  rep.loss_data_free = best_loss;

  // Whitened re-fit: alternate the whitened TT of W - S and the weighted mask, keep what lowers the loss.
  if (cal.whitening != Whitening::None && fit.layout.kind == SatenLayoutKind::Saten) {
    const MatrixRMd L = whitening_factor(C, cal.whitening, cal.damping);
    const std::vector<int64_t> fixed(best.tt.ranks.begin() + 1, best.tt.ranks.end() - 1);
    SparseResidual S = best.sparse;
    for (int round = 0; round <= fit.refine_rounds; ++round) {
      if (fit.on_round) fit.on_round(round);
      SatenFactors cand;
      cand.layout = fit.layout;
      cand.tt = whitened_tt(fit.layout, W - S.dense(), L, cal.whitening == Whitening::Diagonal, fixed);
      const MatrixRM E = W - cand.tt_dense();
      cand.sparse = select_sparse(E, fit.sparsity, cw);
      const double l = loss_of(W, cand, C);
      if (!(l < best_loss)) break;
      const bool stalled = l > best_loss * (1.0 - fit.stall_tol);
      best = std::move(cand);
      best_loss = l;
      S = best.sparse;
      if (stalled) break;
    }
  }
  rep.loss_whitened = best_loss;
  if (cal.adam_steps > 0) best_loss = saten_finetune(best, W, C, cal, &rep.adam_history);
  rep.loss_final = best_loss;
  return best;
}

}  // namespace tsm
