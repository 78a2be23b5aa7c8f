#include "tt/tt_svd.h"

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <cmath>
#include <string>

#include "common/error.h"
#include "common/thin_svd.h"

namespace tsm {

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Thin SVD (common/thin_svd.h) in the row-major types used here.
struct Svd {
  MatD U;                // (m, p)
  Eigen::VectorXd S;     // (p), descending
  MatD V;                // (n, p)
};

Svd thin_svd_rm(const MatD& C) {
  ThinSvd t = tsm::thin_svd(C);
  return {t.U, t.S, t.V};
}

// Smallest rank r >= 1 with sum_{i >= r} S_i^2 <= delta2, capped by `cap` (<= 0: no cap).
int64_t choose_rank(const Eigen::VectorXd& S, double delta2, int64_t cap) {
  const int64_t p = S.size();
  int64_t r = p;
  double tail = 0;
  while (delta2 > 0 && r > 1 && tail + S[r - 1] * S[r - 1] <= delta2) {
    tail += S[r - 1] * S[r - 1];
    --r;
  }
  if (cap > 0) r = std::min(r, cap);
  return std::max<int64_t>(1, std::min(r, p));
}

void check_opts(std::span<const int64_t> modes, const TtSvdOptions& opt) {
  if (modes.empty()) throw ParamError("shape", "a tensor train needs at least one mode");
  for (int64_t m : modes)
    if (m < 1) throw ParamError("shape", "every mode must be >= 1, got " + std::to_string(m));
  if (!opt.max_ranks.empty() && opt.max_ranks.size() != modes.size() - 1)
    throw ParamError("ranks", "needs " + std::to_string(modes.size() - 1) + " entries (r_1..r_{d-1}), got " +
                                  std::to_string(opt.max_ranks.size()));
  for (int64_t r : opt.max_ranks)
    if (r < 1) throw ParamError("ranks", "every rank must be >= 1, got " + std::to_string(r));
  if (!(opt.eps >= 0) || !std::isfinite(opt.eps)) throw ParamError("eps", "must be a finite number >= 0");
}

}  // namespace

TensorTrain tt_svd(std::span<const float> a, std::span<const int64_t> modes, const TtSvdOptions& opt) {
  check_opts(modes, opt);
  const int d = static_cast<int>(modes.size());
  int64_t numel = 1;
  for (int64_t m : modes) numel *= m;
  if (numel != static_cast<int64_t>(a.size()))
    throw ParamError("shape", "modes multiply to " + std::to_string(numel) + " but the tensor has " + std::to_string(a.size()) + " values");

  TensorTrain tt;
  tt.modes.assign(modes.begin(), modes.end());
  tt.ranks.assign(d + 1, 1);
  tt.cores.resize(d);

  double norm2 = 0;
  for (float x : a) norm2 += double(x) * double(x);
  const double delta2 = d > 1 ? opt.eps * opt.eps * norm2 / (d - 1) : 0.0;

  // C: the remaining unfolding, row-major (r_{k-1} n_k, n_{k+1} .. n_d)
  std::vector<double> c(a.begin(), a.end());
  int64_t rest = numel;
  for (int k = 0; k < d - 1; ++k) {
    const int64_t rows = tt.ranks[k] * modes[k];
    rest /= modes[k];
    Eigen::Map<const MatD> C(c.data(), rows, rest);
    Svd s = thin_svd_rm(C);
    const int64_t r = choose_rank(s.S, delta2, opt.max_ranks.empty() ? 0 : opt.max_ranks[k]);
    tt.ranks[k + 1] = r;
    auto& core = tt.cores[k];  // (r_{k-1}, n_k, r_k) = U[:, :r] row-major
    core.resize(static_cast<size_t>(rows * r));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < r; ++j) core[i * r + j] = static_cast<float>(s.U(i, j));
    // next C = diag(S_r) V_r^T: (r, rest), viewed as (r n_{k+1}, rest / n_{k+1})
    std::vector<double> next(static_cast<size_t>(r * rest));
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < rest; ++j) next[i * rest + j] = s.S[i] * s.V(j, i);
    c.swap(next);
  }
  tt.cores[d - 1].assign(c.begin(), c.end());  // (r_{d-1}, n_d, 1)
  return tt;
}

TensorTrain tt_round(const TensorTrain& in, const TtSvdOptions& opt) {
  check_opts(in.modes, opt);
  const int d = in.order();
  if (static_cast<int>(in.ranks.size()) != d + 1 || static_cast<int>(in.cores.size()) != d || in.ranks.front() != 1 || in.ranks.back() != 1)
    throw Error("tt_round: inconsistent tensor train (ranks/cores do not match modes)");
  for (int k = 0; k < d; ++k)
    if (static_cast<int64_t>(in.cores[k].size()) != in.ranks[k] * in.modes[k] * in.ranks[k + 1])
      throw Error("tt_round: core " + std::to_string(k) + " has the wrong size");

  std::vector<MatD> G(d);  // core k as (r_{k-1}, n_k r_k)
  std::vector<int64_t> r = in.ranks;
  for (int k = 0; k < d; ++k) {
    G[k] = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
               in.cores[k].data(), r[k], in.modes[k] * r[k + 1]).cast<double>();
  }
  // Right-to-left orthogonalisation: G_k = R^T Q^T (LQ), G_k <- Q^T, G_{k-1} <- G_{k-1} R^T.
  for (int k = d - 1; k >= 1; --k) {
    Eigen::MatrixXd Mt = G[k].transpose();  // (n_k r_k, r_{k-1})
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(Mt);
    const int64_t rn = std::min<int64_t>(Mt.rows(), Mt.cols());
    Eigen::MatrixXd Q = qr.householderQ() * Eigen::MatrixXd::Identity(Mt.rows(), rn);
    Eigen::MatrixXd R = qr.matrixQR().topRows(rn).triangularView<Eigen::Upper>();  // (rn, r_{k-1})
    G[k] = Q.transpose();
    // G_{k-1}: (r_{k-2}, n_{k-1} r_{k-1}) -> (r_{k-2} n_{k-1}, r_{k-1}) * R^T -> (r_{k-2} n_{k-1}, rn)
    Eigen::Map<MatD> prev(G[k - 1].data(), r[k - 1] * in.modes[k - 1], r[k]);
    MatD np = prev * R.transpose();
    r[k] = rn;
    G[k - 1] = Eigen::Map<MatD>(np.data(), r[k - 1], in.modes[k - 1] * rn);
  }
  const double norm2 = G[0].squaredNorm();
  const double delta2 = d > 1 ? opt.eps * opt.eps * norm2 / (d - 1) : 0.0;
  // Left-to-right truncation.
  for (int k = 0; k < d - 1; ++k) {
    MatD M = Eigen::Map<MatD>(G[k].data(), r[k] * in.modes[k], r[k + 1]);
    Svd s = thin_svd_rm(M);
    const int64_t rk = choose_rank(s.S, delta2, opt.max_ranks.empty() ? 0 : opt.max_ranks[k]);
    MatD U = s.U.leftCols(rk);
    G[k] = Eigen::Map<MatD>(U.data(), r[k], in.modes[k] * rk);
    MatD SV = s.S.head(rk).asDiagonal() * s.V.leftCols(rk).transpose();  // (rk, r_{k+1})
    MatD nx = SV * G[k + 1];                                               // (rk, n_{k+1} r_{k+2})
    G[k + 1] = nx;
    r[k + 1] = rk;
  }
  TensorTrain tt;
  tt.modes = in.modes;
  tt.ranks = r;
  tt.cores.resize(d);
  for (int k = 0; k < d; ++k) {
    tt.cores[k].resize(static_cast<size_t>(G[k].size()));
    for (int64_t i = 0; i < G[k].size(); ++i) tt.cores[k][i] = static_cast<float>(G[k].data()[i]);
  }
  return tt;
}

}  // namespace tsm
