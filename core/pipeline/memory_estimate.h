// What a compression job will hold in memory at its peak, estimated before it runs from shapes and
// options alone (no weights read), so the service can refuse a job whose working set cannot fit its
// memory limit (422) instead of letting the kernel's OOM killer take the server down mid-job.
// Invariant: every term is something the pipeline holds at once at its peak (dense f32 weights, the
// largest tensor's encode working set, reference logits, covariances), so the sum is an upper
// bound of the job's allocation; tests/core/test_memory_estimate.cpp measures peak RSS in a child
// process against it. An estimate is not a reservation: jobs running side by side are not summed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "methods/codec.h"
#include "model/model_config.h"
#include "pipeline/model_artifact.h"

namespace tsm {

struct PlannerOptions;  // pipeline/planner.h

struct MemoryEstimate {
  uint64_t bytes = 0;                                     ///< sum of parts
  std::vector<std::pair<std::string, uint64_t>> parts;    ///< (what, bytes), in the order added
  void add(std::string what, uint64_t b);
  /// "412 MiB (weights f32 240 MiB + largest tensor's encode 96 MiB + ...)"
  std::string text() const;
};

/// A single-matrix job: the matrix as f32, the codec's working set, the decode and error metrics,
/// and the generic baselines (a Gram SVD and three reconstructions) when `baselines`.
MemoryEstimate estimate_matrix_job(const Codec& codec, int64_t rows, int64_t cols, const json& resolved, bool baselines);

/// A whole-model job over `tensors` (every tensor of the model) compressing `plan`: the dense model
/// and a decoded compressed model (f32), the largest planned tensor's matrix-job estimate, the
/// calibration covariances (when opt.calibrate) and the evaluation's reference logits (when opt.eval
/// and the architecture runs).
MemoryEstimate estimate_model_job(const std::vector<TensorMeta>& tensors, const ModelPlan& plan, const ModelArtifactOptions& opt);

/// A plan job: the whole-model terms with calibration and evaluation on, the candidates of the
/// largest planned tensor held at once, and the reference logits of the sensitivity, repair and
/// verification sets. `cfg` is the runnable architecture the planner needs.
MemoryEstimate estimate_plan_job(const std::vector<TensorMeta>& tensors, const ModelConfig& cfg, const PlannerOptions& opt);

/// Bytes of f32 logits for `spec`'s sequences on a model with `vocab` outputs and `context` positions.
uint64_t logits_bytes(const SequenceSpec& spec, int64_t vocab, int64_t context);

}  // namespace tsm
