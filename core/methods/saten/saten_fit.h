// Data-free Saten fit: TT-SVD of the layout tensor, sparse residual by magnitude, then refinement that
// alternates TT(W - S) (same ranks) and S = top(W - TT) while the error falls.
// Invariant: report.history (relative Frobenius errors of the accepted iterates) never increases; the
// ranks found by the first TT-SVD (eps or ranks) are kept for every round, so the bytes stay fixed.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/matrix.h"
#include "methods/saten/saten_factors.h"

namespace tsm {

struct SatenFitOptions {
  SatenLayout layout;                  ///< from make_saten_layout
  double eps = 0.0;                    ///< TT-SVD tolerance (delta = eps ||W||_F / sqrt(d-1)); 0 = ranks only
  std::vector<int64_t> ranks;          ///< r_1..r_{d-1} caps; empty = none
  SparsitySpec sparsity;               ///< residual pattern
  int refine_rounds = 3;               ///< alternations after the initial fit
  double stall_tol = 1e-4;             ///< stop when the relative error falls by less than this fraction
  std::span<const float> col_weight;   ///< optional per-input importance for the mask (d_in), empty = 1
  std::function<void(int)> on_round;   ///< called before every round (cancellation / progress); may be empty
};

struct SatenFitReport {
  std::vector<double> history;         ///< relative error after the initial fit and each accepted round
  int rounds_tried = 0;
};

SatenFactors saten_fit(ConstMatrixRef W, const SatenFitOptions& opt, SatenFitReport* report = nullptr);

/// TT-SVD of a matrix in a layout (used by the fit and the baselines).
TensorTrain layout_tt_svd(const SatenLayout& L, ConstMatrixRef W, double eps, std::span<const int64_t> ranks);

}  // namespace tsm
