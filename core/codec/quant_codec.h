// Quantized dense baselines: "fp16" (every value cast to IEEE half) and "int8" (symmetric per-row:
// value = q * scale[row], scale = max|row| / 127). Invariant: decode(encode(W)) has W's shape.
// Arrays: fp16: "values" f16 (rows, cols); int8: "values" i8 (rows, cols), "scales" f32 (rows).
#pragma once
#include "codec/codec.h"

namespace tsm {

class Fp16Codec : public Codec {
 public:
  std::string_view name() const override { return "fp16"; }
  std::string_view summary() const override { return "baseline: every value stored as IEEE half precision"; }
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
};

class Int8RowCodec : public Codec {
 public:
  std::string_view name() const override { return "int8"; }
  std::string_view summary() const override { return "baseline: symmetric int8 with one f32 scale per row"; }
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
};

/// Symmetric per-row int8 of one row: q (n) and returns the scale (max|x| / 127, 0 for a zero row).
float quantize_row_int8(const float* x, int64_t n, int8_t* q);

}  // namespace tsm
