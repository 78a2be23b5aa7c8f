// "qlr": a block-quantized base plus a low-rank correction of its residual, W ~ Q(W) + L R, the
// factors stored as per-row int8. The planner (pipeline/planner.h) offers it beside plain block
// types: it wins where the quantization residual has a few dominant directions, in the weighted
// norm of the layer's inputs above all (calibrated), and loses where the residual is white noise,
// which the rank then cannot capture for its bytes.
//
// Params: {base: a block type (q8_0 ... q2_k, default q4_k), rank: k >= 1 (default 16, at most
// min(rows, cols)), orientation: out_in | in_out (as the block types), calibration: none | gptq
// (gptq: the base by GPTQ and the factors fitted in the norm of the layer's inputs: a whole-model
// job with calibrate)}.
// Arrays (little-endian): "blocks" u8 as the base block type stores them (block_quant_codec.h);
// "left" i8 (out, k) with "left_scales" f32 (out); "right" i8 (k, in) with "right_scales" f32 (k).
// The factors act on the logical (out, in) weight: W_logical ~ Q + left_scales * left * right_scales * right.
// Invariant: decode(encode(W)) has W's stored shape; with calibration none the correction is the
// best rank-k approximation of the residual up to the int8 rounding of its factors.
#pragma once
#include <string>

#include "methods/codec.h"
#include "methods/param_spec.h"

namespace tsm {

inline constexpr std::string_view kQlrMethod = "qlr";

struct QlrParams {
  std::string base = "q4_k";
  int64_t rank = 16;
  std::string orientation = "out_in";
  std::string calibration = "none";
  std::string packing = "auto";  ///< the base's; resolved to rows | flat (absent in older artifacts: rows)
};

class QlrCodec : public Codec {
 public:
  QlrCodec();
  std::string_view name() const override { return kQlrMethod; }
  std::string_view summary() const override {
    return "block-quantized base + low-rank int8 correction of its residual (calibrated: in the norm of the layer's inputs); "
           "a planner candidate: on the trained fixtures it reached no tensor's Pareto set, flat-packed base included (a "
           "quantization residual has no dominant directions), it wins only where the residual does";
  }
  json param_schema() const override { return spec_.schema(); }
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t working_set_bytes(int64_t rows, int64_t cols, const json& resolved, bool calibrated) const override;
  bool calibrates() const override { return true; }
  bool needs_calibration(const json& resolved) const override;
  v1::CompressedTensor encode_calibrated(ConstMatrixRef W, const json& resolved, const Calibration& cal,
                                         const CodecContext& ctx) const override;

 private:
  v1::CompressedTensor encode_with(ConstMatrixRef W, const QlrParams& p, const Calibration* cal, const CodecContext& ctx) const;
  ParamSpec<QlrParams> spec_;
};

}  // namespace tsm
