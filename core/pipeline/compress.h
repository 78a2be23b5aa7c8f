// The compression pipeline shared by the CLI and the server: resolve parameters, encode, decode,
// measure (metrics/metrics.h) and add the baselines at equal bytes (codec/baselines.h).
#pragma once
#include <string>

#include "methods/codec.h"
#include "common/dtype.h"

namespace tsm {

struct CompressOptions {
  bool baselines = true;   ///< add fp16 / int8-row / q4_0 / svd at (nearest) equal bytes
};

/// Compresses W with `method` and fills CompressedTensor.metrics (stored bytes, ratios, errors,
/// cosine stats, seconds) and .baselines. `name` and `source_dtype` are recorded as given.
v1::CompressedTensor compress_matrix(ConstMatrixRef W, const std::string& name, DType source_dtype,
                                     const std::string& method, const json& params, const CodecContext& ctx,
                                     const CompressOptions& opt = {});

/// Decodes any CompressedTensor through the method table.
MatrixRM decode_tensor(const v1::CompressedTensor& t);

}  // namespace tsm
