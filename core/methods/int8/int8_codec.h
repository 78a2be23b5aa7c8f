// "int8": symmetric per-row int8, value = q * scale[row] with scale = max|row| / 127 (q in
// [-127, 127]). Invariant: |decode(encode(W)) - W| <= scale[row] / 2 elementwise.
// Arrays: "values" i8 (rows, cols), "scales" f32 (rows), row-major.
#pragma once
#include "methods/codec.h"

namespace tsm {

inline constexpr std::string_view kInt8Method = "int8";

class Int8RowCodec : public Codec {
 public:
  std::string_view name() const override { return kInt8Method; }
  std::string_view summary() const override { return "baseline: symmetric int8 with one f32 scale per row"; }
  json param_schema() const override { return no_param_schema(); }
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
};

/// Symmetric per-row int8 of one row: q (n) and returns the scale (max|x| / 127, 0 for a zero row).
float quantize_row_int8(const float* x, int64_t n, int8_t* q);

}  // namespace tsm
