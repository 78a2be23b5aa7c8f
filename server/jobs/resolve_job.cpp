// Resolving a job once, before it is queued (see resolve_job.h).
#include "jobs/resolve_job.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/tensor_pattern.h"
#include "jobs/job_input.h"
#include "methods/method_table.h"
#include "spec/job_spec.h"

namespace tsm::server {

namespace v1 = ::tensorslm::v1;
using nlohmann::json;

namespace {

struct Rule {
  TensorPattern pattern;
  std::string method;
  json params;
  std::string field;  ///< where its params come from: "params" or "entries[i].params"
};

std::vector<Rule> entry_rules(const v1::JobSpec& spec) {
  std::vector<Rule> out;
  for (int i = 0; i < spec.entries_size(); ++i) {
    const auto& e = spec.entries(i);
    const std::string f = "entries[" + std::to_string(i) + "]";
    out.push_back({TensorPattern(e.tensor(), TensorPattern::Anchor::kFull, f + ".tensor"), e.method(), struct_json(e.params()),
                   f + ".params"});
  }
  return out;
}

/// A codec's ParamError as the job's field ("params.ranks"), `where` appended to the message.
[[noreturn]] void rethrow_param(const ParamError& e, const std::string& prefix, const std::string& where) {
  const std::string& f = e.field();
  const bool job_level = f == "tensors" || f.rfind("calibrate", 0) == 0 || f.rfind("evaluation", 0) == 0;
  const std::string field = job_level ? f : prefix + "." + f;
  throw ParamError(field, std::string(e.what()) + where);
}

v1::ResolvedJob resolve_tensors(const v1::JobSpec& spec, const UploadRecord& u) {
  auto rules = entry_rules(spec);
  std::vector<TensorInfo> which;
  if (spec.tensors_size() > 0 || rules.empty()) {
    which = select_tensors(u, std::vector<std::string>(spec.tensors().begin(), spec.tensors().end()));
  } else {
    for (const auto& t : upload_tensors(u))
      for (const auto& r : rules)
        if (r.pattern.matches(t.name)) {
          which.push_back(t);
          break;
        }
    if (which.empty()) throw ParamError("entries", "no tensor of upload " + u.id + " matches any entry");
  }
  v1::ResolvedJob out;
  for (const auto& t : which) {
    if (t.dtype != "f32" && t.dtype != "f16" && t.dtype != "bf16" && t.dtype != "f64")
      throw ParamError("tensors", "tensor '" + t.name + "' has dtype " + t.dtype + "; only floating tensors are compressed");
    const Rule* hit = nullptr;
    for (const auto& r : rules)
      if (r.pattern.matches(t.name)) {
        hit = &r;
        break;
      }
    const std::string method = hit ? hit->method : spec.method();
    if (method.empty()) throw ParamError("method", "tensor '" + t.name + "' matches no entry and the job names no method");
    const json params = hit ? hit->params : struct_json(spec.params());
    json r;
    try {
      r = find_codec(method).resolve(params, t.rows(), t.cols());
    } catch (const ParamError& e) {
      rethrow_param(e, hit ? hit->field : "params",
                    " (tensor '" + t.name + "', " + std::to_string(t.rows()) + " x " + std::to_string(t.cols()) + ")");
    }
    auto* rt = out.add_tensors();
    rt->set_name(t.name);
    rt->set_method(method);
    *rt->mutable_params() = struct_from_json(r);
  }
  return out;
}

v1::ResolvedJob resolve_whole_model(const v1::JobSpec& spec, const UploadRecord& u, const std::string& model_dir) {
  // The tensor listing recorded at upload and config.json: no shard is opened.
  std::vector<TensorMeta> tensors;
  for (const auto& t : upload_tensors(u)) tensors.push_back({t.name, parse_dtype(t.dtype), t.shape});
  json config = json::object();
  if (std::filesystem::exists(model_dir + "/config.json")) {
    try {
      config = json::parse(read_file(model_dir + "/config.json", 1 << 20));
    } catch (const json::exception&) {  // as for a model without one: no architecture-dependent checks
    }
  }
  std::vector<MethodRule> rules;
  for (const auto& e : spec.entries()) rules.push_back({e.tensor(), true, e.method(), struct_json(e.params())});
  if (!spec.method().empty())
    rules.push_back({whole_model_regex(u, std::vector<std::string>(spec.tensors().begin(), spec.tensors().end())), false,
                     spec.method(), struct_json(spec.params())});
  ModelPlan plan;
  try {
    plan = plan_model_artifact(tensors, config, rules, model_artifact_options(spec));
  } catch (const ParamError& e) {
    rethrow_param(e, spec.entries_size() > 0 ? "entries" : "params", "");
  }
  v1::ResolvedJob out;
  for (const auto& t : plan.tensors) {
    auto* rt = out.add_tensors();
    rt->set_name(t.name);
    rt->set_method(t.method);
    *rt->mutable_params() = struct_from_json(t.params);
  }
  return out;
}

/// The tensor regex of a plan job: its `tensors` joined with '|' (searched in names, as for whole-model
/// jobs); empty = every 2-D float tensor (not the token embedding alone, as for a method).
std::string plan_tensor_regex(const v1::JobSpec& spec) {
  std::string re;
  for (const auto& t : spec.tensors()) re += (re.empty() ? "" : "|") + t;
  return re;
}

/// As the planner offers a candidate with calibration: GPTQ for codecs whose calibration param has it.
json with_gptq(const Codec& c, json params) {
  if (!c.calibrates() || params.contains("calibration")) return params;
  const json schema = c.param_schema();
  if (schema.contains("properties") && schema["properties"].contains("calibration") &&
      schema["properties"]["calibration"].contains("enum"))
    for (const auto& v : schema["properties"]["calibration"]["enum"])
      if (v == "gptq") params["calibration"] = "gptq";
  return params;
}

/// What can be checked of a plan job before it runs: a model the runtime runs, planned tensors that
/// exist, a byte budget the kept tensors do not fill, candidates that fit some planned tensor, and
/// the user's sequences. The rest (the candidates' sizes and damages) the planner measures.
void check_plan_job(const v1::JobSpec& spec, const UploadRecord& u, const std::string& model_dir) {
  if (u.format != "tar")
    throw ParamError("plan", "a plan job needs an HF model directory upload (a tar); upload " + u.id + " is " + u.format);
  if (!std::filesystem::exists(model_dir + "/config.json"))
    throw ParamError("plan", "the planner runs the model to measure KL, and upload " + u.id + " has no config.json");
  json config;
  ModelConfig cfg;
  try {
    config = json::parse(read_file(model_dir + "/config.json", 1 << 20));
    cfg = parse_model_config(config);
  } catch (const json::exception& e) {
    throw ParamError("plan", "the planner runs the model to measure KL, and config.json of upload " + u.id + " is not JSON: " + e.what());
  } catch (const Error& e) {
    throw ParamError("plan", "the planner runs the model to measure KL, and the runtime cannot run upload " + u.id + ": " + e.what());
  }
  const PlannerOptions opt = planner_options(spec);

  // The planned tensors (2-D float, matching `tensors`) and the bytes the others keep.
  std::vector<TensorMeta> planned;
  uint64_t dense_f32 = 0, fixed = 0;
  std::optional<TensorPattern> pick;
  if (!opt.tensors.empty()) pick.emplace(opt.tensors, TensorPattern::Anchor::kSearch, "tensors");
  for (const auto& t : upload_tensors(u)) {
    const DType d = parse_dtype(t.dtype);
    const uint64_t n = uint64_t(shape_numel(t.shape));
    dense_f32 += 4 * n;
    if (t.shape.size() == 2 && is_float(d) && (!pick || pick->matches(t.name))) planned.push_back({t.name, d, t.shape});
    else fixed += n * dtype_size(d) + 8ull * t.shape.size();
  }
  if (planned.empty())
    throw ParamError("tensors", "no 2-D float tensor of upload " + u.id + " matches '" + opt.tensors.substr(0, 200) + "'");
  if (opt.target.kind != PlanTarget::Kind::kMaxKl) {
    const uint64_t budget = opt.target.kind == PlanTarget::Kind::kBytes ? uint64_t(opt.target.value)
                                                                        : uint64_t(std::floor(double(dense_f32) / opt.target.value));
    if (budget <= fixed)
      throw ParamError(opt.target.kind == PlanTarget::Kind::kBytes ? "plan.target_bytes" : "plan.target_ratio",
                       target_text(opt.target) + " leaves no bytes for the planned tensors: the tensors kept as stored take " +
                           std::to_string(fixed) + " of " + std::to_string(budget) + " bytes");
  }

  // Every candidate must fit at least one planned tensor, with or without calibration (as the planner tries it).
  for (const auto& c : opt.candidates) {
    const Codec& codec = find_codec(c.method);
    std::string why;
    bool fits = false;
    for (size_t t = 0; t < planned.size() && !fits; ++t) {
      const std::vector<TensorMeta> one{planned[t]};
      for (const bool cal : {false, true}) {
        if (cal && !(opt.calibrate && codec.calibrates())) continue;
        ModelArtifactOptions mo;
        mo.eval = false;
        mo.calibrate = cal;
        const MethodRule rule{TensorPattern::quote(planned[t].name), true, c.method, cal ? with_gptq(codec, c.params) : c.params};
        try {
          (void)plan_model_artifact(one, config, std::span<const MethodRule>(&rule, 1), mo);
          fits = true;
          break;
        } catch (const ParamError& e) {
          if (why.empty()) {  // without its "parameter 'x': " (the field is plan.methods here)
            why = e.what();
            const std::string head = "parameter '" + e.field() + "': ";
            if (why.rfind(head, 0) == 0) why.erase(0, head.size());
          }
        }
      }
    }
    if (!fits) throw ParamError("plan.methods", "'" + c.label.substr(0, 200) + "' fits none of the planned tensors (" + why + ")");
  }

  // The user's sequences, and sampled sets that must not overlap (the planner's three sets).
  check_given_sequences(opt.verify_set, cfg.vocab, cfg.max_positions, "evaluation.sequences");
  if (opt.verify_set.given.empty()) {
    require_disjoint(opt.calib_set, {}, opt.verify_set, {}, cfg.max_positions);
    require_disjoint(opt.repair_set, {}, opt.verify_set, {}, cfg.max_positions);
  }
}

}  // namespace

v1::ResolvedJob resolve_job(const v1::JobSpec& spec, const UploadRecord& upload, const std::string& model_dir) {
  if (spec.has_plan()) {  // no tensors: the planner decides them when it runs
    check_plan_job(spec, upload, model_dir);
    return {};
  }
  if (spec.whole_model() && upload.format != "tar")
    throw ParamError("whole_model", "whole_model needs an HF model directory upload (a tar); upload " + upload.id + " is " +
                                        upload.format);
  if (spec.has_quality_gate() && spec.quality_gate().has_max_kl() && !spec.whole_model())
    throw ParamError("quality_gate.max_kl", "quality_gate.max_kl needs a whole-model job (KL is measured by running the model)");
  return spec.whole_model() ? resolve_whole_model(spec, upload, model_dir) : resolve_tensors(spec, upload);
}

std::string published_tag_clash(MetadataStore& store, const v1::JobSpec& spec) {
  if (!spec.has_publish() || spec.publish().model().empty() || spec.publish().replace()) return "";
  for (const auto& v : store.model_versions(spec.publish().model()))
    if (v.tag == spec.publish().tag())
      return "model '" + v.model + "' already has tag '" + v.tag + "' (published by job " + v.job_id + ")";
  return "";
}

ModelArtifactOptions model_artifact_options(const v1::JobSpec& spec) {
  ModelArtifactOptions o;
  if (spec.has_calibrate()) {
    o.calibrate = true;
    o.calib_set.sequences = static_cast<int>(spec.calibrate().sequences());
    o.adam_steps = static_cast<int>(spec.calibrate().adam_steps());
    if (!spec.calibrate().whitening().empty()) o.whitening = spec.calibrate().whitening();
  }
  if (spec.has_token_weights()) o.token_weights = spec.token_weights();
  if (spec.has_evaluation()) {
    const auto& e = spec.evaluation();
    if (e.tokens() > 0) o.eval_set.min_tokens = e.tokens();
    if (e.length() > 0) o.eval_set.length = static_cast<int>(e.length());
    if (e.has_seed()) o.eval_set.seed = e.seed();
    if (e.has_compare()) o.compare = e.compare();
    for (const auto& q : e.sequences()) o.eval_set.given.emplace_back(q.ids().begin(), q.ids().end());
    if (!o.eval_set.given.empty()) o.eval_set.given_source = "the job's evaluation sequences";
  }
  return o;
}

PlannerOptions planner_options(const v1::JobSpec& spec) {
  PlannerOptions o;
  const v1::Plan& p = spec.plan();
  if (p.has_target_ratio()) o.target = {PlanTarget::Kind::kRatio, p.target_ratio()};
  else if (p.has_target_bytes()) o.target = {PlanTarget::Kind::kBytes, double(p.target_bytes())};
  else if (p.has_max_kl()) o.target = {PlanTarget::Kind::kMaxKl, p.max_kl()};
  else throw ParamError("plan", "give exactly one target: target_ratio, target_bytes or max_kl");
  if (!p.methods().empty()) o.candidates = parse_plan_candidates(p.methods(), "plan.methods");
  o.tensors = plan_tensor_regex(spec);
  o.calibrate = !p.has_calibrate() || p.calibrate();
  if (p.has_sensitivity_sequences()) o.sensitivity_sequences = static_cast<int>(p.sensitivity_sequences());
  const ModelArtifactOptions m = model_artifact_options(spec);  // evaluation: the held-out verify set
  o.verify_set = m.eval_set;
  o.compare = m.compare;
  if (spec.has_calibrate() && spec.calibrate().sequences() > 0) o.calib_set.sequences = static_cast<int>(spec.calibrate().sequences());
  return o;
}

MemoryEstimate job_memory_estimate(const v1::JobSpec& spec, const UploadRecord& u, const v1::ResolvedJob& r,
                                   const std::string& model_dir) {
  std::vector<TensorMeta> tensors;
  for (const auto& t : upload_tensors(u)) tensors.push_back({t.name, parse_dtype(t.dtype), t.shape});
  if (spec.has_plan() || spec.whole_model()) {
    json config = json::object();
    try {
      if (std::filesystem::exists(model_dir + "/config.json")) config = json::parse(read_file(model_dir + "/config.json", 1 << 20));
    } catch (const std::exception&) {  // resolve_job has judged config.json already
    }
    if (spec.has_plan()) return estimate_plan_job(tensors, parse_model_config(config), planner_options(spec));
    return estimate_model_job(tensors, plan_from_resolved(r, config), model_artifact_options(spec));
  }
  // Tensor jobs compress one tensor at a time and keep each result (at most its f32 size).
  MemoryEstimate worst;
  uint64_t results = 0;
  for (const auto& rt : r.tensors())
    for (const auto& t : tensors)
      if (t.name == rt.name() && t.shape.size() == 2) {
        MemoryEstimate e = estimate_matrix_job(find_codec(rt.method()), t.shape[0], t.shape[1], struct_json(rt.params()), true);
        results += 4 * uint64_t(t.shape[0]) * uint64_t(t.shape[1]);
        if (e.bytes > worst.bytes) worst = std::move(e);
      }
  worst.add("results", results);
  return worst;
}

ModelPlan plan_from_resolved(const v1::ResolvedJob& r, const json& config) {
  ModelPlan plan;
  try {
    plan.cfg = parse_model_config(config);
  } catch (const Error&) {
  }
  for (const auto& t : r.tensors()) plan.tensors.push_back({t.name(), t.method(), struct_json(t.params())});
  return plan;
}

json artifact_job_json(const v1::JobSpec& spec) {
  json job = {{"tensors", std::vector<std::string>(spec.tensors().begin(), spec.tensors().end())},
              {"params", struct_json(spec.params())}};
  if (spec.entries_size() > 0) {
    json e = json::array();
    for (const auto& x : spec.entries()) e.push_back({{"tensor", x.tensor()}, {"method", x.method()}, {"params", struct_json(x.params())}});
    job["entries"] = e;
  }
  return job;
}

}  // namespace tsm::server
