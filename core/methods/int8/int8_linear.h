// The runtime's linear layer for an "int8" CompressedTensor: y = x W^T with W kept as int8 codes and
// f32 scales (1 byte per weight + 4 per stored row), codes widened to f32 in registers (AVX2
// _mm256_cvtepi8_epi32, NEON vmovl_s8 / vcvtq_f32_s32, scalar elsewhere; chosen at compile time), never
// stored as dense f32. Activations stay f32 (no activation quantization error).
// Invariant: in/out features are the logical (d_in, d_out). The int8 codec scales each STORED row and
// records no orientation:
//   out_in (stored (out, in)): W[o][i] = row_scale[o] * q[o][i]  -> y_o = row_scale[o] * sum_i q[o][i] x_i
//   in_out (stored (in, out), GPT-2 Conv1D, via make_int8_linear_in_out): W[o][i] = in_scale[i] * q[i][o];
//     the codes are repacked to (out, in) once at load and x is scaled by in_scale before the sums.
// Layout: q_ (out, in) int8 row-major; row_scale_ (out) or in_scale_ (in), the other empty.
// Error against decode() + dense f32 x W^T: f32 rounding only, <= 3 in u sum_j |x_j w_j|, u = 2^-24.
#pragma once
#include <memory>
#include <vector>

#include "artifact.pb.h"
#include "model/linear.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

class Int8Linear final : public LinearOp {
 public:
  /// q: (out, in); exactly one of row_scale (out) and in_scale (in) non-empty (else tsm::Error).
  Int8Linear(int64_t in, int64_t out, std::vector<int8_t> q, std::vector<float> row_scale, std::vector<float> in_scale);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void forward(const float* x, int64_t n, float* y) const override;
  uint64_t resident_bytes() const override { return q_.size() + (row_scale_.size() + in_scale_.size()) * sizeof(float); }

 private:
  int64_t in_, out_;
  std::vector<int8_t> q_;          ///< (out, in)
  std::vector<float> row_scale_;   ///< (out), stored out_in
  std::vector<float> in_scale_;    ///< (in), stored in_out
};

/// 'values' i8 (rows, cols) and 'scales' f32 (rows) as (out, in) = (rows, cols). tsm::FormatError on
/// inconsistent arrays.
std::unique_ptr<LinearOp> make_int8_linear(const v1::CompressedTensor& t);
/// The same tensor stored (in, out) = (rows, cols): codes repacked to (out, in), scales per input.
std::unique_ptr<LinearOp> make_int8_linear_in_out(const v1::CompressedTensor& t);

}  // namespace tsm
