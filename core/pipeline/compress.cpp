#include "pipeline/compress.h"

#include <chrono>

#include "formats/array_pack.h"
#include "pipeline/baselines.h"
#include "methods/method_table.h"
#include "metrics/metrics.h"

namespace tsm {

v1::CompressedTensor compress_matrix(ConstMatrixRef W, const std::string& name, DType source_dtype, const std::string& method,
                                     const json& params, const CodecContext& ctx, const CompressOptions& opt) {
  const Codec& codec = find_codec(method);
  for (int64_t i = 0; i < W.rows(); ++i)
    if (!W.row(i).allFinite())
      throw Error("tensor '" + name + "' holds NaN or Inf in row " + std::to_string(i) + "; compressing it would spread them");
  const json resolved = codec.resolve(params, W.rows(), W.cols());
  const auto t0 = std::chrono::steady_clock::now();
  v1::CompressedTensor t = codec.encode(W, resolved, ctx);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.set_name(name);
  t.set_method(std::string(codec.name()));
  t.set_source_dtype(to_proto(source_dtype));
  if (t.params_json().empty()) t.set_params_json(resolved.dump());
  ctx.check_cancel();
  const MatrixRM A_hat = codec.decode(t);
  const uint64_t bytes = codec.stored_bytes(t);
  fill_metrics(*t.mutable_metrics(), error_stats(W, A_hat), bytes, W.rows(), W.cols(), dtype_size(source_dtype));
  t.mutable_metrics()->set_seconds(seconds);
  if (opt.baselines) {
    ctx.check_cancel();
    for (auto& b : compute_baselines(W, bytes, dtype_size(source_dtype))) t.add_baselines()->Swap(&b);
  }
  return t;
}

MatrixRM decode_tensor(const v1::CompressedTensor& t) { return find_codec(t.method()).decode(t); }

}  // namespace tsm
