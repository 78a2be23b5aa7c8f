// /healthz, /readyz (from the background checks of the store and the job service: never waits on
// the database), /metrics (Prometheus text; on the request pool, scope metrics unless
// metrics_public), /v1/openapi.json.
#include <filesystem>
#include <system_error>

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
  // An I/O thread: the store's and the job service's background checks (every second), not the database.
  const MetadataStore::Health h = app.store->health();
  if (!h.up)
    return respond(problem(http::status::service_unavailable, "the metadata store " + app.store->describe() + " is unreachable"));
  respond(json_response(http::status::ok, {{"status", "ready"}, {"queue_depth", app.jobs->last_queue_depth()},
                                           {"schema_version", h.schema_version}}));
}

namespace {

/// The extracted model directories (models/<upload sha>/, beside the blobs that hold their tars),
/// summed from the disk at each scrape: they change only through uploads and deletes, and a walk
/// of a few files per model is cheap next to a scrape interval. Files that vanish mid-walk (a
/// concurrent delete) are skipped.
std::string model_dir_metrics(const std::string& models_dir) {
  namespace fs = std::filesystem;
  uint64_t bytes = 0, dirs = 0;
  std::error_code ec;
  for (fs::directory_iterator top(models_dir, ec), end; !ec && top != end; top.increment(ec)) {
    if (!top->is_directory(ec)) continue;
    ++dirs;
    std::error_code ec2;
    for (fs::recursive_directory_iterator it(top->path(), ec2), e2; !ec2 && it != e2; it.increment(ec2)) {
      std::error_code ec3;
      if (it->is_regular_file(ec3)) {
        auto n = it->file_size(ec3);
        if (!ec3) bytes += n;
      }
    }
  }
  std::string o;
  o += "# HELP tensorslm_model_dir_bytes Bytes of extracted model directories (models/; tar uploads), not in tensorslm_blob_bytes.\n";
  o += "# TYPE tensorslm_model_dir_bytes gauge\ntensorslm_model_dir_bytes " + std::to_string(bytes) + "\n";
  o += "# HELP tensorslm_model_dirs Extracted model directories.\n# TYPE tensorslm_model_dirs gauge\n";
  o += "tensorslm_model_dirs " + std::to_string(dirs) + "\n";
  return o;
}

}  // namespace

void get_metrics(App& app, RequestPtr req, Respond respond) {
  respond(text_response(http::status::ok, app.metrics.render() + model_dir_metrics(app.models_dir), "text/plain; version=0.0.4"));
}

void get_openapi(App& app, RequestPtr req, Respond respond) {
  respond(json_response(http::status::ok, openapi_document(app.router)));
}

}  // namespace tsm::server
