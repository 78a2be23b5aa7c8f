#include "http/http_server.h"

#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <limits>
#include <optional>
#include <type_traits>

#include "common/error.h"
#include "common/utf8.h"
#include "http/problem.h"
#include "store/blob_store.h"

namespace tsm::server {

namespace beast = boost::beast;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

/// Beast body whose reader streams into a BlobSink (hashing as it writes); memory stays flat.
struct SinkBody {
  using value_type = std::shared_ptr<BlobSink>;
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& b) : body_(b) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      size_t n = 0;
      try {
        for (auto b : beast::buffers_range_ref(buffers)) {
          body_->write(b.data(), b.size());
          n += b.size();
        }
        ec = {};
      } catch (const std::exception& e) {
        spdlog::error("upload write failed: {}", e.what());
        ec = beast::errc::make_error_code(beast::errc::io_error);
      }
      return n;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

std::string new_request_id() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  char b[32];
  std::snprintf(b, sizeof b, "r%08llx%06llx", static_cast<unsigned long long>(base & 0xffffffff),
                static_cast<unsigned long long>(++counter));
  return b;
}

bool sane_request_id(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

/// "the path" / "query parameter 'k'" when that part of the decoded target is not UTF-8, else "".
std::string first_invalid_utf8(const Request& r) {
  if (!is_valid_utf8(r.path)) return "the path";
  for (const auto& [k, v] : r.query)
    if (!is_valid_utf8(k)) return "a query parameter name";
    else if (!is_valid_utf8(v)) return "query parameter '" + k + "'";
  return {};
}

/// A peer that has sent its FIN (shut down its sending side), whatever bytes are still unread.
bool peer_half_closed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

template <class Stream>
Stream make_stream(beast::tcp_stream&& tcp, ssl::context* ctx) {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>)
    return Stream(std::move(tcp));
  else
    return Stream(std::move(tcp), *ctx);
}

/// One connection, over a plain TCP stream (beast::tcp_stream) or TLS over it
/// (beast::ssl_stream<beast::tcp_stream>); everything but the handshake, the close and the
/// disconnect watch is the same code for both. The TLS session holds its own context, so a
/// certificate reload does not touch it.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  /// `early`: bytes already read from the connection (the TLS detector's), handled first.
  Session(beast::tcp_stream&& s, std::shared_ptr<HttpShared> sh, std::shared_ptr<ssl::context> ctx = nullptr,
          asio::const_buffer early = {})
      : ctx_(std::move(ctx)),
        stream_(make_stream<Stream>(std::move(s), ctx_.get())),
        body_timer_(stream_.get_executor()),
        sh_(std::move(sh)) {
    buffer_.commit(asio::buffer_copy(buffer_.prepare(early.size()), early));
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
  }

 private:
  const Config& cfg() const { return sh_->config; }
  /// The TCP layer (the stream itself when plain): timeouts, the socket, the close.
  beast::tcp_stream& transport() { return beast::get_lowest_layer(stream_); }

  void start() {
    if constexpr (kTls) {
      transport().expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(cfg().header_timeout_s)));
      stream_.async_handshake(ssl::stream_base::server, buffer_.data(),
                              [self = this->shared_from_this()](beast::error_code ec, size_t used) {
                                self->on_handshake(ec, used);
                              });
    } else {
      do_read();
    }
  }

  void on_handshake(beast::error_code ec, size_t used) {
    if (ec) {
      // An old protocol, no common cipher, an untrusting client, or a scanner: one log line.
      beast::error_code ignored;
      auto peer = transport().socket().remote_endpoint(ignored);
      spdlog::info("TLS handshake with {}:{} failed: {}", peer.address().to_string(), peer.port(), ec.message());
      return close_transport();
    }
    handshake_done_ = true;
    buffer_.consume(used);
    do_read();
  }

  void do_read() {
    hdr_.emplace();
    hdr_->header_limit(16 * 1024);
    hdr_->body_limit(std::numeric_limits<std::uint64_t>::max());  // real limit set per route below (1.74: none compares wrongly)
    str_.reset();
    up_.reset();
    route_ = nullptr;
    route_label_ = "unmatched";
    transport().expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(cfg().header_timeout_s)));
    http::async_read_header(stream_, buffer_, *hdr_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::eof || ec == ssl::error::stream_truncated)
      return close();
    t0_ = Clock::now();
    req_ = std::make_shared<Request>();
    req_->request_id = new_request_id();
    keep_alive_ = false;
    if (ec) {
      req_->target = "?";
      return finish_early(problem(http::status::bad_request, "malformed HTTP request: " + ec.message()));
    }
    auto& h = hdr_->get();
    keep_alive_ = h.keep_alive();
    req_->method = h.method();
    req_->target = std::string(h.target());
    req_->headers = h.base();
    if (auto rid = h.find("X-Request-Id"); rid != h.end() && sane_request_id(rid->value()))
      req_->request_id = std::string(rid->value());
    if (!split_target(req_->target, req_->path, req_->query))
      return finish_early(problem(http::status::bad_request, "malformed percent-encoding in the request target"));
    if (auto bad = first_invalid_utf8(*req_); !bad.empty())
      return finish_early(problem(http::status::bad_request, bad + " is not valid UTF-8 after percent-decoding"));
    auto m = sh_->router->match(req_->method, req_->path);
    if (!m.route) {
      if (!m.allow.empty()) {
        auto r = problem(http::status::method_not_allowed,
                         std::string(http::to_string(req_->method)) + " is not allowed on " + req_->path +
                             " (allowed: " + m.allow + ")");
        r.set(http::field::allow, m.allow);
        return finish_early(std::move(r));
      }
      return finish_early(problem(http::status::not_found, "no resource at " + req_->path + " (see /v1/openapi.json)"));
    }
    route_ = m.route;
    route_label_ = route_->pattern;
    req_->params = std::move(m.params);
    if (sh_->auth->enabled() && route_->perm != Perm::Public) {
      auto p = sh_->auth->authenticate(req_->header(http::field::authorization));
      if (!p) {
        auto r = problem(http::status::unauthorized,
                         "missing or unknown bearer token: send 'Authorization: Bearer <token>'");
        r.set(http::field::www_authenticate, "Bearer");
        return finish_early(std::move(r));
      }
      if (!p->allows(route_->perm))
        return finish_early(problem(http::status::forbidden, "token '" + p->name + "' lacks the scope for " +
                                                                 route_->pattern));
      req_->principal = *p;
    } else {
      req_->principal.name = "anonymous";
      req_->principal.admin = true;
    }
    const bool streamed = route_->body == BodyMode::Streamed;
    const uint64_t limit = streamed ? cfg().upload_max_bytes : cfg().body_max_bytes;
    if (auto len = hdr_->content_length(); len && *len > limit)
      return finish_early(problem(http::status::payload_too_large,
                                  "body of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                      std::to_string(limit) + " bytes for " + route_->pattern));
    bool expect_continue = beast::iequals(h[http::field::expect], "100-continue");
    auto start_body = [self = this->shared_from_this(), streamed, limit] {
      if (streamed) {
        std::shared_ptr<BlobSink> sink;
        try {
          sink = std::make_shared<BlobSink>(self->sh_->tmp_dir);
        } catch (const std::exception& e) {
          return self->finish_early(problem(http::status::internal_server_error, e.what()));
        }
        self->up_.emplace(std::move(*self->hdr_));
        self->up_->body_limit(limit);
        self->up_->get().body() = sink;
        self->read_upload_some();
      } else {
        self->str_.emplace(std::move(*self->hdr_));
        self->str_->body_limit(limit);
        self->arm_body_timer();
        http::async_read(self->stream_, self->buffer_, *self->str_,
                         [self](beast::error_code ec, size_t) { self->on_body(ec); });
      }
    };
    if (expect_continue) {
      static const std::string k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(k100), [self = this->shared_from_this(), start_body](beast::error_code ec, size_t) {
        if (ec) return self->close();
        start_body();
      });
    } else {
      start_body();
    }
  }

  /// Body reads are guarded by our own timer, not the stream's expiry: on expiry the read is
  /// cancelled but the socket stays open, so the client still gets a 408.
  /// One timer per body, not one per read: each read records progress; the timer re-arms itself
  /// for the remaining idle time and fires only after a real stall.
  void arm_body_timer() {
    last_progress_ = Clock::now();
    if (body_timer_armed_) return;
    transport().expires_never();
    body_timer_armed_ = true;
    wait_body_timer(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg().body_idle_timeout_s)));
  }

  void wait_body_timer(Clock::duration d) {
    body_timer_.expires_after(d);
    body_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || !self->body_timer_armed_) {
        self->body_timer_armed_ = false;
        return;
      }
      auto idle = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(self->cfg().body_idle_timeout_s));
      auto since = Clock::now() - self->last_progress_;
      if (since < idle) return self->wait_body_timer(idle - since);
      self->body_timer_armed_ = false;
      self->body_timed_out_ = true;
      beast::error_code ignored;
      self->transport().socket().cancel(ignored);
    });
  }

  void stop_body_timer() {
    body_timer_armed_ = false;
    body_timer_.cancel();
  }

  /// Upload body. A Content-Length body bypasses the parser: 1 MiB socket reads go straight to the
  /// sink (the parser reads 64 KiB at a time and copies each through its buffer). A chunked body
  /// goes through the parser.
  void read_upload_some() {
    arm_body_timer();
    if (!up_->chunked() && up_->content_length()) {
      raw_left_ = *up_->content_length_remaining();
      raw_buf_.resize(std::min<uint64_t>(raw_left_, kRawChunk));
      // Bytes that arrived with the header are already in buffer_.
      size_t n = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), raw_left_));
      if (n > 0 && !sink_write(static_cast<const char*>(buffer_.data().data()), n)) return;
      buffer_.consume(n);
      return read_raw();
    }
    http::async_read_some(stream_, buffer_, *up_,
                          [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_upload_some(ec); });
  }

  bool sink_write(const char* p, size_t n) {
    try {
      up_->get().body()->write(p, n);
      raw_left_ -= n;
      return true;
    } catch (const std::exception& e) {
      spdlog::error("[{}] upload write failed: {}", req_->request_id, e.what());
      on_upload_done(beast::errc::make_error_code(beast::errc::io_error));
      return false;
    }
  }

  void read_raw() {
    if (raw_left_ == 0) return on_upload_done({});
    last_progress_ = Clock::now();
    size_t want = static_cast<size_t>(std::min<uint64_t>(raw_left_, raw_buf_.size()));
    stream_.async_read_some(asio::buffer(raw_buf_.data(), want),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec)
                                return self->on_upload_done(
                                    ec == asio::error::eof || ec == ssl::error::stream_truncated ? http::error::partial_message : ec);
                              if (self->sink_write(self->raw_buf_.data(), n)) self->read_raw();
                            });
  }

  void on_upload_some(beast::error_code ec) {
    if (!ec && !up_->is_done()) return read_upload_some();
    on_upload_done(ec);
  }

  void on_upload_done(beast::error_code ec) {
    stop_body_timer();
    raw_buf_ = {};
    if (ec) return body_failed(ec);
    req_->upload = up_->get().body();
    up_->get().body().reset();
    dispatch();
  }

  void on_body(beast::error_code ec) {
    stop_body_timer();
    if (ec) return body_failed(ec);
    req_->body = std::move(str_->get().body());
    dispatch();
  }

  void body_failed(beast::error_code ec) {
    // Drop the sink first: an interrupted upload leaves no file behind.
    if (up_) up_->get().body().reset();
    keep_alive_ = false;
    if (ec == http::error::body_limit)
      return finish_early(problem(http::status::payload_too_large,
                                  "body exceeds the limit of " +
                                      std::to_string(route_ && route_->body == BodyMode::Streamed
                                                         ? cfg().upload_max_bytes
                                                         : cfg().body_max_bytes) +
                                      " bytes for " + route_label_));
    if (body_timed_out_ || ec == beast::error::timeout) {
      body_timed_out_ = false;
      spdlog::warn("[{}] {} {}: body stalled for {} s; closing", req_->request_id, http::to_string(req_->method),
                   req_->target, cfg().body_idle_timeout_s);
      return finish_early(problem(http::status::request_timeout,
                                  "the request body stalled for more than " +
                                      std::to_string(static_cast<int>(cfg().body_idle_timeout_s)) + " s"));
    }
    if (ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == ssl::error::stream_truncated) {
      spdlog::warn("[{}] {} {}: client went away mid-body ({})", req_->request_id, http::to_string(req_->method),
                   req_->target, ec.message());
      return close();
    }
    finish_early(problem(http::status::bad_request, "malformed request body: " + ec.message()));
  }

  void dispatch() {
    transport().expires_never();
    auto self = this->shared_from_this();
    auto once = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self, once](Response r) {
      if (once->exchange(true)) return;
      asio::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
    };
    replied_ = once;
    if (route_->run == RunOn::IoThread) {
      invoke(route_->handler, req_, respond);
      if (!once->load()) watch_for_disconnect(++watch_gen_);
      return;
    }
    // The session does nothing else while the handler runs on the pool; the disconnect watch
    // starts back on the strand once the handler has returned (it may have set on_disconnect).
    asio::post(*sh_->pool, [self, once, respond, handler = &route_->handler, req = req_] {
      invoke(*handler, req, respond);
      asio::post(self->stream_.get_executor(), [self, once] {
        if (!once->load()) self->watch_for_disconnect(++self->watch_gen_);
      });
    });
  }

  /// Runs a handler; whatever it throws becomes the problem+json reply (error paths cannot throw).
  static void invoke(const Handler& handler, const RequestPtr& req, const Respond& respond) {
    try {
      handler(req, respond);
    } catch (const std::exception& e) {
      if (!dynamic_cast<const Error*>(&e)) spdlog::error("[{}] handler failed: {}", req->request_id, e.what());
      respond(problem_for(e));
    }
  }

  /// While a reply is pending, notice a client that closes its end: the socket turns readable
  /// and a peek reads 0 bytes (EOF) or fails. Pipelined bytes end the watch (the client is there);
  /// over TLS the bytes may be the client's close_notify, so there its FIN decides.
  void watch_for_disconnect(uint64_t gen) {
    transport().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this(), gen](beast::error_code ec) {
      if (gen != self->watch_gen_ || !self->replied_ || self->replied_->load() || !self->transport().socket().is_open())
        return;
      char c;
      const int fd = self->transport().socket().native_handle();
      ssize_t n = ec ? -1 : ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0 && (!kTls || !peer_half_closed(fd))) return;
      if (n < 0 && !ec && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return self->watch_for_disconnect(gen);
      if (self->replied_->exchange(true)) return;  // the reply won the race: it goes out as usual
      spdlog::info("[{}] {} {}: client disconnected before the reply; dropping it", self->req_->request_id,
                   http::to_string(self->req_->method), self->req_->target);
      if (self->req_->on_disconnect) std::exchange(self->req_->on_disconnect, nullptr)();
      self->status_ = 499;  // nginx's "client closed request"
      self->sh_->metrics->observe_request(self->route_label_, self->status_,
                                          std::chrono::duration<double>(Clock::now() - self->t0_).count());
      self->close();
    });
  }

  void finish_early(StringResponse r) {
    // The body (if any) was not read: the connection cannot be reused.
    keep_alive_ = false;
    send(std::move(r));
  }

  void send(Response r) {
    ++watch_gen_;  // a pending disconnect watch is stale now
    std::visit(
        [this](auto& msg) {
          msg.keep_alive(keep_alive_);
          msg.set(http::field::server, "tensorslm-server/" TSM_VERSION);
          msg.set("X-Request-Id", req_->request_id);
          status_ = static_cast<int>(msg.result_int());
          if (req_->method == http::verb::head) {
            // HEAD: the GET handler's headers (Content-Length included), no body.
            http::response<http::empty_body> head{msg.result(), msg.version()};
            head.base() = msg.base();
            write(std::move(head));
          } else {
            write(std::move(msg));
          }
        },
        r);
  }

  template <class Msg>
  void write(Msg&& msg) {
    auto sp = std::make_shared<std::decay_t<Msg>>(std::move(msg));
    res_ = sp;
    transport().expires_after(std::chrono::seconds(300));
    http::async_write(stream_, *sp, [self = this->shared_from_this(), close = sp->need_eof()](beast::error_code ec,
                                                                                       size_t bytes) {
      self->on_write(ec, bytes, close);
    });
  }

  void on_write(beast::error_code ec, size_t bytes, bool close_after) {
    double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    sh_->metrics->observe_request(route_label_, status_, secs);
    spdlog::info("[{}] {} {} {} {}B {:.1f}ms {}", req_->request_id, http::to_string(req_->method), req_->target,
                 status_, bytes, secs * 1e3, req_->principal.name);
    res_.reset();
    req_.reset();
    if (ec || close_after) return close();
    do_read();
  }

  /// Ends the connection: over TLS with a close_notify first (bounded: a peer that never answers
  /// it is cut off after 5 s), then the TCP close.
  void close() {
    if (closing_) return;
    closing_ = true;
    if constexpr (kTls) {
      if (handshake_done_ && transport().socket().is_open()) {
        transport().expires_after(std::chrono::seconds(5));
        stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close_transport(); });
        return;
      }
    }
    close_transport();
  }

  void close_transport() {
    beast::error_code ec;
    transport().socket().shutdown(tcp::socket::shutdown_send, ec);
    transport().close();
  }

  std::shared_ptr<ssl::context> ctx_;  // TLS: outlives stream_ (declared first); null when plain
  Stream stream_;
  bool handshake_done_ = false, closing_ = false;
  boost::asio::steady_timer body_timer_;
  bool body_timed_out_ = false, body_timer_armed_ = false;
  static constexpr size_t kRawChunk = 1 << 20;
  std::vector<char> raw_buf_;  // (<= kRawChunk) bytes: socket reads of a Content-Length upload
  uint64_t raw_left_ = 0;      // body bytes still owed by the client
  Clock::time_point last_progress_;
  beast::flat_buffer buffer_{1 << 20};
  std::shared_ptr<HttpShared> sh_;
  std::optional<http::request_parser<http::empty_body>> hdr_;
  std::optional<http::request_parser<http::string_body>> str_;
  std::optional<http::request_parser<SinkBody>> up_;
  const Route* route_ = nullptr;
  std::string route_label_;
  RequestPtr req_;
  std::shared_ptr<std::atomic<bool>> replied_;  // the current request's "Respond was called" flag
  uint64_t watch_gen_ = 0;                      // disconnect watches of older requests are ignored
  std::shared_ptr<void> res_;
  bool keep_alive_ = false;
  int status_ = 0;
  Clock::time_point t0_;
};

using PlainSession = Session<beast::tcp_stream>;
using TlsSession = Session<beast::ssl_stream<beast::tcp_stream>>;

/// The first step of a connection to a TLS listener: reads until its first bytes show whether a
/// TLS handshake is starting (beast::async_detect_ssl). TLS goes on as a TlsSession with the
/// context current now; plain HTTP is answered with a 400 naming https, then closed.
class TlsDetector : public std::enable_shared_from_this<TlsDetector> {
 public:
  TlsDetector(tcp::socket&& s, std::shared_ptr<HttpShared> sh, std::shared_ptr<TlsContextStore> tls)
      : stream_(std::move(s)), sh_(std::move(sh)), tls_(std::move(tls)) {}

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(self->sh_->config.header_timeout_s)));
      beast::async_detect_ssl(self->stream_, self->buffer_,
                              [self](beast::error_code ec, bool is_tls) { self->on_detect(ec, is_tls); });
    });
  }

 private:
  void on_detect(beast::error_code ec, bool is_tls) {
    if (ec) return close();  // gone, or silent past the header timeout
    if (is_tls) {
      std::make_shared<TlsSession>(std::move(stream_), sh_, tls_->current(), buffer_.data())->run();
      return;
    }
    beast::error_code ignored;
    auto peer = stream_.socket().remote_endpoint(ignored);
    spdlog::warn("plain HTTP from {}:{} on the TLS port: answered 400", peer.address().to_string(), peer.port());
    res_ = problem(http::status::bad_request, "this port speaks HTTPS only: use https:// (TLS 1.2 or later)");
    res_.keep_alive(false);
    res_.set(http::field::server, "tensorslm-server/" TSM_VERSION);
    stream_.expires_after(std::chrono::seconds(5));
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      // Half-close and read what the client still sends until it closes: closing with its request
      // unread would reset the connection and could destroy the 400 before the client reads it.
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      self->drain();
    });
  }

  void drain() {
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();  // EOF, or the 5 s bound
      self->drain();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{1 << 20};
  std::shared_ptr<HttpShared> sh_;
  std::shared_ptr<TlsContextStore> tls_;
  StringResponse res_;
  char scratch_[4096];
};

}  // namespace

HttpServer::HttpServer(asio::io_context& ioc, std::shared_ptr<HttpShared> shared)
    : ioc_(ioc), acceptor_(asio::make_strand(ioc)), shared_(std::move(shared)), hup_(asio::make_strand(ioc)) {
  const Config& c = shared_->config;
  if (c.tls_enabled()) {
    tls_ = std::make_shared<TlsContextStore>(c.tls_cert, c.tls_key);
    const CertInfo& i = tls_->info_at_start();
    spdlog::info("TLS on (TLS 1.2+, ECDHE + AEAD): certificate {} sha256 {} (expires {}); SIGHUP reloads {} and {}",
                 i.subject, i.sha256, i.not_after, c.tls_cert, c.tls_key);
  }
}

bool HttpServer::reload_tls() { return tls_ && tls_->reload(); }

void HttpServer::wait_for_sighup() {
  hup_.async_wait([this](beast::error_code ec, int) {
    if (ec) return;  // stop() cancelled the wait
    spdlog::info("SIGHUP received");
    // Two small PEM files, once per signal: read here, on the signal set's strand.
    if (!tls_) spdlog::info("TLS is off: no certificate to reload");
    reload_tls();
    wait_for_sighup();
  });
}

uint16_t HttpServer::listen(const std::string& host, uint16_t port) {
  if (!tls_ && !shared_->config.is_loopback())
    spdlog::warn("insecure_http: serving plain HTTP on {} (not loopback); bearer tokens and data cross the network "
                 "unencrypted. Configure tls_cert and tls_key (--tls-cert, --tls-key) to serve HTTPS",
                 host);
  beast::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw Error("listen: bad address '" + host + "'");
  tcp::endpoint ep{addr, port};
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw Error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  return acceptor_.local_endpoint().port();
}

void HttpServer::start() {
  beast::error_code ec;
  hup_.add(SIGHUP, ec);
  if (ec) spdlog::warn("cannot handle SIGHUP ({}): certificate reload by signal is off", ec.message());
  else wait_for_sighup();
  do_accept();
}

void HttpServer::stop() {
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  asio::post(hup_.get_executor(), [this] {
    beast::error_code ec;
    hup_.cancel(ec);
  });
}

void HttpServer::do_accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      if (tls_)
        std::make_shared<TlsDetector>(std::move(socket), shared_, tls_)->run();
      else
        std::make_shared<PlainSession>(beast::tcp_stream(std::move(socket)), shared_)->run();
    }
    do_accept();
  });
}

}  // namespace tsm::server
