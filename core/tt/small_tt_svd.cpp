#include "tt/small_tt_svd.h"

#include <algorithm>

#include "common/error.h"

namespace tsm {

SmallTtSvd::SmallTtSvd(std::span<const int64_t> modes) : modes_(modes.begin(), modes.end()) {
  const int d = static_cast<int>(modes_.size());
  if (d < 1) throw ParamError("shape", "a tensor train needs at least one mode");
  int64_t numel = 1;
  for (int64_t m : modes_) numel *= m;
  full_ranks_.assign(d + 1, 1);
  int64_t left = 1;
  for (int k = 0; k < d - 1; ++k) {
    left *= modes_[k];
    full_ranks_[k + 1] = std::min(left, numel / left);
  }
  ranks_ = full_ranks_;
  cores_.resize(d);
  int64_t cap = numel;
  for (int k = 0; k < d; ++k) {
    cores_[k].resize(static_cast<size_t>(full_ranks_[k] * modes_[k] * full_ranks_[k + 1]));
    cap = std::max(cap, full_ranks_[k] * modes_[k] * full_ranks_[k + 1]);
  }
  // an unfolding never holds more than r_{k-1} * prod(n_k..n_d) <= max(numel, core sizes) * max rank
  int64_t maxr = *std::max_element(full_ranks_.begin(), full_ranks_.end());
  c_.resize(static_cast<size_t>(std::max(numel, cap) * std::max<int64_t>(1, maxr)));
  next_.resize(c_.size());
}

SmallTtSvd::Solver& SmallTtSvd::solver(int64_t n) {
  if (static_cast<int64_t>(solvers_.size()) <= n) solvers_.resize(n + 1);
  if (!solvers_[n]) solvers_[n] = std::make_unique<Solver>(static_cast<Eigen::Index>(n));
  return *solvers_[n];
}

double SmallTtSvd::run(const float* x, std::span<const int64_t> caps, double delta2) {
  const int d = static_cast<int>(modes_.size());
  int64_t numel = 1;
  for (int64_t m : modes_) numel *= m;
  ranks_.assign(d + 1, 1);
  if (d == 1) {
    std::copy(x, x + numel, cores_[0].begin());
    return 0.0;
  }
  std::copy(x, x + numel, c_.begin());
  double err2 = 0;
  int64_t rest = numel;
  for (int k = 0; k < d - 1; ++k) {
    const int64_t rows = ranks_[k] * modes_[k];
    rest /= modes_[k];
    Eigen::Map<const MatD> C(c_.data(), rows, rest);
    const bool last = k == d - 2;
    const bool right = last && rest < rows;  // final step with a tall unfolding: Gram of the columns
    const int64_t g = right ? rest : rows;
    gram_.resize(g, g);
    // lazyProduct: coefficient-based products, no GEMM packing for these tiny sizes
    if (right) gram_.noalias() = C.transpose().lazyProduct(C);
    else gram_.noalias() = C.lazyProduct(C.transpose());
    Solver& es = solver(g);
    es.compute(gram_, Eigen::ComputeEigenvectors);
    const auto& ev = es.eigenvalues();  // ascending
    // rank: drop the smallest eigenvalues (squared singular values) while the tail stays <= delta2
    int64_t r = g;
    double tail = 0;
    while (delta2 > 0 && r > 1 && tail + std::max(0.0, ev[g - r]) <= delta2) {
      tail += std::max(0.0, ev[g - r]);
      --r;
    }
    int64_t cap = caps.empty() ? full_ranks_[k + 1] : std::min(caps[k], full_ranks_[k + 1]);
    r = std::max<int64_t>(1, std::min({r, cap, g}));
    for (int64_t i = 0; i < g - r; ++i) err2 += std::max(0.0, ev[i]);
    ranks_[k + 1] = r;
    const auto& Q = es.eigenvectors();  // (g, g), column j <-> ev[j]; top r: columns g-1 .. g-r
    if (!right) {
      // core k = U_r: (rows, r); next C = U_r^T C: (r, rest)
      double* core = cores_[k].data();
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < r; ++j) core[i * r + j] = Q(i, g - 1 - j);
      Eigen::Map<MatD> N(next_.data(), r, rest);
      N.noalias() = Q.rightCols(r).rowwise().reverse().transpose().lazyProduct(C);
      std::swap(c_, next_);
    } else {
      // core k = C V_r: (rows, r); last core = V_r^T: (r, rest)
      Eigen::Map<MatD> core(cores_[k].data(), rows, r);
      core.noalias() = C.lazyProduct(Q.rightCols(r).rowwise().reverse());
      double* lastc = cores_[k + 1].data();
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < rest; ++j) lastc[i * rest + j] = Q(j, g - 1 - i);
      return err2;
    }
  }
  // left-only path: the last core is the remaining C (r_{d-1}, n_d)
  std::copy(c_.begin(), c_.begin() + ranks_[d - 1] * modes_[d - 1], cores_[d - 1].begin());
  return err2;
}

}  // namespace tsm
