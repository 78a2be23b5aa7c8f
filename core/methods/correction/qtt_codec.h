// "qtt": a block-quantized base plus a tensor-train correction of its residual,
// W ~ Q(W) + TT(W - Q(W)), the residual of the logical (out, in) weight taken as a TT-matrix (MPO:
// modes o_k i_k, saten_layout.h) and decomposed by TT-SVD with every rank capped, its cores stored
// at 8 or 4 bits (tt_core_arrays.h). A planner candidate beside qlr: a TT-matrix captures structure
// that is low-rank across the factored index pairs (Kronecker-like), which a plain low-rank factor
// cannot; a quantization residual without such structure gains little for the cores' bytes.
//
// Params: {base: a block type (default q4_k), order: cores 2..8 (default 3), rank: the cap on every
// TT rank (default 8), core_bits: 8 | 4 | 32 (default 8), orientation: out_in | in_out,
// calibration: none | gptq (the base by GPTQ; the train fitted to that base's residual)}.
// Arrays (little-endian): "blocks" u8 as the base block type stores them; "out_modes" i64 (d),
// "in_modes" i64 (d), "ranks" i64 (d+1); core k (r_k, o_k, i_k, r_{k+1}) as "core_k" (+
// "core_scales_k") of tt_core_arrays.h. Invariant: decode(encode(W)) has W's stored shape.
#pragma once
#include <string>

#include "methods/codec.h"
#include "methods/param_spec.h"

namespace tsm {

inline constexpr std::string_view kQttMethod = "qtt";

struct QttParams {
  std::string base = "q4_k";
  int64_t order = 3;
  int64_t rank = 8;
  int core_bits = 8;
  std::string orientation = "out_in";
  std::string calibration = "none";
  std::string packing = "auto";  ///< the base's; resolved to rows | flat (absent in older artifacts: rows)
};

class QttCodec : public Codec {
 public:
  QttCodec();
  std::string_view name() const override { return kQttMethod; }
  std::string_view summary() const override {
    return "block-quantized base + tensor-train (TT-matrix) correction of its residual, cores at 8 or 4 bits; a planner "
           "candidate: on gpt2-man it enters 22 tensors' Pareto sets (attention and MLP projections) but no plan chose it: "
           "the residual's TT structure buys little per byte (README, where tensor networks stand)";
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
  v1::CompressedTensor encode_with(ConstMatrixRef W, const QttParams& p, const Calibration* cal, const CodecContext& ctx) const;
  ParamSpec<QttParams> spec_;
};

}  // namespace tsm
