#include "spec/job_spec.h"

#include "methods/method_table.h"
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
                                "whole_model", "calibrate"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) ==
        std::end(known))
      throw ParamError(it.key(), "unknown field (known: upload, tensors, method, params, priority, publish, "
                                 "quality_gate, whole_model, calibrate)");
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
  if (b.contains("calibrate")) {
    const auto& c = b["calibrate"];
    if (!c.is_object()) throw ParamError("calibrate", "must be an object {sequences?, adam_steps?, whitening?}");
    if (!s.whole_model) throw ParamError("calibrate", "needs a whole-model job (whole_model: true)");
    if (const Codec* codec = try_find_codec(s.method); codec && !codec->calibrates())
      throw ParamError("calibrate", "calibration-aware compression is implemented for " + calibrating_methods() +
                                        " only, not " + s.method);
    CalibrationSpec cal;
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string f = "calibrate." + it.key();
      if (it.key() == "sequences" || it.key() == "adam_steps") {
        if (!it.value().is_number_integer()) throw ParamError(f, "must be an integer");
        const int64_t v = it.value().get<int64_t>(), lo = it.key() == "sequences" ? 1 : 0, hi = it.key() == "sequences" ? 256 : 10000;
        if (v < lo || v > hi) throw ParamError(f, "must lie in " + std::to_string(lo) + ".." + std::to_string(hi));
        (it.key() == "sequences" ? cal.sequences : cal.adam_steps) = static_cast<int>(v);
      } else if (it.key() == "whitening") {
        if (!it.value().is_string() || (it.value() != "cholesky" && it.value() != "diagonal"))
          throw ParamError(f, "must be cholesky or diagonal");
        cal.whitening = it.value().get<std::string>();
      } else {
        throw ParamError(f, "unknown field (known: sequences, adam_steps, whitening)");
      }
    }
    s.calibrate = cal;
  }
  return s;
}

json JobSpec::quality_gate() const {
  json g = json::object();
  if (max_rel_error) g["max_rel_error"] = *max_rel_error;
  if (max_kl) g["max_kl"] = *max_kl;
  return g;
}

json JobSpec::to_json() const {
  json j = {{"upload", upload}, {"method", method}, {"tensors", tensors}, {"params", params}, {"priority", priority}};
  if (!publish_model.empty()) j["publish"] = {{"model", publish_model}, {"tag", publish_tag}};
  if (json g = quality_gate(); !g.empty()) j["quality_gate"] = g;
  if (whole_model) j["whole_model"] = true;
  if (calibrate)
    j["calibrate"] = {{"sequences", calibrate->sequences}, {"adam_steps", calibrate->adam_steps}, {"whitening", calibrate->whitening}};
  return j;
}

v1::JobSpec JobSpec::to_proto() const {
  v1::JobSpec p;
  p.set_upload(upload);
  for (const auto& t : tensors) p.add_tensors(t);
  p.set_method(method);
  p.set_params_json(params.dump());
  if (!publish_model.empty()) {
    p.mutable_publish()->set_model(publish_model);
    p.mutable_publish()->set_tag(publish_tag);
  }
  p.set_priority(priority);
  if (json g = quality_gate(); !g.empty()) p.set_quality_gate_json(g.dump());
  p.set_whole_model(whole_model);
  if (calibrate) {
    p.mutable_calibrate()->set_sequences(static_cast<uint32_t>(calibrate->sequences));
    p.mutable_calibrate()->set_adam_steps(static_cast<uint32_t>(calibrate->adam_steps));
    p.mutable_calibrate()->set_whitening(calibrate->whitening);
  }
  return p;
}

JobSpec JobSpec::from_proto(const v1::JobSpec& p) {
  auto parse = [](const std::string& field, const std::string& text) {
    try {
      return text.empty() ? json::object() : json::parse(text);
    } catch (const json::parse_error& e) {
      throw FormatError("JobSpec." + field + " is not JSON: " + e.what(), static_cast<int64_t>(e.byte));
    }
  };
  JobSpec s;
  s.upload = p.upload();
  s.tensors.assign(p.tensors().begin(), p.tensors().end());
  s.method = p.method();
  s.params = parse("params_json", p.params_json());
  if (p.has_publish()) s.publish_model = p.publish().model(), s.publish_tag = p.publish().tag();
  s.priority = p.priority();
  const json g = parse("quality_gate_json", p.quality_gate_json());
  if (g.contains("max_rel_error")) s.max_rel_error = g["max_rel_error"].get<double>();
  if (g.contains("max_kl")) s.max_kl = g["max_kl"].get<double>();
  s.whole_model = p.whole_model();
  if (p.has_calibrate())
    s.calibrate = CalibrationSpec{static_cast<int>(p.calibrate().sequences()), static_cast<int>(p.calibrate().adam_steps()),
                                  p.calibrate().whitening()};
  return s;
}

}  // namespace tsm::server

namespace tsm::server {

JobSpec stored_job_spec(const std::string& spec_pb) {
  v1::JobSpec p;
  if (!p.ParseFromString(spec_pb)) throw FormatError("stored job spec is not a tensorslm.v1.JobSpec");
  return JobSpec::from_proto(p);
}

}  // namespace tsm::server
