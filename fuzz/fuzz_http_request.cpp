// Fuzz target: HTTP request parsing as server/http/http_server.cpp configures it, on the real route
// table. The input is the bytes a client sends on a connection. As the session does: a
// request_parser<empty_body> with header_limit 16 KiB and no body limit reads the header; the
// target is split and percent-decoded (router.cpp split_target) and checked for UTF-8 (as
// first_invalid_utf8 in http_server.cpp), the route matched (api/routes.cpp add_routes on a
// Router), the Authorization header authenticated, Content-Length compared with the route's limit
// (Config defaults), then the header parser moves into a request_parser<string_body> with that body
// limit that reads the rest (a streamed upload's chunked body goes through the parser the same way;
// the server gives it a file body). Every problem response the session would send is built
// (problem(), which must never throw on the bytes it quotes).
#include <boost/beast/core/buffers_prefix.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <limits>

#include "api/routes.h"
#include "app.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "config/auth.h"
#include "config/config.h"
#include "fuzz_util.h"
#include "http/problem.h"
#include "http/router.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tsm::server::problem;

/// Feeds `in` to the parser as read loops do (all buffered bytes, put() until it stops using them);
/// `in` keeps what was not consumed. Returns the parser's error (need_more: the input ended early).
template <class Parser>
beast::error_code feed(Parser& p, std::string_view& in, bool header_only) {
  beast::error_code ec;
  while (!(header_only ? p.is_header_done() : p.is_done())) {
    if (!in.empty()) {
      const size_t used = p.put(boost::asio::buffer(in.data(), in.size()), ec);
      in.remove_prefix(used);
      if (ec && ec != http::error::need_more) return ec;
      ec = {};
      if (used > 0) continue;
      // no progress: the parser needs bytes past the input's end
    }
    if (header_only) return http::error::need_more;
    p.put_eof(ec);  // the connection closed: ends a body read until EOF, else partial_message
    return ec;
  }
  return ec;
}

std::string first_invalid_utf8(const tsm::server::Request& r) {  // as http_server.cpp
  if (!tsm::is_valid_utf8(r.path)) return "the path";
  for (const auto& [k, v] : r.query)
    if (!tsm::is_valid_utf8(k)) return "a query parameter name";
    else if (!tsm::is_valid_utf8(v)) return "query parameter '" + k + "'";
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm::server;
  static App* app = [] {
    auto* a = new App;  // the route table only; never destroyed (its pools idle)
    add_routes(*a);
    return a;
  }();
  static const Authenticator auth({TokenConfig{"ci", tsm::sha256_hex("secret"), {"admin"}, {}}});
  const Config& cfg = app->config;
  std::string_view in = tsm::fuzz::text(data, size);
  // Requests of a keep-alive connection, one after another, as the session loops.
  for (int n = 0; n < 8 && !in.empty(); ++n) {
    http::request_parser<http::empty_body> hdr;
    hdr.header_limit(16 * 1024);
    hdr.body_limit(std::numeric_limits<std::uint64_t>::max());
    beast::error_code ec = feed(hdr, in, true);
    if (ec == http::error::need_more) return 0;  // the session would wait for more, then time out
    if (ec) {
      (void)problem(http::status::bad_request, "malformed HTTP request: " + ec.message());
      return 0;
    }
    auto& h = hdr.get();
    const bool keep_alive = h.keep_alive();
    Request req;
    req.method = h.method();
    req.target = std::string(h.target());
    req.headers = h.base();
    if (!split_target(req.target, req.path, req.query)) {
      (void)problem(http::status::bad_request, "malformed percent-encoding in the request target");
      return 0;
    }
    if (auto bad = first_invalid_utf8(req); !bad.empty()) {
      (void)problem(http::status::bad_request, bad + " is not valid UTF-8 after percent-decoding");
      return 0;
    }
    auto m = app->router.match(req.method, req.path);
    if (!m.route) {
      if (!m.allow.empty()) (void)problem(http::status::method_not_allowed, std::string(http::to_string(req.method)) + " is not allowed on " + req.path + " (allowed: " + m.allow + ")");
      else (void)problem(http::status::not_found, "no resource at " + req.path + " (see /v1/openapi.json)");
      return 0;
    }
    if (static_cast<std::ptrdiff_t>(m.params.size()) != std::count(m.route->pattern.begin(), m.route->pattern.end(), '{'))
      tsm::fuzz::finding("http_request: route " + m.route->pattern + " matched with a wrong parameter count");
    (void)auth.authenticate(req.header(http::field::authorization));
    const bool streamed = m.route->body == BodyMode::Streamed;
    const uint64_t limit = streamed ? cfg.upload_max_bytes : cfg.body_max_bytes;
    if (auto len = hdr.content_length(); len && *len > limit) {
      (void)problem(http::status::payload_too_large, "body of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                                         std::to_string(limit) + " bytes for " + m.route->pattern);
      return 0;
    }
    (void)beast::iequals(h[http::field::expect], "100-continue");
    http::request_parser<http::string_body> body(std::move(hdr));
    body.body_limit(limit);
    ec = feed(body, in, false);
    if (ec == http::error::body_limit) {
      (void)problem(http::status::payload_too_large, "body exceeds the limit of " + std::to_string(limit) + " bytes");
      return 0;
    }
    if (ec) return 0;  // the session closes the connection
    if (body.get().body().size() > limit) tsm::fuzz::finding("http_request: body past its limit");
    if (!keep_alive) return 0;
  }
  return 0;
}
