// Building a .tsm artifact from source tensors: each tensor goes through compress_matrix (codec,
// metrics, baselines) and the artifact gets its header fields and `total` metrics (sums over tensors).
// Pure: no file or network access; the CLI and the server's job runner both call it.
// Invariant: the artifact is a function of the tensors, the method, the parameters and the build
// (no creation time, no wall time, nothing that depends on the thread count), so identical jobs
// give byte-identical files; how long it took comes back apart, in BuildTimings.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "common/tensor.h"  // before compress.h, which uses DType
#include "pipeline/compress.h"
#include "formats/artifact_io.h"

namespace tsm {

/// Wall-clock time of a build, which the artifact does not hold: tensor_seconds[i] is the encode
/// time of the artifact's tensors(i).
struct BuildTimings {
  std::vector<double> tensor_seconds;
  double total_seconds() const;
};
/// Moves every Metrics.seconds of `a` (its tensors' and `total`) into `timings` (when given) and
/// clears them and created_unix, so `a` holds no measurement of the run. Builders call it last.
void take_run_measurements(v1::Artifact& a, BuildTimings* timings);

/// Compresses every tensor of `tensors` (each read as an f32 matrix, see Tensor::to_matrix) with
/// `method` and `params`. ctx.progress receives 0..1 over all tensors (split by element count);
/// ctx.cancel is honoured between and inside tensors; ctx.row_weights is passed only to tensors
/// whose row count equals its size. Fills format_version, source_sha256, method,
/// params_json (as given), generator "tensorslm <TSM_VERSION>" and `total`:
/// byte counts are sums, ratios come from the sums, rel_error is over all tensors combined
/// (sqrt(sum ||A_i - Â_i||^2 / sum ||A_i||^2)), cos_mean is row-weighted, cos_min/cos_p01 are the
/// minimum over tensors (a conservative p01), max_abs_error the maximum; the seconds go to `timings`.
/// Throws tsm::ParamError / tsm::Error from the codec, tsm::Error for an empty list or non-float tensors.
v1::Artifact build_artifact(std::span<const Tensor> tensors, const std::string& source_sha256, const std::string& method,
                            const json& params, const CodecContext& ctx, const CompressOptions& opt = {},
                            BuildTimings* timings = nullptr);

/// One tensor's method and its resolved params (a job's ResolvedJob entry).
struct TensorMethod {
  std::string method;
  json params;
};
/// The same with a method per tensor (`per_tensor[i]` for `tensors[i]`, same size, else tsm::Error);
/// the artifact's method is the distinct methods joined with '+', its params_json `job`.
v1::Artifact build_artifact(std::span<const Tensor> tensors, const std::string& source_sha256,
                            std::span<const TensorMethod> per_tensor, const json& job, const CodecContext& ctx,
                            const CompressOptions& opt = {}, BuildTimings* timings = nullptr);

/// The `total` metrics of a list of compressed tensors as build_artifact computes them. `sq_norms[i]`
/// is ||A_i||_F^2 of tensor i (weights for the combined relative error).
v1::Metrics total_metrics(const google::protobuf::RepeatedPtrField<v1::CompressedTensor>& tensors, std::span<const double> sq_norms);

}  // namespace tsm
