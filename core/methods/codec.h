// The codec interface: the compression half of a method (core/methods/<name>/). A codec turns a
// dense f32 matrix (rows, cols) into a tensorslm.v1.CompressedTensor whose arrays it alone
// interprets, and back. Parameters are JSON objects at this border (they arrive from HTTP and the
// CLI); resolve() validates them against the matrix shape and fills defaults, so a bad job is
// rejected before it is queued; inside a method they become its typed parameter struct.
// The runtime half (LinearOp / TokenEmbedding factories) is in the method's row of the table
// (methods/method_table.h).
#pragma once
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

/// What a calibration-aware encode gets from the pipeline: statistics of the layer's inputs,
/// collected by running the dense model on calibration sequences.
struct Calibration {
  const MatrixRMd* input_covariance = nullptr;  ///< C = X^T X / n, (d_in, d_in), logical input features
  int adam_steps = 50;                          ///< fine-tuning steps, for methods that fine-tune
  std::string whitening = "cholesky";           ///< how C is factored, for methods that whiten
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
  /// the pipeline (pipeline/compress.h), not here.
  virtual v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const = 0;
  /// Reconstructs the dense (rows, cols) matrix. Throws tsm::FormatError on inconsistent arrays.
  virtual MatrixRM decode(const v1::CompressedTensor& t) const = 0;
  /// Bytes needed to decode `t`: every array's bytes plus the fixed per-tensor metadata the codec
  /// needs (shape, ranks, scales...). The default sums the arrays' data plus 8 bytes per shape entry.
  virtual uint64_t stored_bytes(const v1::CompressedTensor& t) const;
  /// Peak bytes encode() (or encode_calibrated(), when `calibrated`) of a (rows, cols) matrix with
  /// these resolved params allocates beyond W itself: an upper-bound estimate, checked against
  /// measured peak RSS in tests/core/test_memory_estimate.cpp. The default, 4 dense f32 copies, fits
  /// codecs that work in f32 on copies of W (fp16, int8, tt-token).
  virtual uint64_t working_set_bytes(int64_t rows, int64_t cols, const json& resolved, bool calibrated) const;

  /// Whether encode_calibrated() fits in the norm of the layer's inputs.
  virtual bool calibrates() const { return false; }
  /// Whether these resolved params cannot be encoded without calibration data (e.g. q4_0 with
  /// calibration gptq): the pipeline refuses such a job unless it calibrates.
  virtual bool needs_calibration(const json& resolved) const { return false; }
  /// Calibration-aware encode of W (as stored; `cal.input_covariance` over the logical inputs).
  /// The default throws ParamError("calibrate").
  virtual v1::CompressedTensor encode_calibrated(ConstMatrixRef W, const json& resolved, const Calibration& cal,
                                                 const CodecContext& ctx) const;
  /// Baselines only this method can define (e.g. saten: plain TT in the same layout, pruning alone),
  /// at or near `target_bytes`; the pipeline adds the generic ones. Default: none.
  virtual std::vector<v1::Baseline> own_baselines(ConstMatrixRef W, const json& resolved, uint64_t target_bytes,
                                                  size_t source_dtype_size) const {
    return {};
  }
  /// Whether the parameters have an "orientation" (out_in | in_out) that the pipeline sets for
  /// weights stored (in, out), as GPT-2's Conv1D.
  bool takes_orientation() const;
};

// ---- helpers for codecs ---------------------------------------------------------------------------

/// Whether resolved params say the matrix is stored (in, out), as GPT-2's Conv1D ("orientation":
/// "in_out"; default out_in).
bool stored_in_out(const json& resolved);
/// {"type": "object", "additionalProperties": false, "properties": {}}
json no_param_schema();
/// Throws ParamError for anything but null or {} ("<method> takes none").
void expect_no_params(const json& params, std::string_view method);
/// (rows, cols) of a 2-D CompressedTensor; FormatError for another rank or an implausible size.
std::pair<int64_t, int64_t> matrix_shape(const v1::CompressedTensor& t);
/// A CompressedTensor with method, shape (rows, cols) and params_json "{}" set.
v1::CompressedTensor tensor_header(std::string_view method, int64_t rows, int64_t cols);

}  // namespace tsm
