#include "jobs/job_runner.h"

#include <cstdio>

#include "formats/artifact_io.h"
#include "pipeline/artifact_builder.h"
#include "pipeline/metrics_json.h"

namespace tsm::server {

using nlohmann::json;


v1::Artifact compress_tensors(std::span<const Tensor> tensors, const std::string& source_sha256,
                              const tensorslm::v1::ResolvedJob& resolved, const json& job, const CodecContext& ctx,
                              BuildTimings* timings) {
  std::vector<TensorMethod> each;
  for (const auto& t : resolved.tensors()) each.push_back({t.method(), struct_json(t.params())});
  return build_artifact(tensors, source_sha256, each, job, ctx, {}, timings);
}

json artifact_result_json(const v1::Artifact& a, const BuildTimings* timings) {
  json tensors = json::array();
  for (int i = 0; i < a.tensors_size(); ++i) {
    json t = tensor_report_json(a.tensors(i));
    if (timings && size_t(i) < timings->tensor_seconds.size()) t["metrics"]["seconds"] = timings->tensor_seconds[size_t(i)];
    tensors.push_back(std::move(t));
  }
  json out = {{"tensors", tensors}, {"total", metrics_to_json(a.total())}};
  if (timings) out["total"]["seconds"] = timings->total_seconds();
  if (a.has_quality() && a.quality().tokens() > 0) {
    out["quality"] = quality_to_json(a.quality());
  }
  return out;
}

std::string verify_artifact_for_store(std::string_view bytes) {
  // One SHA-256 pass, no parse: a whole-model artifact is already in memory twice (message, bytes).
  const ArtifactIntegrity in = check_artifact_content(bytes);
  if (in.state != ArtifactIntegrity::State::kVerified)
    throw FormatError("artifact to store carries no content hash (the writer must add one)");
  return in.content_sha256;
}

std::string quality_gate_failure(const v1::Artifact& a, const tensorslm::v1::QualityGate& gate) {
  if (gate.has_max_rel_error()) {
    for (const auto& t : a.tensors())
      if (t.metrics().rel_error() > gate.max_rel_error()) {
        char b[256];
        std::snprintf(b, sizeof b, "quality gate: tensor '%s' has rel_error %.6g > max_rel_error %.6g",
                      t.name().c_str(), t.metrics().rel_error(), gate.max_rel_error());
        return std::string(b) + "; raise ranks/lower eps or relax the gate";
      }
  }
  if (gate.has_max_kl()) {
    if (!a.has_quality() || a.quality().tokens() == 0)
      return "quality gate: max_kl needs a whole-model job whose model ran (no KL was measured)";
    if (a.quality().kl_mean() > gate.max_kl()) {
      char b[256];
      std::snprintf(b, sizeof b, "quality gate: KL %.6g nats > max_kl %.6g", a.quality().kl_mean(), gate.max_kl());
      return b;
    }
  }
  return "";
}

}  // namespace tsm::server
