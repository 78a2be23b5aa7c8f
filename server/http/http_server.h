// The HTTP/1.1 front: a listener and one session per connection, each on its own strand of the
// I/O threads. A session reads a header (fresh parser, header timeout), routes and authorizes it,
// then reads the body either into memory (body_max_bytes) or streamed into a BlobSink (uploads,
// upload_max_bytes, idle timeout between reads), runs the handler and writes its response.
// The session is one template over its stream: plain TCP (beast::tcp_stream) or TLS
// (beast::ssl_stream over it, config tls_cert / tls_key). With TLS every connection first has its
// first bytes inspected: a TLS handshake goes on with the context current at that moment
// (http/tls_context.h; SIGHUP reloads it for later connections), plain HTTP gets a 400 naming https.
// Invariant: no handler work beyond parsing/validation runs here; a failed body read leaves no file;
// with TLS configured no request is ever read or answered in the clear.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>

#include "config/auth.h"
#include "config/config.h"
#include "http/metrics_registry.h"
#include "http/router.h"
#include "http/tls_context.h"

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
  /// With config.tls_cert / tls_key set, loads them (throws tsm::Error, one line naming the file,
  /// when they cannot be used: the server then does not start).
  HttpServer(boost::asio::io_context& ioc, std::shared_ptr<HttpShared> shared);
  /// Binds and listens; returns the bound port (useful with port 0). Throws tsm::Error.
  uint16_t listen(const std::string& host, uint16_t port);
  /// Accepts connections and handles SIGHUP (reload_tls(); without TLS it only logs).
  void start();
  /// Stops accepting; open sessions finish their current request.
  void stop();
  /// Loads the configured certificate and key again for new connections; on failure logs and keeps
  /// the current ones. False when it did not swap (or TLS is off).
  bool reload_tls();

 private:
  void do_accept();
  void wait_for_sighup();
  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<HttpShared> shared_;
  std::shared_ptr<TlsContextStore> tls_;  ///< null: plain HTTP
  boost::asio::signal_set hup_;
};

}  // namespace tsm::server
