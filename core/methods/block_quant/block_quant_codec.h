// Block quantization methods q8_0, q4_0, q4_1, q5_0, q5_1 and the k-quants q2_k, q3_k, q4_k, q5_k,
// q6_k (one codec class, one table row per type): llama.cpp's block layouts (block_formats.h,
// k_quants.h) along the input features of a weight, with plain rounding (ggml's reference
// quantizer) or GPTQ error feedback from calibration data (gptq.h). The dense baselines and the
// runtime read the same blocks.
//
// Params: {orientation: out_in | in_out (default out_in; in_out for weights stored (in, out), as
// GPT-2's Conv1D, so blocks still run along the inputs), calibration: none | gptq (default none;
// gptq needs the inputs of the layer: a whole-model job with calibrate), packing: auto | rows | flat
// (resolve() turns auto into flat where it fits and rows would pad, else rows; params without the
// key, written before it existed, mean rows)}.
// Arrays (little-endian): "blocks" u8, B = 32 values per block (k-quants: 256), in either packing:
//   rows: (out, ceil(in / B) * block_bytes): row o holds the blocks of output feature o over inputs
//         0..in-1, zero-padded to a multiple of B (the padding is stored and counted, as ggml pads a row).
//   flat: (ceil(out / k), block_bytes) with k = B / in (in divides B and is a whole number of
//         sub-blocks: a k-quant over 128 inputs has k = 2): block b holds the inputs of output
//         features b*k .. b*k+k-1 one after the other; missing rows of the last block are zeros.
//         Same bits per weight as ggml's rows of 256 for models narrower than a super-block.
// CompressedTensor.shape is the stored (rows, cols).
#pragma once
#include <string>
#include <vector>

#include "methods/block_quant/block_formats.h"
#include "methods/codec.h"
#include "methods/param_spec.h"

namespace tsm {

/// The parameters of every block type (schema and parse from one description in the .cpp).
struct BlockQuantParams {
  std::string orientation = "out_in";  ///< in_out: stored (in, out) as GPT-2 Conv1D
  std::string calibration = "none";    ///< none | gptq
  std::string packing = "auto";        ///< auto (resolved to one of the others) | rows | flat
};
ParamSpec<BlockQuantParams> block_quant_param_spec(std::string method);

class BlockQuantCodec : public Codec {
 public:
  explicit BlockQuantCodec(BlockType t);
  std::string_view name() const override { return block_format(type_).name; }
  std::string_view summary() const override { return summary_; }
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t working_set_bytes(int64_t rows, int64_t cols, const json& resolved, bool calibrated) const override;
  bool calibrates() const override { return true; }
  bool needs_calibration(const json& resolved) const override;
  /// GPTQ when resolved calibration is gptq, else the plain encode.
  v1::CompressedTensor encode_calibrated(ConstMatrixRef W, const json& resolved, const Calibration& cal,
                                         const CodecContext& ctx) const override;
  BlockType type() const { return type_; }

 private:
  v1::CompressedTensor encode_with(ConstMatrixRef W, const json& resolved, const MatrixRMd* H, const CodecContext& ctx) const;
  BlockType type_;
  std::string summary_;
  ParamSpec<BlockQuantParams> spec_;
};

/// Rows per block of resolved params for `in` inputs: 1 for rows packing, B / in for flat. Throws
/// tsm::FormatError when the packing is unknown or flat does not fit `in`.
int block_rows_per_block(BlockType t, const json& resolved, int64_t in);
/// Shape of the "blocks" array: (out, row bytes) for rows_per_block 1, else (ceil(out / k), block bytes).
std::vector<int64_t> block_array_shape(BlockType t, int rows_per_block, int64_t out, int64_t in);
/// The dense (out, in) rows of a block-quantized tensor (orientation undone by decode()).
MatrixRM dequantize_blocks(BlockType t, const uint8_t* blocks, int64_t out, int64_t in, int rows_per_block = 1);

}  // namespace tsm
