#include "pipeline/artifact_builder.h"

#include <algorithm>
#include <cmath>

#include "formats/array_pack.h"

namespace tsm {

v1::Metrics total_metrics(const google::protobuf::RepeatedPtrField<v1::CompressedTensor>& tensors, std::span<const double> sq_norms) {
  v1::Metrics m;
  double err2 = 0, norm2 = 0, cos_sum = 0, rows = 0;
  double cos_min = 1, cos_p01 = 1, max_abs = 0, seconds = 0;
  uint64_t stored = 0, dense = 0, source = 0;
  for (int i = 0; i < tensors.size(); ++i) {
    const v1::Metrics& t = tensors[i].metrics();
    stored += t.stored_bytes();
    dense += t.dense_f32_bytes();
    source += t.source_bytes();
    double n2 = static_cast<size_t>(i) < sq_norms.size() ? sq_norms[static_cast<size_t>(i)] : 0.0;
    err2 += t.rel_error() * t.rel_error() * n2;
    norm2 += n2;
    double r = tensors[i].shape_size() > 0 ? static_cast<double>(tensors[i].shape(0)) : 0.0;
    cos_sum += t.cos_mean() * r;
    rows += r;
    cos_min = std::min(cos_min, t.cos_min());
    cos_p01 = std::min(cos_p01, t.cos_p01());
    max_abs = std::max(max_abs, t.max_abs_error());
    seconds += t.seconds();
  }
  m.set_stored_bytes(stored);
  m.set_dense_f32_bytes(dense);
  m.set_source_bytes(source);
  m.set_ratio_f32(stored ? static_cast<double>(dense) / static_cast<double>(stored) : 0.0);
  m.set_ratio_source(stored ? static_cast<double>(source) / static_cast<double>(stored) : 0.0);
  m.set_rel_error(norm2 > 0 ? std::sqrt(err2 / norm2) : 0.0);
  m.set_cos_mean(rows > 0 ? cos_sum / rows : 1.0);
  m.set_cos_min(cos_min);
  m.set_cos_p01(cos_p01);
  m.set_max_abs_error(max_abs);
  m.set_seconds(seconds);
  return m;
}

double BuildTimings::total_seconds() const {
  double s = 0;
  for (double t : tensor_seconds) s += t;
  return s;
}

void take_run_measurements(v1::Artifact& a, BuildTimings* timings) {
  if (timings) timings->tensor_seconds.clear();
  for (auto& t : *a.mutable_tensors()) {
    if (timings) timings->tensor_seconds.push_back(t.metrics().seconds());
    t.mutable_metrics()->clear_seconds();
    for (auto& b : *t.mutable_baselines()) b.mutable_metrics()->clear_seconds();
  }
  if (a.has_total()) a.mutable_total()->clear_seconds();
  a.clear_created_unix();
}

v1::Artifact build_artifact(std::span<const Tensor> tensors, const std::string& source_sha256, const std::string& method,
                            const json& params, const CodecContext& ctx, const CompressOptions& opt, BuildTimings* timings) {
  std::vector<TensorMethod> each(tensors.size(), TensorMethod{method, params});
  return build_artifact(tensors, source_sha256, each, params, ctx, opt, timings);
}

v1::Artifact build_artifact(std::span<const Tensor> tensors, const std::string& source_sha256,
                            std::span<const TensorMethod> per_tensor, const json& job, const CodecContext& ctx,
                            const CompressOptions& opt, BuildTimings* timings) {
  if (tensors.empty()) throw Error("nothing to compress: no tensors given");
  if (per_tensor.size() != tensors.size()) throw Error("build_artifact: one method per tensor expected");
  std::string methods;
  for (size_t i = 0; i < per_tensor.size(); ++i) {
    bool seen = false;
    for (size_t k = 0; k < i; ++k) seen = seen || per_tensor[k].method == per_tensor[i].method;
    if (!seen) methods += (methods.empty() ? "" : "+") + per_tensor[i].method;
  }
  v1::Artifact a;
  a.set_format_version(kArtifactFormatVersion);
  a.set_source_sha256(source_sha256);
  a.set_method(methods);
  a.set_params_json(job.dump());
  a.set_generator(std::string("tensorslm ") + TSM_VERSION);

  // Progress is split across tensors by element count, so a big embedding dominates as it should.
  double total_elems = 0;
  for (const auto& t : tensors) total_elems += static_cast<double>(t.numel());
  double done = 0;
  std::vector<double> sq_norms;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ctx.check_cancel();
    MatrixRM W = t.to_matrix();  // (rows, cols) f32
    double share = total_elems > 0 ? static_cast<double>(t.numel()) / total_elems : 1.0 / static_cast<double>(tensors.size());
    double base = done;
    CodecContext sub = ctx;
    sub.progress = [&ctx, base, share](double p) { ctx.report(base + share * std::clamp(p, 0.0, 1.0)); };
    if (static_cast<int64_t>(ctx.row_weights.size()) != W.rows()) sub.row_weights = {};
    *a.add_tensors() = compress_matrix(W, t.name, t.dtype, per_tensor[i].method, per_tensor[i].params, sub, opt);
    sq_norms.push_back(W.cast<double>().squaredNorm());
    done += share;
    ctx.report(done);
  }
  *a.mutable_total() = total_metrics(a.tensors(), sq_norms);
  take_run_measurements(a, timings);
  return a;
}

}  // namespace tsm
