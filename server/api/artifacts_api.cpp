// GET/HEAD /v1/artifacts/{sha256}: the .tsm protobuf with ETag (= sha256), If-None-Match, single
// byte Range; ?format=safetensors exports on the blocking pool. Artifacts are immutable.
#include <boost/asio/post.hpp>
#include <fstream>

#include "api/api_util.h"
#include "api/routes.h"
#include "app.h"
#include "formats/artifact_io.h"

namespace tsm::server {

namespace {

struct ByteRange {
  uint64_t first = 0, last = 0;  // inclusive
};

/// Parses "bytes=a-b" / "bytes=a-" / "bytes=-n" for a body of `size` bytes; nullopt = unsatisfiable.
std::optional<ByteRange> parse_range(const std::string& h, uint64_t size) {
  if (h.rfind("bytes=", 0) != 0 || h.find(',') != std::string::npos || size == 0) return std::nullopt;
  std::string spec = h.substr(6);
  auto dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto num = [](const std::string& s, uint64_t& v) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19) return false;
    v = std::stoull(s);
    return true;
  };
  ByteRange r;
  if (a.empty()) {
    uint64_t n;
    if (!num(b, n) || n == 0) return std::nullopt;
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
  } else {
    if (!num(a, r.first) || r.first >= size) return std::nullopt;
    if (b.empty()) r.last = size - 1;
    else if (!num(b, r.last) || r.last < r.first) return std::nullopt;
    r.last = std::min(r.last, size - 1);
  }
  return r;
}

template <class Msg>
void cache_headers(Msg& r, const std::string& etag) {
  r.set(http::field::etag, "\"" + etag + "\"");
  r.set(http::field::cache_control, "public, max-age=31536000, immutable");
  r.set(http::field::accept_ranges, "bytes");
}

}  // namespace

void get_artifact(App& app, RequestPtr req, Respond respond) {
  const std::string sha = req->params[0];
  auto rec = is_sha256_hex(sha) ? app.store->get_artifact(sha) : std::nullopt;
  if (!rec || !app.blobs->exists(sha)) throw HttpError(http::status::not_found, "no artifact '" + sha + "'");
  const std::string fmt = req->q("format", "tsm");
  if (fmt != "tsm" && fmt != "safetensors")
    throw HttpError(http::status::bad_request, "format: '" + fmt + "' (tsm or safetensors)", {{"field", "format"}});
  const std::string etag = fmt == "tsm" ? sha : sha + ".safetensors";
  if (etag_matches(*req, etag)) {
    StringResponse r{http::status::not_modified, 11};
    cache_headers(r, etag);
    return respond(std::move(r));
  }
  const std::string path = app.blobs->path(sha);
  if (fmt == "safetensors") {
    boost::asio::post(app.blocking, [path, etag, respond] {
      try {
        auto r = text_response(http::status::ok, artifact_to_safetensors(read_artifact(path)), "application/octet-stream");
        cache_headers(r, etag);
        r.set(http::field::content_disposition, "attachment; filename=\"" + etag + "\"");
        respond(std::move(r));
      } catch (const std::exception& e) {
        respond(problem(http::status::internal_server_error, std::string("export failed: ") + e.what()));
      }
    });
    return;
  }
  std::string range = req->header(http::field::range);
  if (!range.empty()) {
    auto r = parse_range(range, rec->size_bytes);
    if (!r) {
      auto p = problem(http::status::range_not_satisfiable, "range '" + range + "' does not fit " +
                                                                std::to_string(rec->size_bytes) + " bytes");
      p.set(http::field::content_range, "bytes */" + std::to_string(rec->size_bytes));
      return respond(std::move(p));
    }
    std::string part(r->last - r->first + 1, '\0');
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(r->first));
    f.read(part.data(), static_cast<std::streamsize>(part.size()));
    if (!f) throw HttpError(http::status::internal_server_error, "cannot read artifact blob");
    auto resp = text_response(http::status::partial_content, std::move(part), "application/x-protobuf");
    cache_headers(resp, etag);
    resp.set(http::field::content_range, "bytes " + std::to_string(r->first) + "-" + std::to_string(r->last) + "/" +
                                             std::to_string(rec->size_bytes));
    return respond(std::move(resp));
  }
  FileResponse resp{http::status::ok, 11};
  boost::beast::error_code ec;
  resp.body().open(path.c_str(), boost::beast::file_mode::scan, ec);
  if (ec) throw HttpError(http::status::internal_server_error, "cannot open artifact blob: " + ec.message());
  resp.set(http::field::content_type, "application/x-protobuf");
  resp.set(http::field::content_disposition, "attachment; filename=\"" + sha + ".tsm\"");
  cache_headers(resp, etag);
  resp.prepare_payload();
  respond(std::move(resp));
}

}  // namespace tsm::server
