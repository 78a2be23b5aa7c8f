// JSON views of results (derived from the proto messages, never the other way round): what the CLI's
// --json prints and what the server returns for a job result or an artifact's description.
// Field names follow proto/artifact.proto; params_json strings are parsed back into objects.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "artifact.pb.h"

namespace tsm {

using json = nlohmann::json;

/// {stored_bytes, dense_f32_bytes, source_bytes, ratio_f32, ratio_source, rel_error, cos_mean,
///  cos_min, cos_p01, max_abs_error, seconds}
json metrics_to_json(const ::tensorslm::v1::Metrics& m);
/// {method, params, metrics}
json baseline_to_json(const ::tensorslm::v1::Baseline& b);
/// {name, method, shape, source_dtype, params, arrays: [{name, dtype, shape, bytes}], metrics, baselines: [...]}
json tensor_report_json(const ::tensorslm::v1::CompressedTensor& t);
/// {format_version, generator, created_unix (only when set: older artifacts), source_sha256, method, params, tensors: [tensor_report_json],
///  passthrough: {count, bytes, names}, has_config, has_tokenizer, config_bytes, tokenizer_bytes, total,
///  quality (when present)}
json artifact_report_json(const ::tensorslm::v1::Artifact& a);
/// {ppl_dense, ppl_compressed, ppl_delta, kl_mean, top1_agreement, nll_delta_mean, tokens, sequences,
///  source, alternatives: [{method, stored_bytes, ratio_f32, kl_mean, top1_agreement, ppl}], verdict?, warning?}
json quality_to_json(const ::tensorslm::v1::ModelQuality& q);
/// The same as lines of text: figures with their sample size, the reference table, warning, verdict.
std::string quality_text(const ::tensorslm::v1::ModelQuality& q);

}  // namespace tsm
