#include "lib/http_client.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/atomic_file.h"
#include "common/sha256.h"

namespace tsm::client {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kMaxInMemoryBody = size_t(256) << 20;  // JSON/protobuf replies; artifacts go through download()

struct OpResult {
  beast::error_code ec;
  size_t n = 0;
};

/// Runs one asynchronous operation to completion on `ioc` (the stream's expiry bounds it).
template <class Start>
OpResult run_io(net::io_context& ioc, Start&& start) {
  OpResult r;
  bool done = false;
  start([&](beast::error_code ec, std::size_t n) {
    r.ec = ec;
    r.n = n;
    done = true;
  });
  ioc.restart();
  ioc.run();
  if (!done) r.ec = net::error::operation_aborted;
  return r;
}

bool method_idempotent(const std::string& m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS";
}

/// A failure before any byte of the request left this host: safe to retry even for POST.
struct ConnectFailure : NetworkError {
  using NetworkError::NetworkError;
};

/// One TCP (optionally TLS) connection for one exchange.
class Connection {
 public:
  Connection(net::io_context& ioc, ssl::context* tls_ctx, const Url& url, const HttpOptions& o) : ioc_(ioc), o_(o) {
    if (url.tls())
      tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, *tls_ctx);
    else
      plain_ = std::make_unique<beast::tcp_stream>(ioc);
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) throw ConnectFailure("cannot resolve '" + url.host + "': " + ec.message());
    lowest().expires_after(o.connect_timeout);
    auto r = run_io(ioc, [&](auto h) {
      lowest().async_connect(endpoints, [h](beast::error_code e, const tcp::endpoint&) mutable { h(e, 0); });
    });
    if (r.ec) throw ConnectFailure("cannot connect to " + url.origin() + ": " + r.ec.message());
    if (tls_) {
      if (!SSL_set_tlsext_host_name(tls_->native_handle(), url.host.c_str()))
        throw ConnectFailure("cannot set TLS server name '" + url.host + "'");
      if (o.tls_verify) tls_->set_verify_callback(ssl::host_name_verification(url.host));
      lowest().expires_after(o.connect_timeout);
      auto hs = run_io(ioc, [&](auto h) {
        tls_->async_handshake(ssl::stream_base::client, [h](beast::error_code e) mutable { h(e, 0); });
      });
      if (hs.ec) throw ConnectFailure("TLS handshake with " + url.origin() + " failed: " + hs.ec.message());
    }
  }

  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  template <class F>
  OpResult io(F&& f) {
    lowest().expires_after(o_.io_timeout);
    if (tls_) return run_io(ioc_, [&](auto h) { f(*tls_, h); });
    return run_io(ioc_, [&](auto h) { f(*plain_, h); });
  }

 private:
  net::io_context& ioc_;
  const HttpOptions& o_;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
};

/// End of stream on a TLS connection closed without close_notify counts as end of stream.
bool is_eof(const beast::error_code& ec) { return ec == http::error::end_of_stream || ec == net::error::eof || ec == ssl::error::stream_truncated; }

std::string io_what(const char* step, const beast::error_code& ec) {
  if (ec == beast::error::timeout) return std::string(step) + ": timed out";
  return std::string(step) + ": " + ec.message();
}

template <class Body>
void fill_common(http::request<Body>& req, const HttpOptions& o, const Url& url, const HttpRequest& r) {
  req.method_string(r.method);
  req.target(url.base_path + r.target);
  req.version(11);
  req.set(http::field::host, url.host + ":" + url.port);
  req.set(http::field::user_agent, o.user_agent);
  req.keep_alive(false);
  if (!o.token.empty()) req.set(http::field::authorization, "Bearer " + o.token);
  for (const auto& [k, v] : r.headers) req.set(k, v);
  if (!r.content_type.empty()) req.set(http::field::content_type, r.content_type);
}

template <class Fields>
std::map<std::string, std::string> lower_headers(const Fields& f) {
  std::map<std::string, std::string> out;
  for (const auto& field : f) {
    std::string k(field.name_string());
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out[k] = std::string(field.value());
  }
  return out;
}

/// Retry-After in seconds (delta form only), capped; nullopt when absent or an HTTP date.
std::optional<std::chrono::milliseconds> retry_after(const HttpResponse& r, std::chrono::milliseconds cap) {
  auto v = r.header("retry-after");
  if (v.empty() || !std::all_of(v.begin(), v.end(), ::isdigit) || v.size() > 6) return std::nullopt;
  return std::min(cap, std::chrono::milliseconds(std::stoll(v) * 1000));
}

}  // namespace

struct HttpClient::Impl {
  net::io_context ioc;
  std::unique_ptr<ssl::context> tls_ctx;
  std::mt19937_64 rng{std::random_device{}()};
};

HttpClient::HttpClient(HttpOptions opts) : opts_(std::move(opts)), url_(parse_url(opts_.server)), impl_(new Impl) {
  if (url_.tls()) {
    impl_->tls_ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    impl_->tls_ctx->set_default_verify_paths();
    if (!opts_.ca_file.empty()) impl_->tls_ctx->load_verify_file(opts_.ca_file);
    impl_->tls_ctx->set_verify_mode(opts_.tls_verify ? ssl::verify_peer : ssl::verify_none);
  }
}

HttpClient::~HttpClient() { delete impl_; }

std::chrono::milliseconds HttpClient::backoff_delay(int retry) {
  double cap = static_cast<double>(opts_.backoff_base.count()) * std::pow(2.0, std::min(retry, 30));
  cap = std::min(cap, static_cast<double>(opts_.backoff_max.count()));
  std::uniform_real_distribution<double> u(0.0, cap);
  return std::chrono::milliseconds(static_cast<int64_t>(u(impl_->rng)));
}

namespace {

/// One attempt of an in-memory exchange.
HttpResponse exchange_once(net::io_context& ioc, ssl::context* tls, const Url& url, const HttpOptions& o,
                           const HttpRequest& r) {
  Connection c(ioc, tls, url, o);
  http::request<http::string_body> req;
  fill_common(req, o, url, r);
  req.body() = r.body;
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT") req.prepare_payload();
  auto w = c.io([&](auto& s, auto h) { http::async_write(s, req, h); });
  if (w.ec) throw NetworkError(io_what(("sending " + r.method + " " + r.target).c_str(), w.ec));
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(kMaxInMemoryBody);
  if (r.method == "HEAD") p.skip(true);
  auto rd = c.io([&](auto& s, auto h) { http::async_read(s, buf, p, h); });
  if (rd.ec && !(is_eof(rd.ec) && p.is_done())) throw NetworkError(io_what(("reading reply to " + r.method + " " + r.target).c_str(), rd.ec));
  HttpResponse out;
  out.status = p.get().result_int();
  out.headers = lower_headers(p.get().base());
  out.body = std::move(p.get().body());
  return out;
}

}  // namespace

HttpResponse HttpClient::send(const HttpRequest& r) {
  const bool idem = r.idempotent || method_idempotent(r.method);
  const int attempts = std::max(1, opts_.max_attempts);
  for (int a = 0;; ++a) {
    try {
      HttpResponse resp = exchange_once(impl_->ioc, impl_->tls_ctx.get(), url_, opts_, r);
      if (idem && retryable_status(resp.status) && a + 1 < attempts) {
        std::this_thread::sleep_for(retry_after(resp, opts_.backoff_max).value_or(backoff_delay(a)));
        continue;
      }
      return resp;
    } catch (const ConnectFailure& e) {  // nothing was sent: retry any method
      if (a + 1 >= attempts) throw NetworkError(e.what());
    } catch (const NetworkError&) {
      if (!idem || a + 1 >= attempts) throw;
    }
    std::this_thread::sleep_for(backoff_delay(a));
  }
}

HttpResponse HttpClient::checked(const HttpRequest& req) {
  HttpResponse r = send(req);
  if (r.status >= 400)
    throw HttpError(r.status, req.method + " " + req.target + ": HTTP " + std::to_string(r.status) + ": " + problem_text(r.body), r.body);
  return r;
}

HttpResponse HttpClient::get(const std::string& target) {
  HttpRequest r;
  r.target = target;
  return checked(r);
}

HttpResponse HttpClient::post_json(const std::string& target, const std::string& json) {
  HttpRequest r;
  r.method = "POST";
  r.target = target;
  r.body = json;
  r.content_type = "application/json";
  return checked(r);
}

HttpResponse HttpClient::upload_file(const std::string& target, const std::string& path, const std::string& content_type,
                                     const Progress& progress) {
  // Not retried automatically except when the connection could not be made: the caller owns the
  // decision to send a large body twice.
  const int attempts = std::max(1, opts_.max_attempts);
  for (int a = 0;; ++a) {
    try {
      Connection c(impl_->ioc, impl_->tls_ctx.get(), url_, opts_);
      http::request<http::file_body> req;
      HttpRequest meta;
      meta.method = "POST";
      meta.target = target;
      meta.content_type = content_type;
      fill_common(req, opts_, url_, meta);
      beast::error_code ec;
      req.body().open(path.c_str(), beast::file_mode::scan, ec);
      if (ec) throw Error("cannot open '" + path + "': " + ec.message());
      req.prepare_payload();
      const uint64_t total = req.body().size();
      http::request_serializer<http::file_body> sr{req};
      auto wh = c.io([&](auto& s, auto h) { http::async_write_header(s, sr, h); });
      if (wh.ec) throw NetworkError(io_what("sending upload header", wh.ec));
      uint64_t done = 0;
      if (progress) progress(0, total);
      while (!sr.is_done()) {
        auto w = c.io([&](auto& s, auto h) { http::async_write_some(s, sr, h); });
        if (w.ec) throw NetworkError(io_what(("uploading '" + path + "'").c_str(), w.ec));
        done = std::min<uint64_t>(total, done + w.n);
        if (progress) progress(done, total);
      }
      beast::flat_buffer buf;
      http::response_parser<http::string_body> p;
      p.body_limit(kMaxInMemoryBody);
      auto rd = c.io([&](auto& s, auto h) { http::async_read(s, buf, p, h); });
      if (rd.ec && !(is_eof(rd.ec) && p.is_done())) throw NetworkError(io_what("reading upload reply", rd.ec));
      HttpResponse out;
      out.status = p.get().result_int();
      out.headers = lower_headers(p.get().base());
      out.body = std::move(p.get().body());
      if (out.status >= 400)
        throw HttpError(out.status, "POST " + target + ": HTTP " + std::to_string(out.status) + ": " + problem_text(out.body), out.body);
      return out;
    } catch (const ConnectFailure& e) {
      if (a + 1 >= attempts) throw NetworkError(e.what());
    }
    std::this_thread::sleep_for(backoff_delay(a));
  }
}

namespace {

DownloadResult download_once(net::io_context& ioc, ssl::context* tls, const Url& url, const HttpOptions& o,
                             const std::string& target, const std::string& dest, std::optional<uint64_t> expected_size,
                             const std::string& expected_sha, const std::string& inm, const Progress& progress,
                             HttpResponse* error_reply) {
  Connection c(ioc, tls, url, o);
  HttpRequest meta;
  meta.target = target;
  if (!inm.empty()) meta.headers["If-None-Match"] = inm;
  http::request<http::empty_body> req;
  fill_common(req, o, url, meta);
  auto w = c.io([&](auto& s, auto h) { http::async_write(s, req, h); });
  if (w.ec) throw NetworkError(io_what(("sending GET " + target).c_str(), w.ec));

  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> p;
  p.body_limit(std::numeric_limits<std::uint64_t>::max());
  auto rh = c.io([&](auto& s, auto h) { http::async_read_header(s, buf, p, h); });
  if (rh.ec) throw NetworkError(io_what(("reading reply to GET " + target).c_str(), rh.ec));
  DownloadResult res;
  const int status = p.get().result_int();
  res.etag = std::string(p.get()[http::field::etag]);
  if (status == 304) {
    res.not_modified = true;
    return res;
  }
  const uint64_t total = p.content_length() ? *p.content_length() : 0;
  if (status == 200 && expected_size && p.content_length() && *p.content_length() != *expected_size)
    throw IntegrityError("GET " + target + ": server announces " + std::to_string(*p.content_length()) +
                         " bytes, the manifest says " + std::to_string(*expected_size));

  std::vector<char> chunk(size_t(1) << 16);  // (65536) bytes, one read step
  std::string error_body;
  std::unique_ptr<AtomicFileWriter> out;
  Sha256 sha;
  if (status == 200) out = std::make_unique<AtomicFileWriter>(dest);
  uint64_t got = 0;
  if (progress && out) progress(0, total);
  while (!p.is_done()) {
    p.get().body().data = chunk.data();
    p.get().body().size = chunk.size();
    auto r = c.io([&](auto& s, auto h) { http::async_read(s, buf, p, h); });
    if (r.ec && r.ec != http::error::need_buffer && !(is_eof(r.ec) && p.is_done()))
      throw NetworkError(io_what(("downloading " + target).c_str(), r.ec));
    const size_t n = chunk.size() - p.get().body().size;
    if (out) {
      out->write(chunk.data(), n);
      sha.update(chunk.data(), n);
      got += n;
      if (expected_size && got > *expected_size)
        throw IntegrityError("GET " + target + ": body is longer than the expected " + std::to_string(*expected_size) + " bytes");
      if (progress) progress(got, total);
    } else if (error_body.size() < 65536) {
      error_body.append(chunk.data(), std::min<size_t>(n, 65536 - error_body.size()));
    }
  }
  if (!out) {
    error_reply->status = status;
    error_reply->headers = lower_headers(p.get().base());
    error_reply->body = std::move(error_body);
    return res;
  }
  res.bytes = got;
  res.sha256 = sha.hex_digest();
  if (expected_size && got != *expected_size)
    throw IntegrityError("GET " + target + ": got " + std::to_string(got) + " bytes, expected " + std::to_string(*expected_size));
  if (!expected_sha.empty() && res.sha256 != expected_sha)
    throw IntegrityError("GET " + target + ": sha256 " + res.sha256 + " does not match the expected " + expected_sha);
  out->commit();
  return res;
}

}  // namespace

DownloadResult HttpClient::download(const std::string& target, const std::string& dest, std::optional<uint64_t> expected_size,
                                    const std::string& expected_sha256, const std::string& if_none_match,
                                    const Progress& progress) {
  const int attempts = std::max(1, opts_.max_attempts);
  for (int a = 0;; ++a) {
    try {
      HttpResponse err;
      DownloadResult r = download_once(impl_->ioc, impl_->tls_ctx.get(), url_, opts_, target, dest, expected_size,
                                       expected_sha256, if_none_match, progress, &err);
      if (err.status == 0) return r;
      if (!(retryable_status(err.status) && a + 1 < attempts))
        throw HttpError(err.status, "GET " + target + ": HTTP " + std::to_string(err.status) + ": " + problem_text(err.body), err.body);
      std::this_thread::sleep_for(retry_after(err, opts_.backoff_max).value_or(backoff_delay(a)));
      continue;
    } catch (const NetworkError& e) {
      if (a + 1 >= attempts) throw NetworkError(e.what());
    }
    std::this_thread::sleep_for(backoff_delay(a));
  }
}

std::string problem_text(const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (j.is_object()) {
      if (j.contains("detail") && j["detail"].is_string()) return j["detail"].get<std::string>();
      if (j.contains("title") && j["title"].is_string()) return j["title"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return body.size() > 300 ? body.substr(0, 300) + "..." : body;
}

bool retryable_status(int s) { return s == 408 || s == 425 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

}  // namespace tsm::client
