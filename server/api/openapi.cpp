#include "api/openapi.h"

#include <map>

#include "methods/method_table.h"

namespace tsm::server {

using nlohmann::json;

namespace {

// Summary and success status of each route; a route missing here still appears (summary = path).
struct Doc {
  const char* summary;
  const char* ok;
  const char* schema;  // components/schemas name of the success body, or ""
};
const std::map<std::string, Doc>& docs() {
  static const std::map<std::string, Doc> d = {
      {"POST /v1/uploads", {"Stream a tensor file (npy, safetensors, HF model dir tar, JSON array, raw with dtype+shape); validated before it is accepted", "201", "Upload"}},
      {"GET /v1/uploads/{id}", {"An upload and its tensors", "200", "Upload"}},
      {"DELETE /v1/uploads/{id}", {"Delete an upload (its blob goes once nothing references it)", "204", ""}},
      {"POST /v1/jobs", {"Submit a compression job; ?wait=SECONDS holds the reply until it ends", "202", "Job"}},
      {"GET /v1/jobs", {"List jobs (filters state, method, upload; cursor pagination)", "200", "JobList"}},
      {"GET /v1/jobs/{id}", {"A job: state, progress, timings, error, result; ?wait=SECONDS long-polls", "200", "Job"}},
      {"DELETE /v1/jobs/{id}", {"Cancel a job (queued: at once, 200; running: cooperatively, 202)", "200", "Job"}},
      {"GET /v1/artifacts/{id}", {"An artifact (.tsm protobuf) by sha256; ETag, If-None-Match, Range, HEAD; ?format=safetensors", "200", ""}},
      {"GET /v1/models", {"Published models and their latest versions", "200", ""}},
      {"GET /v1/models/{name}", {"Versions of a model, newest first", "200", ""}},
      {"GET /v1/models/{name}/latest", {"Manifest of the latest version; ETag = artifact sha256 (poll with If-None-Match)", "200", "Manifest"}},
      {"POST /v1/devices/{id}/reports", {"Post a DeviceReport (application/x-protobuf or its proto3 JSON form)", "201", ""}},
      {"GET /v1/reports", {"Device reports (filters model, tag, device, since, until, limit)", "200", ""}},
      {"GET /v1/reports/summary", {"Latency percentiles, tokens/s and energy per query by model version and device", "200", ""}},
      {"GET /healthz", {"Liveness", "200", ""}},
      {"GET /readyz", {"Readiness (store open, workers running)", "200", ""}},
      {"GET /metrics", {"Prometheus text metrics", "200", ""}},
      {"GET /v1/openapi.json", {"This document", "200", ""}},
  };
  return d;
}

const char* perm_scope(Perm p) {
  switch (p) {
    case Perm::Public: return "public";
    case Perm::Upload: return "ci";
    case Perm::Jobs: return "ci";
    case Perm::Read: return "ci";
    case Perm::Models: return "ci or device";
    case Perm::PostReports: return "device";
    case Perm::Metrics: return "metrics or admin";
    default: return "admin";
  }
}

}  // namespace

json openapi_document(const Router& router) {
  json paths = json::object();
  for (const auto& r : router.routes()) {
    std::string verb(http::to_string(r.method));
    std::string key = verb + " " + r.pattern;
    auto it = docs().find(key);
    json op = {{"summary", it != docs().end() ? it->second.summary : r.pattern},
               {"x-scope", perm_scope(r.perm)}};
    json params = json::array();
    for (const auto& s : r.segments)
      if (s.size() > 2 && s.front() == '{')
        params.push_back({{"name", s.substr(1, s.size() - 2)}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
    if (!params.empty()) op["parameters"] = params;
    json ok = {{"description", "success"}};
    if (it != docs().end() && *it->second.schema)
      ok["content"]["application/json"]["schema"] = {{"$ref", std::string("#/components/schemas/") + it->second.schema}};
    op["responses"][it != docs().end() ? it->second.ok : "200"] = ok;
    op["responses"]["default"] = {{"description", "error"},
                                  {"content", {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
    if (key == "POST /v1/jobs")
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/JobRequest"}}}}}}}};
    if (r.perm != Perm::Public) op["security"] = json::array({{{"bearer", json::array()}}});
    std::transform(verb.begin(), verb.end(), verb.begin(), ::tolower);
    paths[r.pattern][verb] = op;
  }
  json method_names = json::array(), per_method = json::array();
  json methods = json::object();
  for (const Codec* c : all_codecs()) {
    method_names.push_back(std::string(c->name()));
    methods[std::string(c->name())] = {{"summary", std::string(c->summary())}, {"params", c->param_schema()}};
    per_method.push_back({{"if", {{"properties", {{"method", {{"const", std::string(c->name())}}}}}}},
                          {"then", {{"properties", {{"params", c->param_schema()}}}}}});
  }
  json schemas = json::parse(R"json({
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                               "detail": {"type": "string"}, "field": {"type": "string"}, "offset": {"type": "integer"}}},
    "JobRequest": {"type": "object", "required": ["upload"], "additionalProperties": false,
                   "description": "method is required unless entries give every tensor its own, or plan lets the planner choose (plan excludes method, params and entries)",
                   "properties": {"upload": {"type": "string"},
                                  "tensors": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                                              "description": "tensor names or full-match regexes; default: the only tensor or a model's token embedding"},
                                  "method": {"type": "string"}, "params": {"type": "object"},
                                  "priority": {"type": "integer", "minimum": -100, "maximum": 100},
                                  "publish": {"type": "object", "required": ["model", "tag"],
                                              "description": "a model:tag that exists is a 409 unless replace is true",
                                              "properties": {"model": {"type": "string"}, "tag": {"type": "string"}, "replace": {"type": "boolean"}}},
                                  "quality_gate": {"type": "object", "properties": {"max_rel_error": {"type": "number"}, "max_kl": {"type": "number"}}},
                                  "whole_model": {"type": "boolean", "description": "an HF model tar: tensors matching the regex(es) (default: the token embedding) compressed, the rest passed through; quality (KL, ppl) measured; params checked against every matching tensor at POST"},
                                  "calibrate": {"type": "object", "description": "whole-model jobs of methods that calibrate (saten, block types): fit each layer in the norm of its inputs from the dense model on self-sampled text (saten: then Adam; block types: GPTQ with params.calibration gptq)", "properties": {"sequences": {"type": "integer", "minimum": 1, "maximum": 256}, "adam_steps": {"type": "integer", "minimum": 0, "maximum": 10000}, "whitening": {"enum": ["cholesky", "diagonal"]}}},
                                  "evaluation": {"type": "object", "description": "whole-model jobs: quality on sequences held out from calibration; defaults: >= 2048 predicted tokens in self-sampled sequences of 129 tokens, every reference representation (fp16, int8, block types) of the same tensors and a verdict by KL", "properties": {"tokens": {"type": "integer", "minimum": 1}, "length": {"type": "integer", "minimum": 2}, "seed": {"type": "integer", "minimum": 0}, "compare": {"type": "boolean"}, "sequences": {"type": "array", "maxItems": 4096, "items": {"type": "array", "minItems": 2, "items": {"type": "integer", "minimum": 0}}}}},
                                  "plan": {"type": "object", "additionalProperties": false,
                                           "description": "a planner job in place of method / params / entries: the best representation for every tensor under a size or quality budget. Each candidate of each planned tensor is encoded and its damage measured (KL with only that tensor replaced, on the first sensitivity_sequences calibration sequences); the budget is allocated over each tensor's Pareto set; the allocation, frontier points and every candidate applied uniformly are measured end to end on a repair set (>= 2048 tokens of 129, seeds from 2,000,000); the chosen plan is built and its KL measured on the evaluation set, which neither saw. Implies whole_model (false is refused); tensors (regexes searched in names) restricts what is planned, default every 2-D float tensor; evaluation is the held-out verify set; calibrate takes sequences only (the calibration count); token_weights is refused. The upload must be an HF model tar whose config.json the runtime runs. Progress: calibrate 0-0.05, candidates 0.05-0.65, repair 0.65-0.8, build 0.8-1; the running job shows its phase. The result holds plan (PlanReport); a target out of reach fails the job with the planner's message, and a max_kl out of reach still leaves the report (the closest plan, the frontier) in the result.",
                                           "minProperties": 1,
                                           "oneOf": [{"required": ["target_ratio"]}, {"required": ["target_bytes"]}, {"required": ["max_kl"]}],
                                           "properties": {"target_ratio": {"type": "number", "exclusiveMinimum": 1, "description": "whole-model ratio vs f32: dense f32 bytes of every tensor over the stored bytes of every tensor with its metadata (kept tensors included; config and tokenizer apart)"},
                                                          "target_bytes": {"type": "integer", "minimum": 1, "description": "whole-model stored bytes (config and tokenizer apart)"},
                                                          "max_kl": {"type": "number", "exclusiveMinimum": 0, "description": "the smallest plan whose KL(dense || plan) stays within this bound, nats per token"},
                                                          "methods": {"type": "string", "description": "candidates, comma-separated, each METHOD or METHOD{json params} (e.g. q4_k,q8_0,qlr{\"base\":\"q3_k\",\"rank\":8}); empty or absent: the defaults (tensorslm plan --help)"},
                                                          "calibrate": {"type": "boolean", "default": true, "description": "GPTQ for the candidates that offer it (calibration gptq); false: every candidate data-free"},
                                                          "sensitivity_sequences": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8}}},
                                  "entries": {"type": "array", "minItems": 1, "description": "per-tensor methods: the first entry whose tensor pattern (RE2, full match) matches a tensor decides its method and params; other tensors get the job's method",
                                              "items": {"type": "object", "required": ["tensor", "method"], "additionalProperties": false,
                                                        "properties": {"tensor": {"type": "string"}, "method": {"type": "string"}, "params": {"type": "object"}}}}}},
    "Job": {"type": "object",
            "properties": {"id": {"type": "string"},
                           "state": {"enum": ["queued", "running", "succeeded", "failed", "canceled"]},
                           "progress": {"type": "number", "minimum": 0, "maximum": 1},
                           "phase": {"enum": ["calibrate", "candidates", "repair", "build"], "description": "a running plan job's current phase"},
                           "method": {"type": "string", "description": "the job's method; plan for a planner job; empty when entries decide"},
                           "error": {"type": "string"},
                           "timings": {"type": "object", "description": "queued_s, load_s, compress_s, store_s, run_s; a plan job adds phases {calibrate_s, candidates_s, repair_s, build_s} (calibrate_s includes loading the dense model and sampling the sequence sets)"},
                           "result": {"type": "object", "description": "artifact {id, sha256, size_bytes, url}, tensors[] (metrics, baselines), total (rel_error over all tensors combined), quality?, published?, plan? (plan jobs)",
                                      "properties": {"plan": {"$ref": "#/components/schemas/PlanReport"}}}}},
    "PlanReport": {"type": "object", "description": "what a plan job found (pipeline/planner.h): the frontier to plot (bytes vs KL), every candidate applied uniformly, each tensor's Pareto set and choice, and the chosen plan as a re-runnable job spec",
                   "properties": {"target": {"type": "object", "properties": {"kind": {"enum": ["ratio", "bytes", "max_kl"]}, "value": {"type": "number"}}},
                                  "target_met": {"type": "boolean"}, "message": {"type": "string", "description": "what was chosen, or why the target is out of reach and what the closest plan is"},
                                  "dense_f32_bytes": {"type": "integer"}, "fixed_bytes": {"type": "integer", "description": "tensors the planner does not touch, as stored"},
                                  "budget_bytes": {"type": "integer"}, "bytes": {"type": "integer"}, "ratio_f32": {"type": "number"},
                                  "kl_estimate": {"type": "number", "description": "sum of the chosen options' damages"},
                                  "kl_repair": {"type": "number", "description": "measured on the repair set"},
                                  "kl_verified": {"type": "number", "description": "measured on the evaluation set (held out from calibration and repair)"},
                                  "sets": {"type": "object", "properties": {"sensitivity": {"type": "string"}, "repair": {"type": "string"}, "verify": {"type": "string"}}},
                                  "repairs": {"type": "array", "items": {"type": "string"}},
                                  "frontier": {"type": "array", "description": "bytes ascending: states of the allocation sweep; kl_measured on the repair set where measured",
                                               "items": {"type": "object", "required": ["bytes", "ratio_f32", "kl_estimate"],
                                                         "properties": {"bytes": {"type": "integer"}, "ratio_f32": {"type": "number"}, "kl_estimate": {"type": "number"}, "kl_measured": {"type": "number"}}}},
                                  "uniform": {"type": "array", "description": "bytes ascending: one candidate on every planned tensor, KL on the repair set",
                                              "items": {"type": "object", "properties": {"method": {"type": "string"}, "bytes": {"type": "integer"}, "ratio_f32": {"type": "number"}, "kl_measured": {"type": "number"}}}},
                                  "tensors": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                                                                                                         "chosen": {"type": ["string", "null"]}, "bytes": {"type": ["integer", "null"]},
                                                                                                         "pareto": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}, "bytes": {"type": "integer"}, "damage_kl": {"type": "number"}, "rel_error": {"type": "number"}}}}}}},
                                  "spec": {"type": "object", "description": "the chosen plan as a re-runnable job spec {whole_model, entries, calibrate?}: POST it with an upload to compress every tensor the same way (a whole-model job with entries)"}}},
    "JobList": {"type": "object", "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                                 "next_cursor": {"type": "string"}}},
    "Upload": {"type": "object", "properties": {"id": {"type": "string"}, "sha256": {"type": "string"},
                                                "format": {"type": "string"}, "tensors": {"type": "array"}}},
    "Manifest": {"type": "object", "properties": {"model": {"type": "string"}, "tag": {"type": "string"},
                                                  "artifact": {"type": "string"}, "sha256": {"type": "string"},
                                                  "size_bytes": {"type": "integer"}, "url": {"type": "string"}}}
  })json");
  schemas["JobRequest"]["properties"]["method"]["enum"] = method_names;
  schemas["JobRequest"]["allOf"] = per_method;
  return {{"openapi", "3.1.0"},
          {"info", {{"title", "tensorslm-server"}, {"version", TSM_VERSION}}},
          {"paths", paths},
          {"components", {{"schemas", schemas}, {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
          {"x-methods", methods}};
}

}  // namespace tsm::server
