// A Saten approximation of W (d_out, d_in): W_hat = unlayout(TT) + S, where TT is a tensor train of the
// layout tensor (saten_layout.h) and S a sparse residual over output rows (sparse_residual.h).
// Invariant: tt.modes == layout.tensor_modes(); sparse is (d_out, d_in) (possibly empty).
// Layout: see TensorTrain (cores (r_{k-1}, n_k, r_k) row-major); for mpo, n_k = o_k * i_k with o_k major.
#pragma once
#include <cstdint>

#include "common/matrix.h"
#include "methods/saten/saten_layout.h"
#include "methods/saten/sparse_residual.h"
#include "tt/tensor_train.h"

namespace tsm {

struct SatenFactors {
  SatenLayout layout;
  TensorTrain tt;
  SparseResidual sparse;

  /// The dense TT part only: (d_out, d_in).
  MatrixRM tt_dense() const;
  /// TT part + sparse part: (d_out, d_in).
  MatrixRM reconstruct() const;
  /// Checks the invariant; throws FormatError.
  void validate() const;
};

}  // namespace tsm
