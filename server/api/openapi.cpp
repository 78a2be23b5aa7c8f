#include "api/openapi.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <vector>

#include "methods/method_table.h"

namespace tsm::server {

using nlohmann::json;

namespace {

// One row per operation: its operationId, summary, success responses, the problem+json errors its
// handler (or the HTTP layer before it) really returns, its query parameters, and where a body
// schema or example applies. A route missing here still appears (operationId from verb and path).
struct Query {
  const char* name;
  const char* type;  // JSON Schema type
  const char* description;
};
struct Doc {
  const char* operation_id;
  const char* summary;
  std::vector<const char*> ok;      // success status codes (each but 204/304 with the `schema` body)
  const char* schema;               // components/schemas name of the success body, or ""
  std::vector<int> errors;          // problem+json statuses
  std::vector<Query> query;
};
// Every request can fail with 400 before it reaches a handler (a malformed request line, target or
// percent-encoding); a route with a scope adds 401/403 (when tokens are configured); a body over
// its limit is a 413.
const std::map<std::string, Doc>& docs() {
  static const std::map<std::string, Doc> d = {
      {"POST /v1/uploads", {"createUpload", "Stream a tensor file (npy, safetensors, HF model dir tar, JSON array, raw with dtype+shape); validated before it is accepted", {"201"}, "Upload",
                            {400, 401, 403, 413, 415, 422, 507},
                            {{"format", "string", "npy, safetensors, tar, json or raw (default: from Content-Type, else sniffed)"},
                             {"name", "string", "a display name"},
                             {"dtype", "string", "raw uploads: element type (f32, f16, bf16...)"},
                             {"shape", "string", "raw uploads: comma-separated dimensions"}}}},
      {"GET /v1/uploads/{id}", {"getUpload", "An upload and its tensors", {"200"}, "Upload", {400, 401, 403, 404}, {}}},
      {"DELETE /v1/uploads/{id}", {"deleteUpload", "Delete an upload (its blob goes once nothing references it)", {"204"}, "", {400, 401, 403, 404}, {}}},
      {"POST /v1/jobs", {"createJob", "Submit a compression job; ?wait=SECONDS holds the reply until it ends", {"202", "200"}, "Job",
                         {400, 401, 403, 409, 413, 422, 503, 507},
                         {{"wait", "number", "hold the reply up to this many seconds for the job to end (200 when it did)"}}}},
      {"GET /v1/jobs", {"listJobs", "List jobs (filters state, method, upload; cursor pagination)", {"200"}, "JobList", {400, 401, 403},
                        {{"state", "string", "queued, running, succeeded, failed or canceled"},
                         {"method", "string", "a method name, or plan for planner jobs"},
                         {"upload", "string", "jobs of this upload id"},
                         {"cursor", "string", "next_cursor of the previous page"},
                         {"limit", "integer", "page size, 1-500 (default 50)"}}}},
      {"GET /v1/jobs/{id}", {"getJob", "A job: state, progress, timings, error, result; ?wait=SECONDS long-polls", {"200"}, "Job", {400, 401, 403, 404},
                             {{"wait", "number", "hold the reply up to this many seconds for the job to end"}}}},
      {"DELETE /v1/jobs/{id}", {"cancelJob", "Cancel a job (queued: at once, 200; running: cooperatively, 202)", {"200", "202"}, "Job", {400, 401, 403, 404, 409}, {}}},
      {"GET /v1/artifacts/{id}", {"getArtifact", "An artifact (.tsm protobuf) by sha256; ETag, If-None-Match, Range, HEAD; ?format=safetensors", {"200", "206", "304"}, "",
                                  {400, 401, 403, 404, 416},
                                  {{"format", "string", "tsm (default) or safetensors"}}}},
      {"GET /v1/models", {"listModels", "Published models and their latest versions", {"200"}, "ModelList", {400, 401, 403}, {}}},
      {"GET /v1/models/{name}", {"getModel", "Versions of a model, newest first", {"200"}, "ModelVersions", {400, 401, 403, 404}, {}}},
      {"GET /v1/models/{name}/latest", {"getModelLatest", "Manifest of the latest version; ETag = artifact sha256 (poll with If-None-Match)", {"200", "304"}, "Manifest", {400, 401, 403, 404}, {}}},
      {"POST /v1/devices/{id}/reports", {"createDeviceReport", "Post a DeviceReport (application/x-protobuf or its proto3 JSON form)", {"201"}, "ReportCreated",
                                         {400, 401, 403, 413, 422, 507}, {}}},
      {"GET /v1/reports", {"listReports", "Device reports (filters model, tag, device, since, until, limit)", {"200"}, "ReportList", {400, 401, 403},
                           {{"model", "string", "model name"}, {"tag", "string", "model version tag"}, {"device", "string", "device id"},
                            {"since", "integer", "created at or after this unix time"}, {"until", "integer", "created before this unix time"},
                            {"limit", "integer", "at most this many, 1-10000 (default 100)"}}}},
      {"GET /v1/reports/summary", {"getReportsSummary", "Latency percentiles, tokens/s and energy per query by model version and device", {"200"}, "ReportSummary", {400, 401, 403},
                                   {{"model", "string", "model name"}, {"tag", "string", "model version tag"}, {"device", "string", "device id"},
                                    {"since", "integer", "created at or after this unix time"}, {"until", "integer", "created before this unix time"},
                                    {"limit", "integer", "reports summarized, 1-1000000 (default 100000)"}}}},
      {"GET /healthz", {"getHealth", "Liveness", {"200"}, "Status", {400}, {}}},
      {"GET /readyz", {"getReadiness", "Readiness (store open, workers running)", {"200"}, "Status", {400, 503}, {}}},
      {"GET /metrics", {"getMetrics", "Prometheus text metrics", {"200"}, "", {400, 401, 403}, {}}},
      {"GET /v1/openapi.json", {"getOpenApi", "This document", {"200"}, "", {400}, {}}},
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

const char* status_text(int code) {
  switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted: the job is queued or running (or a running job's cancel was requested)";
    case 204: return "No Content";
    case 206: return "Partial Content (one byte range)";
    case 304: return "Not Modified (If-None-Match matched the ETag)";
    case 400: return "Bad Request: a malformed request, query parameter or body";
    case 401: return "Unauthorized: tokens are configured and no known bearer token was sent";
    case 403: return "Forbidden: the token lacks the scope (or a device token the device id)";
    case 404: return "Not Found";
    case 409: return "Conflict: the publish tag exists, or the job already ended";
    case 413: return "Content Too Large: the body exceeds the route's limit";
    case 415: return "Unsupported Media Type: the upload's format is not one the server reads";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content: a well-formed request with invalid values (field names the member)";
    case 503: return "Service Unavailable: the job queue is full or the server is starting (Retry-After)";
    case 507: return "Insufficient Storage: the data disk is full";
    default: return "error";
  }
}

/// Lower camel case id from the verb and the path, for routes without a Doc row.
std::string fallback_operation_id(std::string verb, const std::string& pattern) {
  std::string id = verb;
  bool up = true;
  for (char c : pattern) {
    if (!std::isalnum(static_cast<unsigned char>(c))) { up = true; continue; }
    id += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    up = false;
  }
  return id;
}

/// The dashboard's static files (api/web_api.h) are routes too, but not part of the API.
bool is_web_route(const std::string& pattern) { return pattern == "/" || pattern.rfind("/assets/", 0) == 0; }

}  // namespace

json openapi_document(const Router& router) {
  json paths = json::object();
  std::set<int> used_errors;
  for (const auto& r : router.routes()) {
    if (is_web_route(r.pattern)) continue;
    std::string verb(http::to_string(r.method));
    std::string key = verb + " " + r.pattern;
    std::transform(verb.begin(), verb.end(), verb.begin(), ::tolower);
    auto it = docs().find(key);
    const Doc* doc = it != docs().end() ? &it->second : nullptr;
    json op = {{"operationId", doc ? std::string(doc->operation_id) : fallback_operation_id(verb, r.pattern)},
               {"summary", doc ? doc->summary : r.pattern},
               {"x-scope", perm_scope(r.perm)}};
    json params = json::array();
    for (const auto& s : r.segments)
      if (s.size() > 2 && s.front() == '{')
        params.push_back({{"name", s.substr(1, s.size() - 2)}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}});
    if (doc)
      for (const Query& q : doc->query)
        params.push_back({{"name", q.name}, {"in", "query"}, {"required", false}, {"description", q.description},
                          {"schema", {{"type", q.type}}}});
    if (!params.empty()) op["parameters"] = params;
    const std::vector<const char*> oks = doc ? doc->ok : std::vector<const char*>{"200"};
    for (size_t i = 0; i < oks.size(); ++i) {
      json ok = {{"description", status_text(std::atoi(oks[i]))}};
      const std::string code = oks[i];
      if (doc && *doc->schema && code != "304" && code != "204") {
        json media = {{"schema", {{"$ref", std::string("#/components/schemas/") + doc->schema}}}};
        ok["content"]["application/json"] = media;
      }
      if (key == "GET /v1/artifacts/{id}" && code != "304")
        ok["content"]["application/octet-stream"]["schema"] = {{"type", "string"}, {"format", "binary"}};
      if (key == "GET /metrics") ok["content"]["text/plain"]["schema"] = {{"type", "string"}};
      if (key == "GET /v1/openapi.json") ok["content"]["application/json"]["schema"] = {{"type", "object"}};
      op["responses"][code] = ok;
    }
    std::vector<int> errors = doc ? doc->errors : std::vector<int>{400};
    for (int e : errors) {
      op["responses"][std::to_string(e)] = {{"$ref", "#/components/responses/Problem" + std::to_string(e)}};
      used_errors.insert(e);
    }
    if (key == "POST /v1/jobs") {
      json media = {{"schema", {{"$ref", "#/components/schemas/JobRequest"}}}};
      media["examples"]["method"] = {{"summary", "one tensor, one method"},
                                     {"value", {{"upload", "u_0123456789abcdef"}, {"method", "int8"}}}};
      media["examples"]["plan"] = {{"summary", "the planner under a size budget"},
                                   {"value", {{"upload", "u_0123456789abcdef"}, {"plan", {{"target_ratio", 4}}}}}};
      op["requestBody"] = {{"required", true}, {"content", {{"application/json", media}}}};
    }
    if (key == "POST /v1/uploads")
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/octet-stream", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}};
    if (key == "POST /v1/devices/{id}/reports")
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/DeviceReport"}}}}},
                                        {"application/x-protobuf", {{"schema", {{"type", "string"}, {"format", "binary"}}}}}}}};
    // A public route needs no token even when tokens are configured: an empty requirement list.
    op["security"] = r.perm == Perm::Public ? json::array() : json::array({{{"bearer", json::array()}}});
    paths[r.pattern][verb] = op;
  }
  json responses = json::object();
  for (int e : used_errors)
    responses["Problem" + std::to_string(e)] = {
        {"description", status_text(e)},
        {"content", {{"application/problem+json",
                      {{"schema", {{"$ref", "#/components/schemas/Problem"}}},
                       {"example", {{"type", "about:blank"}, {"title", std::string(http::obsolete_reason(static_cast<http::status>(e)))},
                                    {"status", e}, {"detail", status_text(e)}}}}}}}};
  json method_names = json::array(), per_method = json::array();
  json methods = json::object();
  for (const Codec* c : all_codecs()) {
    method_names.push_back(std::string(c->name()));
    methods[std::string(c->name())] = {{"summary", std::string(c->summary())}, {"params", c->param_schema()}};
    // unevaluatedProperties true is JSON Schema's default, stated so that validators which close
    // every object schema by default (Redocly's example check) read these parts as the open ones they are.
    per_method.push_back({{"if", {{"properties", {{"method", {{"const", std::string(c->name())}}}}}, {"unevaluatedProperties", true}}},
                          {"then", {{"properties", {{"params", c->param_schema()}}}, {"unevaluatedProperties", true}}}});
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
                                                  "size_bytes": {"type": "integer"}, "url": {"type": "string"},
                                                  "job": {"type": "string"}, "created_unix": {"type": "integer"}}},
    "ModelList": {"type": "object", "properties": {"models": {"type": "array", "items": {"type": "object",
                  "properties": {"name": {"type": "string"}, "versions": {"type": "integer"}, "latest": {"$ref": "#/components/schemas/Manifest"}}}}}},
    "ModelVersions": {"type": "object", "properties": {"name": {"type": "string"},
                      "versions": {"type": "array", "description": "newest first", "items": {"$ref": "#/components/schemas/Manifest"}}}},
    "DeviceReport": {"type": "object", "description": "tensorslm.v1.DeviceReport (proto/report.proto) in the proto3 JSON mapping",
                     "properties": {"device": {"type": "object"}, "model": {"type": "string"}, "tag": {"type": "string"},
                                    "artifact_sha256": {"type": "string"}, "workload": {"type": "object"},
                                    "runs": {"type": "array", "description": "the compressed run first; optional dense run",
                                             "items": {"type": "object", "properties": {"variant": {"type": "string"}, "p50_ms": {"type": "number"},
                                                       "p90_ms": {"type": "number"}, "p99_ms": {"type": "number"}, "ttft_p50_ms": {"type": "number"},
                                                       "tokens_per_s": {"type": "number"},
                                                       "energy": {"type": "object", "properties": {"source": {"type": "string"}, "uncertainty_rel": {"type": "number"},
                                                                  "joules_per_query": {"type": "number"}, "mean_watts": {"type": "number"},
                                                                  "idle_watts": {"type": "number"}, "window_s": {"type": "number"}}}}}},
                                    "created_unix": {"type": ["integer", "string"]}, "error": {"type": "string"}}},
    "ReportCreated": {"type": "object", "properties": {"id": {"type": "integer"}, "device": {"type": "string"},
                                                       "model": {"type": "string"}, "tag": {"type": "string"}}},
    "ReportList": {"type": "object", "properties": {"reports": {"type": "array", "items": {"type": "object",
                   "properties": {"id": {"type": "integer"}, "device": {"type": "string"}, "model": {"type": "string"}, "tag": {"type": "string"},
                                  "artifact_sha256": {"type": "string"}, "created_unix": {"type": "integer"},
                                  "report": {"$ref": "#/components/schemas/DeviceReport"}}}}}},
    "ReportSummary": {"type": "object", "properties": {"groups": {"type": "array", "items": {"type": "object",
                      "properties": {"model": {"type": "string"}, "tag": {"type": "string"}, "device": {"type": "string"},
                                     "reports": {"type": "integer"}, "error_reports": {"type": "integer"},
                                     "latency_ms": {"type": "object", "properties": {"p50": {"type": "number"}, "p90": {"type": "number"},
                                                                                     "p99": {"type": "number"}, "samples": {"type": "integer"}}},
                                     "ttft_p50_ms": {"type": ["number", "null"]}, "tokens_per_s_mean": {"type": ["number", "null"]},
                                     "joules_per_query_mean": {"type": ["number", "null"]}, "energy_source": {"type": "string"},
                                     "first_unix": {"type": "integer"}, "last_unix": {"type": "integer"}}}}}},
    "Status": {"type": "object", "properties": {"status": {"type": "string"}, "queue_depth": {"type": "integer"},
                                                "schema_version": {"type": "integer"}}}
  })json");
  schemas["JobRequest"]["properties"]["method"]["enum"] = method_names;
  schemas["JobRequest"]["allOf"] = per_method;
  return {{"openapi", "3.1.0"},
          {"info", {{"title", "tensorslm-server"}, {"version", TSM_VERSION},
                    {"description", "Compresses LM embeddings and weights with tensor networks and block quantizers; publishes model versions; collects device reports. Errors are application/problem+json (RFC 9457)."},
                    // The repository carries no license file: no license is granted (SPDX custom reference).
                    {"license", {{"name", "UNLICENSED (no license granted)"}, {"identifier", "LicenseRef-UNLICENSED"}}}}},
          // Relative: the API is served from the same origin as this document.
          {"servers", json::array({{{"url", "/"}, {"description", "this server (the origin that served this document)"}}})},
          {"paths", paths},
          {"components", {{"schemas", schemas}, {"responses", responses},
                          {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"},
                                                          {"description", "a token from the server config's tokens (scopes admin, ci, device, metrics); needed only when tokens are configured"}}}}}}},
          {"x-methods", methods}};
}

}  // namespace tsm::server
