// The HTTP/1.1 front: a listener and one session per connection, each on its own strand of the
// I/O threads. A session reads a header (fresh parser, header timeout), routes and authorizes it,
// then reads the body either into memory (body_max_bytes) or streamed into a BlobSink (uploads,
// upload_max_bytes, idle timeout between reads), runs the handler and writes its response.
// Invariant: no handler work beyond parsing/validation runs here; a failed body read leaves no file.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>

#include "config/auth.h"
#include "config/config.h"
#include "http/metrics_registry.h"
#include "http/router.h"

namespace tsm::server {

struct HttpShared {
  Config config;
  const Router* router = nullptr;
  const Authenticator* auth = nullptr;
  MetricsRegistry* metrics = nullptr;
  std::string tmp_dir;          ///< where streamed bodies land before validation
  boost::asio::thread_pool* pool = nullptr;  ///< runs the handlers of RunOn::Pool routes
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& ioc, std::shared_ptr<HttpShared> shared);
  /// Binds and listens; returns the bound port (useful with port 0). Throws tsm::Error.
  uint16_t listen(const std::string& host, uint16_t port);
  void start();
  /// Stops accepting; open sessions finish their current request.
  void stop();

 private:
  void do_accept();
  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<HttpShared> shared_;
};

}  // namespace tsm::server
