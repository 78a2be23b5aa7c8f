// Eigendecomposition of a small dense symmetric matrix (n up to a few dozen) without allocation:
// Householder tridiagonalisation (tred2) then implicit QL with Wilkinson shifts (tql2), after the
// public-domain JAMA / EISPACK routines. For the 8x8 and 12x12 Gram matrices of per-token TT-SVD it
// is ~30% faster than Eigen::SelfAdjointEigenSolver, whose dynamic-size BLAS-2 calls dominate there.
#pragma once

namespace tsm {

/// V: (n, n) row-major, the symmetric input on entry; on return row j is the unit eigenvector of d[j].
/// d: (n) eigenvalues, ascending. e: (n) scratch.
void sym_eig_small(int n, double* V, double* d, double* e);

}  // namespace tsm
