// /healthz, /readyz, /metrics (Prometheus text), /v1/openapi.json.
#include "api/openapi.h"
#include "api/routes.h"
#include "app.h"
#include "http/problem.h"

namespace tsm::server {

void get_healthz(App& app, RequestPtr req, Respond respond) {
  respond(json_response(http::status::ok, {{"status", "ok"}}));
}

void get_readyz(App& app, RequestPtr req, Respond respond) {
  if (!app.ready) return respond(problem(http::status::service_unavailable, "starting or shutting down"));
  respond(json_response(http::status::ok, {{"status", "ready"}, {"queue_depth", app.jobs->queue_depth()},
                                           {"schema_version", app.store->schema_version()}}));
}

void get_metrics(App& app, RequestPtr req, Respond respond) {
  respond(text_response(http::status::ok, app.metrics.render(), "text/plain; version=0.0.4"));
}

void get_openapi(App& app, RequestPtr req, Respond respond) {
  respond(json_response(http::status::ok, openapi_document(app.router)));
}

}  // namespace tsm::server
