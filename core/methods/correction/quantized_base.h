// The block-quantized base that the correction methods (qlr, qtt) add a factor to: the block types
// a base may be, the codec of each, and the base tensor inside a correction's CompressedTensor
// (its "blocks" array, stored exactly as the block type stores it: block_quant_codec.h).
#pragma once
#include <string>
#include <vector>

#include "methods/block_quant/block_quant_codec.h"

namespace tsm {

/// Every block type a base may be, finest first (q8_0 ... q2_k).
const std::vector<std::string>& base_type_names();
/// The codec of block type `base`; throws ParamError("base") when it is none.
const BlockQuantCodec& base_codec(const std::string& base);
/// The block codec's resolved params for the base of a stored (rows, cols) weight: packing "auto"
/// becomes flat or rows as the block type resolves it. Throws ParamError (packing flat that does not fit).
json base_params(const std::string& base, const std::string& orientation, const std::string& calibration,
                 const std::string& packing, int64_t rows, int64_t cols);
/// The packing param every correction method offers for its base.
inline constexpr const char* kBasePackingHelp =
    "the base's block packing, as the block types': rows (padded to whole blocks), flat (narrow rows share "
    "super-blocks), auto (flat where it fits and rows would pad)";

/// Encodes W's base (GPTQ when `cal` is given).
v1::CompressedTensor encode_base(ConstMatrixRef W, const std::string& base, const json& params, const Calibration* cal,
                                 const CodecContext& ctx);
/// Q(W) in W's stored shape (rows, cols) from the "blocks" array of correction tensor `t`.
MatrixRM decode_base(const v1::CompressedTensor& t, const std::string& base, const json& params, int64_t rows, int64_t cols);

}  // namespace tsm
