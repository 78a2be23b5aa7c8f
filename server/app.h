// Everything a handler may touch, built once by Service: config, stores, job service, metrics,
// auth, the route table, and a small blocking pool for upload validation and exports (so that
// neither file scans nor compression run on the I/O threads).
#pragma once
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>

#include "config/auth.h"
#include "config/config.h"
#include "http/metrics_registry.h"
#include "http/router.h"
#include "jobs/job_service.h"
#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

struct App {
  Config config;
  std::string models_dir;                   ///< <data_dir>/models/<upload sha>: extracted model directories
  std::unique_ptr<MetadataStore> store;
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<JobService> jobs;
  std::unique_ptr<Authenticator> auth;
  MetricsRegistry metrics;
  Router router;
  boost::asio::io_context ioc;
  boost::asio::thread_pool blocking{2};
  /// RunOn::Pool routes: handlers that parse untrusted bodies, and on a shared store every /v1 read
  /// (threads that mostly wait on the database, so more than the cores).
  boost::asio::thread_pool requests{4};
  std::atomic<bool> ready{false};
};

/// Registers every route of the v1 API and the operations endpoints (the table in api/routes.cpp).
void add_routes(App& app);

}  // namespace tsm::server
