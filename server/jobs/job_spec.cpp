#include "jobs/job_spec.h"

#include "codec/method_table.h"
#include "common/error.h"

namespace tsm::server {

using nlohmann::json;

bool is_safe_name(const std::string& s) {
  if (s.empty() || s.size() > 128 || s == "." || s == "..") return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

JobSpec parse_job_spec(const json& b) {
  if (!b.is_object()) throw ParamError("body", "must be a JSON object");
  static const char* known[] = {"upload", "tensors", "method", "params", "priority", "publish", "quality_gate",
                                "whole_model"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) ==
        std::end(known))
      throw ParamError(it.key(), "unknown field (known: upload, tensors, method, params, priority, publish, "
                                 "quality_gate, whole_model)");
  JobSpec s;
  if (!b.contains("upload") || !b["upload"].is_string()) throw ParamError("upload", "required: an upload id (string)");
  s.upload = b["upload"].get<std::string>();
  if (!b.contains("method") || !b["method"].is_string()) throw ParamError("method", "required: a method name (string)");
  s.method = b["method"].get<std::string>();
  if (!try_find_codec(s.method)) {
    std::string names;
    for (auto* c : all_codecs()) names += (names.empty() ? "" : ", ") + std::string(c->name());
    throw ParamError("method", "unknown method '" + s.method + "' (known: " + names + ")");
  }
  if (b.contains("tensors")) {
    const auto& t = b["tensors"];
    if (t.is_string()) s.tensors = {t.get<std::string>()};
    else if (t.is_array() && std::all_of(t.begin(), t.end(), [](const json& x) { return x.is_string(); }))
      s.tensors = t.get<std::vector<std::string>>();
    else throw ParamError("tensors", "must be a string or an array of strings (names or regexes)");
  }
  if (b.contains("params")) {
    if (!b["params"].is_object()) throw ParamError("params", "must be a JSON object");
    s.params = b["params"];
  }
  if (b.contains("priority")) {
    if (!b["priority"].is_number_integer()) throw ParamError("priority", "must be an integer");
    s.priority = b["priority"].get<int>();
    if (s.priority < -100 || s.priority > 100) throw ParamError("priority", "must lie in -100..100");
  }
  if (b.contains("publish")) {
    const auto& p = b["publish"];
    if (!p.is_object()) throw ParamError("publish", "must be an object {model, tag}");
    if (!p.contains("model") || !p["model"].is_string() || !is_safe_name(p["model"].get<std::string>()))
      throw ParamError("publish.model", "required: 1-128 characters of [A-Za-z0-9._-]");
    s.publish_model = p["model"].get<std::string>();
    s.publish_tag = p.value("tag", std::string());
    if (s.publish_tag.empty()) throw ParamError("publish.tag", "required: a version tag such as v1");
    if (!is_safe_name(s.publish_tag)) throw ParamError("publish.tag", "1-128 characters of [A-Za-z0-9._-]");
  }
  if (b.contains("quality_gate")) {
    const auto& g = b["quality_gate"];
    if (!g.is_object()) throw ParamError("quality_gate", "must be an object {max_rel_error?, max_kl?}");
    for (auto it = g.begin(); it != g.end(); ++it) {
      if (it.key() != "max_rel_error" && it.key() != "max_kl")
        throw ParamError("quality_gate." + it.key(), "unknown gate (known: max_rel_error, max_kl)");
      if (!it.value().is_number() || it.value().get<double>() < 0)
        throw ParamError("quality_gate." + it.key(), "must be a non-negative number");
    }
    if (g.contains("max_rel_error")) s.max_rel_error = g["max_rel_error"].get<double>();
    if (g.contains("max_kl")) s.max_kl = g["max_kl"].get<double>();
  }
  if (b.contains("whole_model")) {
    if (!b["whole_model"].is_boolean()) throw ParamError("whole_model", "must be true or false");
    s.whole_model = b["whole_model"].get<bool>();
  }
  return s;
}

json JobSpec::to_json() const {
  json j = {{"upload", upload}, {"method", method}, {"tensors", tensors}, {"params", params}, {"priority", priority}};
  if (!publish_model.empty()) j["publish"] = {{"model", publish_model}, {"tag", publish_tag}};
  json g = json::object();
  if (max_rel_error) g["max_rel_error"] = *max_rel_error;
  if (max_kl) g["max_kl"] = *max_kl;
  if (!g.empty()) j["quality_gate"] = g;
  if (whole_model) j["whole_model"] = true;
  return j;
}

}  // namespace tsm::server
