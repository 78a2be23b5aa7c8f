// Model-level quality of a whole-model artifact against its dense model, as users should judge it:
// KL(dense || compressed), perplexity delta and top-1 agreement with their sample size, on held-out
// sequences (ModelArtifactOptions::eval_set); beside them every reference representation (fp16, int8,
// block quantization at defaults: methods/method_table reference_codecs) of the same tensors on the
// same sequences, and a verdict naming the best representation at this size by KL, not weight error.
// Invariant: the result and every alternative are measured on the identical sequence set.
#pragma once
#include <span>
#include <string>

#include "artifact.pb.h"
#include "formats/hf_model_dir.h"
#include "pipeline/model_artifact.h"

namespace tsm {

/// One representation of a whole-model result: its method (or plan), whole-model bytes and ratio, KL.
struct QualityCandidate {
  std::string method;
  uint64_t stored_bytes = 0;
  double ratio_f32 = 0;
  double kl_mean = 0;
};

struct Verdict {
  std::string verdict;  ///< one line: the best representation at this size by KL
  std::string warning;  ///< non-empty when the result is larger than `fp16_bytes`
};
/// The best by KL among the result and the alternatives no larger than it (2% slack for metadata);
/// ties go to the smaller. `fp16_bytes` 0: no size warning.
Verdict judge(const QualityCandidate& result, std::span<const QualityCandidate> alternatives, uint64_t fp16_bytes);

/// Quality of `compressed` (a whole-model artifact) against the dense model directory on
/// opt.eval_set; with opt.compare, also every reference representation of the same tensors, the
/// verdict and the size warning. `cancel` (optional) is checked between representations. Throws
/// tsm::Error when either model cannot be loaded.
v1::ModelQuality measure_model_quality(const HfModelDir& dense, const v1::Artifact& compressed, const ModelArtifactOptions& opt,
                                       const CodecContext* cancel = nullptr);

}  // namespace tsm
