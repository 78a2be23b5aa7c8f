// The runtime's linear layer for an "fp16" CompressedTensor: y = x W^T with W kept in half precision
// (2 bytes per weight) and widened to f32 in registers (F16C _mm256_cvtph_ps on x86-64-v3, vcvt_f32_f16
// on aarch64, a scalar conversion elsewhere; chosen at compile time), never stored as dense f32.
// Invariant: in/out features are the logical (d_in, d_out). The fp16 codec stores the matrix as the
// checkpoint has it and records no orientation, so a weight stored (in, out) (GPT-2 Conv1D) comes in
// through make_fp16_linear_in_out, which repacks it to (out, in) once at load (same bytes).
// Layout: w_ (out, in) IEEE half, row-major.
// Error against decode() + dense f32 x W^T: f32 rounding of the sums only (the widened weights are
// exact), <= 2 in u sum_j |x_j w_j| with u = 2^-24.
#pragma once
#include <memory>
#include <vector>

#include "artifact.pb.h"
#include "model/linear.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

class Fp16Linear final : public LinearOp {
 public:
  /// w: (out, in) half-precision bit patterns (tsm::Error on a size mismatch).
  Fp16Linear(int64_t in, int64_t out, std::vector<uint16_t> w);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void forward(const float* x, int64_t n, float* y) const override;
  uint64_t resident_bytes() const override { return w_.size() * sizeof(uint16_t); }

 private:
  int64_t in_, out_;
  std::vector<uint16_t> w_;  ///< (out, in)
};

/// 'values' f16 (rows, cols) as (out, in) = (rows, cols). tsm::FormatError on inconsistent arrays.
std::unique_ptr<LinearOp> make_fp16_linear(const v1::CompressedTensor& t);
/// The same tensor stored (in, out) = (rows, cols): repacked to (out, in).
std::unique_ptr<LinearOp> make_fp16_linear_in_out(const v1::CompressedTensor& t);

}  // namespace tsm
