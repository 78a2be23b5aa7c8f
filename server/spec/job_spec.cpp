// JobSpec: request validation, the protobuf JSON mapping both ways, job state names (see job_spec.h).
#include "spec/job_spec.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "common/error.h"
#include "methods/method_table.h"
#include "pipeline/planner.h"

namespace tsm::server {

using nlohmann::json;
namespace pbu = google::protobuf::util;

namespace {

constexpr size_t kMaxEvalSequences = 4096;      ///< user evaluation sequences per job
constexpr size_t kMaxEvalTokens = size_t(1) << 20;  ///< token ids in them, in all

void check_known(const json& obj, std::initializer_list<const char*> known, const std::string& prefix) {
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; })) {
      std::string names;
      for (const char* k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      throw ParamError(prefix + it.key(), "unknown field (known: " + names + ")");
    }
}

void check_method(const json& m, const std::string& field) {
  if (!m.is_string()) throw ParamError(field, "required: a method name (string)");
  try {
    (void)find_method(m.get<std::string>());
  } catch (const Error& e) {  // "unknown method 'x' (known: ...)"
    throw ParamError(field, e.what());
  }
}

/// The "plan" member of a body: an object with exactly one target, known keys, candidates that
/// parse; and no method, params or entries beside it (the planner chooses them).
void check_plan(const json& b) {
  for (const char* k : {"method", "params", "entries"})
    if (b.contains(k))
      throw ParamError(k, std::string("not with plan: a plan job chooses every tensor's method and params itself (list the candidates in "
                                      "plan.methods)"));
  if (b.contains("whole_model") && b["whole_model"] != json(true))
    throw ParamError("whole_model", "a plan job is a whole-model job: leave whole_model out or set it true");
  const auto& p = b["plan"];
  if (!p.is_object())
    throw ParamError("plan", "must be an object {target_ratio | target_bytes | max_kl, methods?, calibrate?, sensitivity_sequences?}");
  check_known(p, {"target_ratio", "target_bytes", "max_kl", "methods", "calibrate", "sensitivity_sequences"}, "plan.");
  const int targets = int(p.contains("target_ratio")) + int(p.contains("target_bytes")) + int(p.contains("max_kl"));
  if (targets != 1)
    throw ParamError("plan", std::string("give exactly one target: target_ratio, target_bytes or max_kl") +
                                 (targets ? " (got " + std::to_string(targets) + ")" : ""));
  auto finite_number = [](const json& v) { return v.is_number() && std::isfinite(v.get<double>()); };
  if (p.contains("target_ratio") && !(finite_number(p["target_ratio"]) && p["target_ratio"].get<double>() > 1))
    throw ParamError("plan.target_ratio", "must be a number > 1 (dense f32 bytes of every tensor over the stored bytes)");
  if (p.contains("target_bytes")) {
    const auto& v = p["target_bytes"];
    if (!v.is_number_integer() || (v.is_number_unsigned() ? v.get<uint64_t>() < 1 : v.get<int64_t>() < 1))
      throw ParamError("plan.target_bytes", "must be an integer >= 1 (whole-model stored bytes, config and tokenizer apart)");
  }
  if (p.contains("max_kl") && !(finite_number(p["max_kl"]) && p["max_kl"].get<double>() > 0))
    throw ParamError("plan.max_kl", "must be a number > 0 (KL(dense || plan), nats per token)");
  if (p.contains("methods")) {
    if (!p["methods"].is_string() || p["methods"].get<std::string>().size() > 65536)
      throw ParamError("plan.methods", "must be a string of at most 64 KiB: candidates, comma-separated, each METHOD or METHOD{json params}");
    if (!p["methods"].get<std::string>().empty()) (void)parse_plan_candidates(p["methods"].get<std::string>(), "plan.methods");
  }
  if (p.contains("calibrate") && !p["calibrate"].is_boolean()) throw ParamError("plan.calibrate", "must be true or false");
  if (p.contains("sensitivity_sequences")) {
    const auto& v = p["sensitivity_sequences"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 256)
      throw ParamError("plan.sensitivity_sequences", "must be an integer in 1..256");
  }
}

/// The body with everything checked that the JSON mapping would report less precisely, and
/// `tensors` as a list (a single string is accepted).
json checked_body(const json& b) {
  if (!b.is_object()) throw ParamError("body", "must be a JSON object");
  check_known(b, {"upload", "tensors", "method", "params", "priority", "publish", "quality_gate", "whole_model", "calibrate",
                  "entries", "evaluation", "token_weights", "plan"},
              "");
  json out = b;
  if (!b.contains("upload") || !b["upload"].is_string()) throw ParamError("upload", "required: an upload id (string)");
  const bool has_entries = b.contains("entries");
  const bool has_plan = b.contains("plan");
  if (has_plan) {
    check_plan(b);
    out["whole_model"] = true;  // implied: a plan job plans a whole model
  }
  if (!has_plan && (b.contains("method") || !has_entries)) check_method(b.contains("method") ? b["method"] : json(), "method");
  if (b.contains("tensors")) {
    const auto& t = b["tensors"];
    if (t.is_string()) out["tensors"] = json::array({t});
    else if (!t.is_array() || !std::all_of(t.begin(), t.end(), [](const json& x) { return x.is_string(); }))
      throw ParamError("tensors", "must be a string or an array of strings (names or regexes)");
  }
  if (b.contains("params") && !b["params"].is_object()) throw ParamError("params", "must be a JSON object");
  if (b.contains("priority")) {
    if (!b["priority"].is_number_integer()) throw ParamError("priority", "must be an integer");
    const int64_t p = b["priority"].get<int64_t>();
    if (p < -100 || p > 100) throw ParamError("priority", "must lie in -100..100");
  }
  if (b.contains("publish")) {
    const auto& p = b["publish"];
    if (!p.is_object()) throw ParamError("publish", "must be an object {model, tag}");
    check_known(p, {"model", "tag", "replace"}, "publish.");
    if (p.contains("replace") && !p["replace"].is_boolean()) throw ParamError("publish.replace", "must be true or false");
    if (!p.contains("model") || !p["model"].is_string() || !is_safe_name(p["model"].get<std::string>()))
      throw ParamError("publish.model", "required: 1-128 characters of [A-Za-z0-9._-]");
    if (!p.contains("tag") || !p["tag"].is_string() || p["tag"].get<std::string>().empty())
      throw ParamError("publish.tag", "required: a version tag such as v1");
    if (!is_safe_name(p["tag"].get<std::string>())) throw ParamError("publish.tag", "1-128 characters of [A-Za-z0-9._-]");
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
  }
  const bool whole_model = has_plan || (b.contains("whole_model") && b["whole_model"].is_boolean() && b["whole_model"].get<bool>());
  if (b.contains("whole_model") && !b["whole_model"].is_boolean()) throw ParamError("whole_model", "must be true or false");
  if (b.contains("calibrate")) {
    const auto& c = b["calibrate"];
    if (!c.is_object()) throw ParamError("calibrate", "must be an object {sequences?, adam_steps?, whitening?}");
    if (!whole_model) throw ParamError("calibrate", "needs a whole-model job (whole_model: true)");
    if (b.contains("method"))
      if (const Codec* codec = try_find_codec(b["method"].get<std::string>()); codec && !codec->calibrates())
        throw ParamError("calibrate", "calibration-aware compression is implemented for " + calibrating_methods() +
                                          " only, not " + b["method"].get<std::string>());
    // A plan job's calibration is the layer inputs GPTQ and the sensitivity sequences read: its count only.
    json cal = has_plan ? json{{"sequences", 64}} : json{{"sequences", 64}, {"adam_steps", 50}, {"whitening", "cholesky"}};
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string f = "calibrate." + it.key();
      if (has_plan && it.key() != "sequences")
        throw ParamError(f, "not with plan: a plan job takes calibrate.sequences only (the calibration count)");
      if (it.key() == "sequences" || it.key() == "adam_steps") {
        if (!it.value().is_number_integer()) throw ParamError(f, "must be an integer");
        const int64_t v = it.value().get<int64_t>(), lo = it.key() == "sequences" ? 1 : 0, hi = it.key() == "sequences" ? 256 : 10000;
        if (v < lo || v > hi) throw ParamError(f, "must lie in " + std::to_string(lo) + ".." + std::to_string(hi));
      } else if (it.key() == "whitening") {
        if (!it.value().is_string() || (it.value() != "cholesky" && it.value() != "diagonal"))
          throw ParamError(f, "must be cholesky or diagonal");
      } else {
        throw ParamError(f, "unknown field (known: sequences, adam_steps, whitening)");
      }
      cal[it.key()] = it.value();
    }
    out["calibrate"] = cal;  // defaults filled: what the worker will use
  }
  if (b.contains("token_weights") && !b["token_weights"].is_boolean()) throw ParamError("token_weights", "must be true or false");
  if (has_plan && b.contains("token_weights"))
    throw ParamError("token_weights", "not with plan: the planner weights embedding rows by token frequency whenever a candidate has an embedding operator");
  if (b.contains("evaluation")) {
    const auto& e = b["evaluation"];
    if (!e.is_object()) throw ParamError("evaluation", "must be an object {tokens?, length?, seed?, compare?, sequences?}");
    if (!whole_model) throw ParamError("evaluation", "needs a whole-model job (whole_model: true)");
    check_known(e, {"tokens", "length", "seed", "compare", "sequences"}, "evaluation.");
    auto int_in = [&](const char* k, int64_t lo, int64_t hi) {
      if (!e.contains(k)) return;
      if (!e[k].is_number_integer() || e[k].get<int64_t>() < lo || e[k].get<int64_t>() > hi)
        throw ParamError(std::string("evaluation.") + k, "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    };
    int_in("tokens", 1, int64_t(1) << 20);
    int_in("length", 2, 1 << 16);
    int_in("seed", 0, UINT32_MAX);
    if (e.contains("compare") && !e["compare"].is_boolean()) throw ParamError("evaluation.compare", "must be true or false");
    if (e.contains("sequences")) {
      // [[ids], ...] on the wire; the JSON mapping of repeated TokenSequence wants [{ids: [...]}, ...].
      const auto& q = e["sequences"];
      if (!q.is_array() || q.empty() || q.size() > kMaxEvalSequences)
        throw ParamError("evaluation.sequences", "must be 1.." + std::to_string(kMaxEvalSequences) + " arrays of token ids");
      json mapped = json::array();
      size_t total = 0;
      for (size_t i = 0; i < q.size(); ++i) {
        const std::string f = "evaluation.sequences[" + std::to_string(i) + "]";
        if (!q[i].is_array() || q[i].size() < 2) throw ParamError(f, "must be an array of at least 2 token ids");
        for (const auto& id : q[i])
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) throw ParamError(f, "token ids are integers >= 0");
        total += q[i].size();
        mapped.push_back({{"ids", q[i]}});
      }
      if (total > kMaxEvalTokens) throw ParamError("evaluation.sequences", "at most " + std::to_string(kMaxEvalTokens) + " token ids in all");
      out["evaluation"]["sequences"] = mapped;
    }
  }
  if (has_entries) {
    const auto& e = b["entries"];
    if (!e.is_array() || e.empty()) throw ParamError("entries", "must be a non-empty array of {tensor, method, params?}");
    for (size_t i = 0; i < e.size(); ++i) {
      const std::string f = "entries[" + std::to_string(i) + "]";
      if (!e[i].is_object()) throw ParamError(f, "must be an object {tensor, method, params?}");
      check_known(e[i], {"tensor", "method", "params"}, f + ".");
      if (!e[i].contains("tensor") || !e[i]["tensor"].is_string() || e[i]["tensor"].get<std::string>().empty())
        throw ParamError(f + ".tensor", "required: a tensor name or pattern");
      check_method(e[i].contains("method") ? e[i]["method"] : json(), f + ".method");
      if (e[i].contains("params") && !e[i]["params"].is_object()) throw ParamError(f + ".params", "must be a JSON object");
    }
  }
  return out;
}

}  // namespace

bool is_safe_name(const std::string& s) {
  if (s.empty() || s.size() > 128 || s == "." || s == "..") return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

v1::JobSpec parse_job_spec(const json& body) {
  const json b = checked_body(body);
  v1::JobSpec s;
  pbu::JsonParseOptions o;  // unknown fields are errors (none remain after checked_body)
  const auto st = pbu::JsonStringToMessage(b.dump(), &s, o);
  if (!st.ok()) throw ParamError("body", "does not map onto a JobSpec: " + std::string(st.message()));
  if (!s.has_params()) s.mutable_params();  // {} rather than absent, as clients read it
  return s;
}

json job_spec_json(const v1::JobSpec& s) {
  std::string text;
  pbu::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  if (!pbu::MessageToJsonString(s, &text, o).ok()) throw Error("job spec cannot be printed as JSON");
  json j = json::parse(text);
  if (!j.contains("params")) j["params"] = json::object();
  if (j.contains("plan") && j["plan"].contains("target_bytes") && j["plan"]["target_bytes"].is_string())  // uint64: a string in proto3 JSON
    j["plan"]["target_bytes"] = s.plan().target_bytes();
  if (j.contains("evaluation") && j["evaluation"].contains("sequences")) {  // back to [[ids], ...]
    json flat = json::array();
    for (const auto& q : j["evaluation"]["sequences"]) flat.push_back(q.value("ids", json::array()));
    j["evaluation"]["sequences"] = flat;
  }
  return j;
}

v1::JobSpec stored_job_spec(const std::string& spec_pb) {
  v1::JobSpec p;
  if (!p.ParseFromString(spec_pb)) throw FormatError("stored job spec is not a tensorslm.v1.JobSpec");
  return p;
}

json struct_json(const google::protobuf::Struct& s) {
  std::string text;
  if (!pbu::MessageToJsonString(s, &text).ok()) throw Error("parameters cannot be printed as JSON");
  return json::parse(text);
}

google::protobuf::Struct struct_from_json(const json& j, const std::string& field) {
  google::protobuf::Struct s;
  if (j.is_null()) return s;
  if (!j.is_object()) throw ParamError(field, "must be a JSON object");
  const auto st = pbu::JsonStringToMessage(j.dump(), &s);
  if (!st.ok()) throw ParamError(field, std::string(st.message()));
  return s;
}

const std::string& state_name(v1::JobState s) {
  static const std::array<std::string, 6> names = {"unspecified", "queued", "running", "succeeded", "failed", "canceled"};
  const int i = static_cast<int>(s);
  return names[i >= 0 && i < 6 ? i : 0];
}

std::optional<v1::JobState> parse_state(std::string_view name) {
  for (v1::JobState s : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELED})
    if (state_name(s) == name) return s;
  return std::nullopt;
}

bool is_terminal(v1::JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELED; }

}  // namespace tsm::server
