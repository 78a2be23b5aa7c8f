// GET /v1/models, /v1/models/{name}, /v1/models/{name}/latest (manifest with ETag = artifact sha256,
// polled by agents with If-None-Match).
#include "api/api_util.h"
#include "api/routes.h"
#include "app.h"
#include "spec/job_spec.h"

namespace tsm::server {

namespace {

json version_json(const ModelVersion& v) {
  return {{"model", v.model},           {"tag", v.tag},
          {"artifact", v.artifact_sha256}, {"sha256", v.artifact_sha256},
          {"size_bytes", v.size_bytes}, {"url", "/v1/artifacts/" + v.artifact_sha256},
          {"job", v.job_id},            {"created_unix", v.created_unix}};
}

std::vector<ModelVersion> must_versions(App& app, const std::string& name) {
  if (!is_safe_name(name)) throw HttpError(http::status::not_found, "no model '" + name + "'");
  auto v = app.store->model_versions(name);
  if (v.empty()) throw HttpError(http::status::not_found, "no model '" + name + "' (publish one with a job's publish field)");
  return v;
}

}  // namespace

void list_models(App& app, RequestPtr req, Respond respond) {
  json models = json::array();
  for (const auto& name : app.store->list_models()) {
    auto v = app.store->model_versions(name);
    models.push_back({{"name", name}, {"versions", v.size()}, {"latest", version_json(v.front())}});
  }
  respond(json_response(http::status::ok, {{"models", models}}));
}

void get_model(App& app, RequestPtr req, Respond respond) {
  json versions = json::array();
  for (const auto& v : must_versions(app, req->params[0])) versions.push_back(version_json(v));
  respond(json_response(http::status::ok, {{"name", req->params[0]}, {"versions", versions}}));
}

void get_model_latest(App& app, RequestPtr req, Respond respond) {
  auto v = must_versions(app, req->params[0]).front();
  if (etag_matches(*req, v.artifact_sha256)) {
    StringResponse r{http::status::not_modified, 11};
    r.set(http::field::etag, "\"" + v.artifact_sha256 + "\"");
    return respond(std::move(r));
  }
  auto r = json_response(http::status::ok, version_json(v));
  r.set(http::field::etag, "\"" + v.artifact_sha256 + "\"");
  r.set(http::field::cache_control, "no-cache");
  respond(std::move(r));
}

}  // namespace tsm::server
