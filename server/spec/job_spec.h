// A compression job request, parsed and checked field by field before it is queued:
// {upload, tensors?, method, params?, priority?, publish?: {model, tag}, quality_gate?: {max_rel_error?, max_kl?},
//  whole_model?, calibrate?: {sequences?, adam_steps?, whitening?}}.
// Invariant: a JobSpec that parsed has a known method and well-formed optional parts; parameter
// values are checked against each tensor's shape by the codec (Codec::resolve). The store keeps it
// as a serialized tensorslm.v1.JobSpec (to_proto / from_proto round-trip exactly).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "job.pb.h"

namespace tsm::server {

namespace v1 = ::tensorslm::v1;

struct CalibrationSpec {
  int sequences = 8, adam_steps = 50;
  std::string whitening = "cholesky";
};

struct JobSpec {
  std::string upload, method;
  std::vector<std::string> tensors;
  nlohmann::json params = nlohmann::json::object();
  int priority = 0;                       ///< -100..100, higher runs first
  std::string publish_model, publish_tag; ///< empty = do not publish
  std::optional<double> max_rel_error, max_kl;
  bool whole_model = false;               ///< a model upload compressed into a whole-model artifact
  std::optional<CalibrationSpec> calibrate;  ///< whole-model saten jobs only

  nlohmann::json to_json() const;
  /// {max_rel_error?, max_kl?}; empty when the job has no gate.
  nlohmann::json quality_gate() const;
  v1::JobSpec to_proto() const;
  /// Throws tsm::FormatError when a stored field (params_json, quality_gate_json) is not valid JSON.
  static JobSpec from_proto(const v1::JobSpec& p);
};

/// The spec of a stored job (JobRecord::spec_pb). Throws tsm::FormatError when the bytes do not parse.
JobSpec stored_job_spec(const std::string& spec_pb);

/// Throws tsm::ParamError naming the field (e.g. "publish.model") and why.
JobSpec parse_job_spec(const nlohmann::json& body);
/// Names that become URL segments or labels: [A-Za-z0-9._-], 1..128 chars, not "." or "..".
bool is_safe_name(const std::string& s);

}  // namespace tsm::server
