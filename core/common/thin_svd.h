// Thin SVD A = U diag(S) V^T of a dense double matrix (m, n), p = min(m, n): U (m, p), S (p)
// descending, V (n, p). BDC for speed above 16 columns, checked: Eigen 3.4.0's BDCSVD returns a
// wrong factorization for some matrices (seen on a 64x64 unfolding of a GPT-2 weight, 18% error),
// so a result whose reconstruction misses A by more than 1e-10 ||A||_F is recomputed by Jacobi.
#pragma once
#include <Eigen/Core>

namespace tsm {

struct ThinSvd {
  Eigen::MatrixXd U;   ///< (m, p)
  Eigen::VectorXd S;   ///< (p), descending
  Eigen::MatrixXd V;   ///< (n, p)
};

ThinSvd thin_svd(const Eigen::Ref<const Eigen::MatrixXd>& A);

}  // namespace tsm
