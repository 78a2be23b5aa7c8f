// TT-SVD of many small tensors (one embedding row at a time), fast: each unfolding's SVD comes from
// the eigendecomposition of its small Gram matrix in double (8x96 -> 8x8, 32x12 -> 12x12), and all
// buffers live in a workspace reused across calls. Same truncation as tt_svd (up to rounding when
// singular values tie at the cut). Invariant: after run(), core(k) is (r_{k-1}, n_k, r_k) row-major;
// cores 0..d-3 are left-orthonormal; the norm sits in core d-1, or in core d-2 when the last
// unfolding is tall (then the last core holds orthonormal rows).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/matrix.h"

namespace tsm {

class SmallTtSvd {
 public:
  /// Prepares buffers for tensors of shape `modes` (any order >= 1).
  explicit SmallTtSvd(std::span<const int64_t> modes);

  /// Full ranks r_k = min(prod n_1..n_k, prod n_{k+1}..n_d) of this shape: r_0..r_d.
  std::span<const int64_t> full_ranks() const { return full_ranks_; }

  /// Decomposes x (prod(modes) floats, row-major). caps: r_1..r_{d-1} upper bounds (empty = full);
  /// delta2: squared tail each step may drop (0 = keep up to the caps). Returns ||x - TT||^2 (from
  /// the discarded eigenvalues). Thread-compatible: one workspace per thread.
  double run(const float* x, std::span<const int64_t> caps, double delta2);

  std::span<const int64_t> ranks() const { return ranks_; }    ///< r_0..r_d of the last run
  const double* core(int k) const { return cores_[k].data(); } ///< (r_{k-1}, n_k, r_k)
  int64_t core_size(int k) const { return ranks_[k] * modes_[k] * ranks_[k + 1]; }

 private:
  using MatD = MatrixRMd;

  std::vector<int64_t> modes_, full_ranks_, ranks_;
  std::vector<std::vector<double>> cores_;  ///< core k: capacity full_r_{k-1} n_k full_r_k
  std::vector<double> c_, next_;            ///< current / next unfolding, capacity max over steps
  std::vector<double> gram_;                ///< (g, g) Gram matrix, then its eigenvectors as rows
  std::vector<double> eval_, scratch_;      ///< (g) eigenvalues ascending, (g) scratch
};

}  // namespace tsm
