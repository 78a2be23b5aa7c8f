// TT-SVD (Oseledets 2011) and TT rounding.
// With tolerance eps each of the d-1 truncations drops singular values whose tail norm is at most
// delta = eps * ||A||_F / sqrt(d-1), so ||A - TT||_F <= eps * ||A||_F. max_ranks caps r_1..r_{d-1}.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "tt/tensor_train.h"

namespace tsm {

struct TtSvdOptions {
  double eps = 0.0;                  ///< relative tolerance; 0 = exact up to max_ranks
  std::vector<int64_t> max_ranks;    ///< r_1..r_{d-1} caps; empty = no cap
};

/// Decomposes the tensor `a` (row-major over `modes`, prod(modes) floats).
/// Throws tsm::ParamError when modes and a disagree or max_ranks has the wrong length.
TensorTrain tt_svd(std::span<const float> a, std::span<const int64_t> modes, const TtSvdOptions& opt);

/// Re-compresses a tensor train (orthogonalisation right-to-left, then truncated SVDs left-to-right)
/// with the same eps / max_ranks semantics, relative to the norm of `tt`.
TensorTrain tt_round(const TensorTrain& tt, const TtSvdOptions& opt);

}  // namespace tsm
