#include "service.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/error.h"
#include "http/http_server.h"
#include "spec/job_spec.h"
#include "store/orphan_sweep.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace tsm::server {

void setup_logging(const Config& c) {
  auto logger = spdlog::stderr_color_mt("tensorslm");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(c.log_level));
  if (c.log_format == "json")
    spdlog::set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","thread":%t,"msg":"%v"})");
  else
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

namespace {
/// A process's own temp directory under a shared blob root: tmp/<host>-<hash of its data dir>, the
/// same across restarts of one instance (which empties it at start-up), distinct between instances.
std::string shared_tmp_name(const Config& c) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::error_code ec;
  const std::string dir = std::filesystem::absolute(c.data_dir, ec).string();
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : dir) h = (h ^ ch) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("tmp/") + (c.worker_id.empty() ? std::string(host) : c.worker_id) + "-" + hex;
}
}  // namespace

Service::Service(Config config) : app_(std::make_unique<App>()) { app_->config = std::move(config); }

Service::~Service() { stop(); }

uint16_t Service::start() {
  App& a = *app_;
  a.config.validate();
  namespace fs = std::filesystem;
  fs::create_directories(a.config.data_dir);
  const std::string blob_dir = a.config.effective_blob_dir();
  fs::create_directories(blob_dir);
  a.models_dir = blob_dir + "/models";
  fs::create_directories(a.models_dir);
  if (a.config.store_is_postgres())
    a.store = std::make_unique<PostgresStore>(a.config.store);  // logs the URI without its password
  else
    a.store = std::make_unique<SqliteStore>(a.config.store.empty() ? a.config.data_dir + "/tensorslm.db"
                                                                   : a.config.store.substr(std::string("sqlite:").size()));
  a.blobs = std::make_unique<BlobStore>(blob_dir, a.store->shared() ? shared_tmp_name(a.config) : "tmp");
  {  // what a kill -9 left between a rename into place and its row (orphan_sweep.h)
    const auto min_age = a.store->shared() ? std::chrono::seconds(std::chrono::hours(24)) : std::chrono::seconds(0);
    const SweepResult swept = sweep_unreferenced(*a.blobs, *a.store, a.models_dir, min_age);
    if (swept.blobs > 0 || swept.model_dirs > 0)
      spdlog::warn("start-up: removed {} unreferenced blob(s) ({} bytes) and {} unreferenced model director(ies) left by an "
                   "interrupted upload or job",
                   swept.blobs, swept.bytes, swept.model_dirs);
  }
  a.auth = std::make_unique<Authenticator>(a.config.tokens);
  QueueOptions q;
  q.worker_id = a.config.worker_id;
  q.lease_s = a.config.lease_s;
  q.poll_s = a.config.poll_s;
  q.max_attempts = a.config.max_attempts;
  a.jobs = std::make_unique<JobService>(*a.store, *a.blobs, a.models_dir, a.config.role == "api" ? 0 : a.config.workers,
                                        a.config.codec_threads, static_cast<size_t>(a.config.queue_capacity), q);
  if (!a.auth->enabled())
    spdlog::warn("auth is OFF: no tokens configured and listening on loopback {} (every request acts as admin)", a.config.host);
  else
    spdlog::info("auth on: {} token(s)", a.config.tokens.size());

  add_routes(a);

  a.metrics.add_source([&a](std::string& o) {
    o += "# HELP tensorslm_queue_depth Jobs queued in the store (all processes).\n# TYPE tensorslm_queue_depth gauge\n";
    o += "tensorslm_queue_depth " + std::to_string(a.jobs->queue_depth()) + "\n";
    const QueueCounters& qc = a.jobs->counters();
    const auto counter = [&o](const char* name, const char* help, uint64_t v) {
      o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
    };
    counter("tensorslm_queue_claims_total", "Jobs this process's workers claimed.", qc.claims.load());
    counter("tensorslm_queue_takeovers_total", "Claims of a job whose previous lease had expired.", qc.takeovers.load());
    counter("tensorslm_queue_lease_expiries_total", "Expired leases this process found (takeovers and attempt-limit failures).",
            qc.lease_expiries.load());
    counter("tensorslm_queue_attempt_limit_failures_total", "Jobs this process failed at max_attempts expired leases.",
            qc.attempt_limit_failures.load());
    counter("tensorslm_queue_leases_lost_total", "Jobs this process stopped because another worker took their lease.",
            qc.leases_lost.load());
    o += "# HELP tensorslm_store_up 1 while the metadata store answers.\n# TYPE tensorslm_store_up gauge\n";
    o += std::string("tensorslm_store_up ") + (a.store->health().up ? "1" : "0") + "\n";
    o += "# HELP tensorslm_jobs_running Jobs on a worker now.\n# TYPE tensorslm_jobs_running gauge\n";
    o += "tensorslm_jobs_running " + std::to_string(a.jobs->running()) + "\n";
    o += "# HELP tensorslm_jobs Jobs in the store by state.\n# TYPE tensorslm_jobs gauge\n";
    std::map<std::string, int64_t> counts;
    try {
      counts = a.store->count_jobs_by_state();
    } catch (const std::exception&) {
      return;  // the store is unreachable (tensorslm_store_up 0)
    }
    for (auto st : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELED})
      o += "tensorslm_jobs{state=\"" + state_name(st) + "\"} " + std::to_string(counts[state_name(st)]) + "\n";
    o += "# HELP tensorslm_blob_bytes Bytes in the blob store (uploads and artifacts).\n# TYPE tensorslm_blob_bytes gauge\n";
    o += "tensorslm_blob_bytes " + std::to_string(a.blobs->bytes_stored()) + "\n";
  });

  auto shared = std::make_shared<HttpShared>();
  shared->config = a.config;
  shared->router = &a.router;
  shared->auth = a.auth.get();
  shared->metrics = &a.metrics;
  shared->tmp_dir = a.blobs->tmp_dir();
  shared->pool = &a.requests;
  http_ = std::make_unique<HttpServer>(a.ioc, shared);
  uint16_t port = http_->listen(a.config.host, a.config.port);
  a.jobs->start();
  http_->start();
  auto guard = std::make_shared<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(a.ioc.get_executor());
  for (int i = 0; i < a.config.io_threads; ++i)
    io_threads_.emplace_back([&a, guard] { a.ioc.run(); });
  if (!a.config.port_file.empty()) {
    std::ofstream(a.config.port_file + ".tmp") << port << "\n";
    fs::rename(a.config.port_file + ".tmp", a.config.port_file);
  }
  a.ready = true;
  started_ = true;
  spdlog::info("tensorslm-server listening on {}://{}:{} (role {}, store {}, data in {}, blobs in {}, {} I/O threads)",
               a.config.tls_enabled() ? "https" : "http", a.config.host, port, a.config.role, a.store->describe(),
               a.config.data_dir, blob_dir, a.config.io_threads);
  return port;
}

void Service::wait() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return stop_requested_ || stopped_; });
}

void Service::request_stop() {
  {
    std::lock_guard lk(mu_);
    stop_requested_ = true;
  }
  cv_.notify_all();
}

void Service::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (!started_) return;
  App& a = *app_;
  spdlog::info("shutting down: no new connections, checkpointing running jobs");
  a.ready = false;
  http_->stop();
  a.jobs->stop();
  a.blocking.join();
  a.requests.join();
  // Let in-flight responses go out, then stop the I/O threads.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  a.ioc.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  spdlog::info("stopped");
}

}  // namespace tsm::server
