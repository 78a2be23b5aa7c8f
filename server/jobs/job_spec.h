// A compression job request, parsed and checked field by field before it is queued:
// {upload, tensors?, method, params?, priority?, publish?: {model, tag}, quality_gate?: {max_rel_error?, max_kl?},
//  whole_model?}. Invariant: a JobSpec that parsed has a known method and well-formed optional parts;
// parameter values are checked against each tensor's shape by the codec (Codec::resolve).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tsm::server {

struct JobSpec {
  std::string upload, method;
  std::vector<std::string> tensors;
  nlohmann::json params = nlohmann::json::object();
  int priority = 0;                       ///< -100..100, higher runs first
  std::string publish_model, publish_tag; ///< empty = do not publish
  std::optional<double> max_rel_error, max_kl;
  bool whole_model = false;               ///< a model upload compressed into a whole-model artifact

  nlohmann::json to_json() const;
};

/// Throws tsm::ParamError naming the field (e.g. "publish.model") and why.
JobSpec parse_job_spec(const nlohmann::json& body);
/// Names that become URL segments or labels: [A-Za-z0-9._-], 1..128 chars, not "." or "..".
bool is_safe_name(const std::string& s);

}  // namespace tsm::server
