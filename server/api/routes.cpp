// The route table (see routes.h): one row per endpoint, aligned so it reads as a table.
#include "api/routes.h"

#include "api/web_api.h"

namespace tsm::server {

namespace {

struct RouteRow {
  http::verb verb;
  const char* pattern;
  Perm scope;
  BodyMode body;
  RunOn run;
  void (*handler)(App&, RequestPtr, Respond);
};

// Handlers that parse an untrusted JSON or protobuf body run on the request pool (RunOn::Pool), and
// /metrics too (it sums the extracted model directories on disk); on a shared store every /v1
// handler with a buffered body does (add_routes).
const RouteRow kRoutes[] = {
    // verb              pattern                    scope              body                 runs on           handler
    {http::verb::post,    "/v1/uploads",              Perm::Upload,      BodyMode::Streamed, RunOn::IoThread, post_upload},
    {http::verb::get,     "/v1/uploads/{id}",         Perm::Read,        BodyMode::Buffered, RunOn::IoThread, get_upload},
    {http::verb::delete_, "/v1/uploads/{id}",         Perm::Upload,      BodyMode::Buffered, RunOn::IoThread, delete_upload},
    {http::verb::post,    "/v1/jobs",                 Perm::Jobs,        BodyMode::Buffered, RunOn::Pool,     post_job},
    {http::verb::get,     "/v1/jobs",                 Perm::Read,        BodyMode::Buffered, RunOn::IoThread, list_jobs},
    {http::verb::get,     "/v1/jobs/{id}",            Perm::Read,        BodyMode::Buffered, RunOn::IoThread, get_job},
    {http::verb::delete_, "/v1/jobs/{id}",            Perm::Jobs,        BodyMode::Buffered, RunOn::IoThread, cancel_job},
    {http::verb::get,     "/v1/artifacts/{id}",       Perm::Models,      BodyMode::Buffered, RunOn::IoThread, get_artifact},
    {http::verb::get,     "/v1/models",               Perm::Models,      BodyMode::Buffered, RunOn::IoThread, list_models},
    {http::verb::get,     "/v1/models/{name}",        Perm::Models,      BodyMode::Buffered, RunOn::IoThread, get_model},
    {http::verb::get,     "/v1/models/{name}/latest", Perm::Models,      BodyMode::Buffered, RunOn::IoThread, get_model_latest},
    {http::verb::post,    "/v1/devices/{id}/reports", Perm::PostReports, BodyMode::Buffered, RunOn::Pool,     post_device_report},
    {http::verb::get,     "/v1/reports",              Perm::Read,        BodyMode::Buffered, RunOn::IoThread, list_reports},
    {http::verb::get,     "/v1/reports/summary",      Perm::Read,        BodyMode::Buffered, RunOn::IoThread, get_reports_summary},
    {http::verb::get,     "/healthz",                 Perm::Public,      BodyMode::Buffered, RunOn::IoThread, get_healthz},
    {http::verb::get,     "/readyz",                  Perm::Public,      BodyMode::Buffered, RunOn::IoThread, get_readyz},
    {http::verb::get,     "/metrics",                 Perm::Metrics,     BodyMode::Buffered, RunOn::Pool,     get_metrics},
    {http::verb::get,     "/v1/openapi.json",         Perm::Public,      BodyMode::Buffered, RunOn::IoThread, get_openapi},
    // The dashboard (api/web_api.h): public static files; its data comes from /v1 with the user's token.
    {http::verb::get,     "/",                        Perm::Public,      BodyMode::Buffered, RunOn::IoThread, get_web_index},
    {http::verb::get,     "/assets/{file}",           Perm::Public,      BodyMode::Buffered, RunOn::IoThread, get_web_asset},
};

}  // namespace

void add_routes(App& app) {
  for (const RouteRow& r : kRoutes) {
    // A worker process serves the operations endpoints only (role worker; README "Scale-out").
    const std::string_view pat = r.pattern;
    if (app.config.role == "worker" && pat != "/healthz" && pat != "/readyz" && pat != "/metrics") continue;
    // /metrics needs the metrics (or admin) scope unless the config makes it public (metrics_public).
    const Perm scope = r.scope == Perm::Metrics && app.config.metrics_public ? Perm::Public : r.scope;
    // On a shared store (PostgreSQL, perhaps on another host) a store read is a network round trip:
    // the /v1 handlers that read it run on the request pool, so an I/O thread never waits on it.
    const bool reads_store = pat.rfind("/v1/", 0) == 0 && pat != "/v1/openapi.json";
    const RunOn run = app.store && app.store->shared() && reads_store && r.body == BodyMode::Buffered ? RunOn::Pool : r.run;
    app.router.add(
        r.verb, r.pattern, scope, [&app, h = r.handler](RequestPtr req, Respond respond) { h(app, std::move(req), std::move(respond)); },
        r.body, run);
  }
}

}  // namespace tsm::server
