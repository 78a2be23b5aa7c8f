// The quantized base of a correction method (see quantized_base.h).
#include "methods/correction/quantized_base.h"

#include "formats/array_pack.h"

namespace tsm {

const std::vector<std::string>& base_type_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (BlockType t : {BlockType::kQ8_0, BlockType::kQ4_0, BlockType::kQ4_1, BlockType::kQ5_0, BlockType::kQ5_1, BlockType::kQ6_K,
                        BlockType::kQ5_K, BlockType::kQ4_K, BlockType::kQ3_K, BlockType::kQ2_K})
      out.emplace_back(block_format(t).name);
    return out;
  }();
  return names;
}

const BlockQuantCodec& base_codec(const std::string& base) {
  static const std::vector<BlockQuantCodec> codecs = [] {
    std::vector<BlockQuantCodec> v;
    for (const auto& n : base_type_names()) v.emplace_back(*parse_block_type(n));
    return v;
  }();
  for (const auto& c : codecs)
    if (c.name() == base) return c;
  throw ParamError("base", "unknown block type '" + base + "'");
}

json base_params(const std::string& base, const std::string& orientation, const std::string& calibration,
                 const std::string& packing, int64_t rows, int64_t cols) {
  return base_codec(base).resolve({{"orientation", orientation}, {"calibration", calibration}, {"packing", packing}}, rows, cols);
}

v1::CompressedTensor encode_base(ConstMatrixRef W, const std::string& base, const json& params, const Calibration* cal,
                                 const CodecContext& ctx) {
  const BlockQuantCodec& bq = base_codec(base);
  return cal ? bq.encode_calibrated(W, params, *cal, ctx) : bq.encode(W, params, ctx);
}

MatrixRM decode_base(const v1::CompressedTensor& t, const std::string& base, const json& params, int64_t rows, int64_t cols) {
  const BlockQuantCodec& bq = base_codec(base);
  v1::CompressedTensor b = tensor_header(bq.name(), rows, cols);
  b.set_name(t.name());
  b.set_params_json(params.dump());
  b.add_arrays()->CopyFrom(find_array(t, "blocks"));
  return bq.decode(b);
}

}  // namespace tsm
