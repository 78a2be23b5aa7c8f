// Test helper: a small synchronous Boost.Beast HTTP server on 127.0.0.1 with an ephemeral port.
// Each connection is served on the accept thread, one request, then closed; the test supplies the
// handler. `requests()` counts what arrived, so retry behaviour can be asserted.
#pragma once
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tsm::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

struct Reply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  ///< sleep before replying (timeouts)
  bool drop = false;                   ///< close without replying
};

class LoopbackServer {
 public:
  using Handler = std::function<Reply(const http::request<http::string_body>&)>;

  explicit LoopbackServer(Handler h) : handler_(std::move(h)), acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    beast::error_code ec;
    // Wake the blocking accept with a connection of our own.
    net::io_context io;
    net::ip::tcp::socket s(io);
    s.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return count_; }
  std::vector<http::request<http::string_body>> seen() {
    std::lock_guard lk(mu_);
    return seen_;
  }

 private:
  void loop() {
    while (!stop_) {
      net::ip::tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) continue;
      beast::flat_buffer buf;
      http::request_parser<http::string_body> p;
      p.body_limit(size_t(1) << 30);
      http::read(sock, buf, p, ec);
      if (ec) continue;
      ++count_;
      {
        std::lock_guard lk(mu_);
        seen_.push_back(p.get());
      }
      Reply r = handler_(p.get());
      if (r.delay.count()) std::this_thread::sleep_for(r.delay);
      if (r.drop) continue;
      http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
      for (auto& [k, v] : r.headers) res.set(k, v);
      res.body() = r.body;
      if (r.status != 304) res.prepare_payload();
      res.keep_alive(false);
      http::write(sock, res, ec);
      sock.shutdown(net::ip::tcp::socket::shutdown_send, ec);
    }
  }
  Handler handler_;
  net::io_context ioc_;
  net::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> count_{0};
  std::mutex mu_;
  std::vector<http::request<http::string_body>> seen_;
  std::thread thread_;
};

}  // namespace tsm::testing
