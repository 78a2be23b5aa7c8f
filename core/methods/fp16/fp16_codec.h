// "fp16": every value cast to IEEE half precision. Invariant: decode(encode(W)) has W's shape and
// differs from W only by half-precision rounding.
// Arrays: "values" f16 (rows, cols), row-major.
#pragma once
#include "methods/codec.h"

namespace tsm {

inline constexpr std::string_view kFp16Method = "fp16";

class Fp16Codec : public Codec {
 public:
  std::string_view name() const override { return kFp16Method; }
  std::string_view summary() const override { return "baseline: every value stored as IEEE half precision"; }
  json param_schema() const override { return no_param_schema(); }
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
};

}  // namespace tsm
