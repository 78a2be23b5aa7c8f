// The whole server as one object (used by main, by in-process tests and by the benchmarks):
// opens the store and blob directory, recovers the job queue, registers the routes, listens, and
// runs the I/O threads. stop() is the graceful shutdown: stop accepting, checkpoint running jobs
// back to 'queued', finish in-flight responses, join every thread.
#pragma once
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "app.h"

namespace tsm::server {

class HttpServer;

class Service {
 public:
  explicit Service(Config config);
  ~Service();
  /// Returns the bound port (config.port 0 = ephemeral). Throws tsm::Error on bad config/data dir.
  uint16_t start();
  /// Blocks until request_stop() or stop() is called.
  void wait();
  /// Wakes wait() (safe from any thread, e.g. a signal thread); the waiter then calls stop().
  void request_stop();
  void stop();
  App& app() { return *app_; }

 private:
  std::unique_ptr<App> app_;
  std::unique_ptr<HttpServer> http_;
  std::vector<std::thread> io_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false, stopped_ = false, started_ = false;
};

/// Configures spdlog's default logger: level and text or JSON lines on stderr.
void setup_logging(const Config& c);

}  // namespace tsm::server
