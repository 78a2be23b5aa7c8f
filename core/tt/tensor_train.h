// A tensor train (MPS) of a d-way tensor with modes n_1..n_d and ranks r_0 = 1, r_1..r_{d-1}, r_d = 1.
// Invariant: cores.size() == d, ranks.size() == d + 1, ranks.front() == ranks.back() == 1,
// core k has r_{k-1} * n_k * r_k floats. Layout of core k: (r_{k-1}, n_k, r_k), row-major.
// The full tensor is row-major over the modes: A[i_1..i_d] = G_1[:, i_1, :] ... G_d[:, i_d, :].
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace tsm {

struct TensorTrain {
  std::vector<int64_t> modes;             ///< n_1..n_d
  std::vector<int64_t> ranks;             ///< r_0..r_d, size d + 1
  std::vector<std::vector<float>> cores;  ///< core k: (r_{k-1}, n_k, r_k)

  int order() const { return static_cast<int>(modes.size()); }
  int64_t numel() const;                  ///< product of modes
  int64_t params() const;                 ///< total floats in the cores
  /// The full tensor, row-major over modes: prod(modes) floats.
  std::vector<float> full() const;
  /// One element A[index]; index has d entries.
  float element(std::span<const int64_t> index) const;
  /// The fiber along `mode` through `index` (index[mode] is ignored): modes[mode] floats.
  std::vector<float> fiber(std::span<const int64_t> index, int mode) const;
};

}  // namespace tsm
