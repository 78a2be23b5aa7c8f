// /healthz, /readyz, /metrics (Prometheus text), /v1/openapi.json.
#include "api/openapi.h"
#include "app.h"
#include "http/problem.h"

namespace tsm::server {

void add_ops_routes(App& app) {
  app.router.add(http::verb::get, "/healthz", Perm::Public, [](RequestPtr, Respond respond) {
    respond(json_response(http::status::ok, {{"status", "ok"}}));
  });
  app.router.add(http::verb::get, "/readyz", Perm::Public, [&app](RequestPtr, Respond respond) {
    if (!app.ready) return respond(problem(http::status::service_unavailable, "starting or shutting down"));
    respond(json_response(http::status::ok, {{"status", "ready"}, {"queue_depth", app.jobs->queue_depth()},
                                             {"schema_version", app.store->schema_version()}}));
  });
  app.router.add(http::verb::get, "/metrics", Perm::Public, [&app](RequestPtr, Respond respond) {
    respond(text_response(http::status::ok, app.metrics.render(), "text/plain; version=0.0.4"));
  });
  app.router.add(http::verb::get, "/v1/openapi.json", Perm::Public, [&app](RequestPtr, Respond respond) {
    respond(json_response(http::status::ok, openapi_document(app.router)));
  });
}

}  // namespace tsm::server
