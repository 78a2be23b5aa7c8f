#include "methods/saten/saten_factors.h"

#include "common/error.h"

namespace tsm {

MatrixRM SatenFactors::tt_dense() const {
  const auto full = tt.full();
  return from_layout_tensor(layout, full);
}

MatrixRM SatenFactors::reconstruct() const {
  MatrixRM W = tt_dense();
  sparse.add_to(W);
  return W;
}

void SatenFactors::validate() const {
  layout.validate();
  const auto modes = layout.tensor_modes();
  if (tt.modes != modes) throw FormatError("saten: tensor-train modes do not match the layout");
  const int d = tt.order();
  if (int(tt.ranks.size()) != d + 1 || tt.ranks.front() != 1 || tt.ranks.back() != 1)
    throw FormatError("saten: ranks must have order+1 entries and start and end with 1");
  if (int(tt.cores.size()) != d) throw FormatError("saten: expected " + std::to_string(d) + " cores");
  for (int k = 0; k < d; ++k) {
    if (tt.ranks[k + 1] < 1 || tt.ranks[k + 1] > (int64_t(1) << 20)) throw FormatError("saten: rank out of range");
    if (int64_t(tt.cores[k].size()) != tt.ranks[k] * modes[k] * tt.ranks[k + 1])
      throw FormatError("saten: core " + std::to_string(k) + " has " + std::to_string(tt.cores[k].size()) +
                        " values, expected " + std::to_string(tt.ranks[k] * modes[k] * tt.ranks[k + 1]));
  }
  if (sparse.rows != layout.d_out || sparse.cols != layout.d_in)
    throw FormatError("saten: sparse residual shape does not match the matrix");
  sparse.validate();
}

}  // namespace tsm
