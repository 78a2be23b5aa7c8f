// Resolving a job once, before it is queued (see resolve_job.h).
#include "jobs/resolve_job.h"

#include <filesystem>

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
    } catch (const json::parse_error&) {  // as for a model without one: no architecture-dependent checks
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

}  // namespace

v1::ResolvedJob resolve_job(const v1::JobSpec& spec, const UploadRecord& upload, const std::string& model_dir) {
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
