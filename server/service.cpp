#include "service.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "http/http_server.h"
#include "spec/job_spec.h"
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

Service::Service(Config config) : app_(std::make_unique<App>()) { app_->config = std::move(config); }

Service::~Service() { stop(); }

uint16_t Service::start() {
  App& a = *app_;
  a.config.validate();
  namespace fs = std::filesystem;
  fs::create_directories(a.config.data_dir);
  a.models_dir = a.config.data_dir + "/models";
  fs::create_directories(a.models_dir);
  a.store = std::make_unique<SqliteStore>(a.config.data_dir + "/tensorslm.db");
  a.blobs = std::make_unique<BlobStore>(a.config.data_dir);
  a.auth = std::make_unique<Authenticator>(a.config.tokens);
  a.jobs = std::make_unique<JobService>(*a.store, *a.blobs, a.models_dir, a.config.workers, a.config.codec_threads,
                                        static_cast<size_t>(a.config.queue_capacity));
  if (!a.auth->enabled())
    spdlog::warn("auth is OFF: no tokens configured and listening on loopback {} (every request acts as admin)", a.config.host);
  else
    spdlog::info("auth on: {} token(s)", a.config.tokens.size());

  add_routes(a);

  a.metrics.add_source([&a](std::string& o) {
    o += "# HELP tensorslm_queue_depth Jobs waiting in the in-memory queue.\n# TYPE tensorslm_queue_depth gauge\n";
    o += "tensorslm_queue_depth " + std::to_string(a.jobs->queue_depth()) + "\n";
    o += "# HELP tensorslm_jobs_running Jobs on a worker now.\n# TYPE tensorslm_jobs_running gauge\n";
    o += "tensorslm_jobs_running " + std::to_string(a.jobs->running()) + "\n";
    o += "# HELP tensorslm_jobs Jobs in the store by state.\n# TYPE tensorslm_jobs gauge\n";
    auto counts = a.store->count_jobs_by_state();
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
  spdlog::info("tensorslm-server listening on {}://{}:{} (data in {}, {} I/O threads)", a.config.tls_enabled() ? "https" : "http", a.config.host, port,
               a.config.data_dir, a.config.io_threads);
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
