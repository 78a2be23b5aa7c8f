// The codec interface: one compression method = one Codec subclass + one row in method_table.cpp.
// A codec turns a dense f32 matrix (rows, cols) into a tensorslm.v1.CompressedTensor whose arrays
// it alone interprets, and back. Parameters are JSON objects; resolve() validates them against the
// matrix shape and fills defaults, so the server can reject a bad job before it is queued.
#pragma once
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string_view>

#include "artifact.pb.h"
#include "common/error.h"
#include "common/matrix.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;
using json = nlohmann::json;

/// What a running compression may use from its caller: progress, cancellation, threads, weights.
struct CodecContext {
  std::function<void(double)> progress;          ///< called with 0..1; may be empty
  const std::atomic<bool>* cancel = nullptr;     ///< when set and true, the codec throws tsm::Canceled
  int threads = 1;                               ///< worker threads the codec may use
  std::span<const float> row_weights;            ///< optional per-row weights (token frequencies), size rows

  void report(double p) const { if (progress) progress(p); }
  void check_cancel() const { if (cancel && cancel->load(std::memory_order_relaxed)) throw Canceled(); }
};

class Codec {
 public:
  virtual ~Codec() = default;
  /// The method name as in the method table (e.g. "tt-token").
  virtual std::string_view name() const = 0;
  /// One line for `tensorslm methods` and the OpenAPI description.
  virtual std::string_view summary() const = 0;
  /// JSON Schema (draft 2020-12 subset) of the parameters object, published in /v1/openapi.json.
  virtual json param_schema() const = 0;
  /// Validates `params` for a (rows, cols) matrix and returns them with defaults filled in.
  /// Throws tsm::ParamError naming the field and why.
  virtual json resolve(const json& params, int64_t rows, int64_t cols) const = 0;
  /// Compresses W. Sets method, shape, params_json and arrays; metrics and baselines are filled by
  /// compress_matrix() (codec/compress.h), not here.
  virtual v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const = 0;
  /// Reconstructs the dense (rows, cols) matrix. Throws tsm::FormatError on inconsistent arrays.
  virtual MatrixRM decode(const v1::CompressedTensor& t) const = 0;
  /// Bytes needed to decode `t`: every array's bytes plus the fixed per-tensor metadata the codec
  /// needs (shape, ranks, scales...). The default sums the arrays' data plus 8 bytes per shape entry.
  virtual uint64_t stored_bytes(const v1::CompressedTensor& t) const;
};

}  // namespace tsm
