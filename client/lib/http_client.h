// The HTTP(S) client shared by the `tensorslm` CLI and `tensorslm-agent` (Boost.Beast, OpenSSL for https).
// Invariant: one connection per request (Connection: close), every network step bounded by a timeout;
// idempotent requests (GET/HEAD/PUT/DELETE, or a caller that says so) are retried on connection
// errors, timeouts, 429 and 5xx with exponential backoff and full jitter, honouring Retry-After.
// Bodies are held in std::string only for small JSON/protobuf exchanges; uploads stream from a file
// and downloads stream to a temp file (sha256 + size checked, then renamed atomically).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "common/error.h"
#include "lib/url.h"

namespace tsm::client {

/// A reply with a status that the caller did not accept (>= 400 unless stated). `message` carries
/// the problem+json `detail`/`title` when the server sent one.
class HttpError : public Error {
 public:
  HttpError(int status, const std::string& what, std::string body)
      : Error(what), status_(status), body_(std::move(body)) {}
  int status() const { return status_; }
  const std::string& body() const { return body_; }

 private:
  int status_;
  std::string body_;
};

/// The server could not be reached or the exchange broke off (after all retries).
class NetworkError : public Error {
 public:
  using Error::Error;
};

/// A download whose size or sha256 differs from what the manifest promised; nothing was kept.
class IntegrityError : public Error {
 public:
  using Error::Error;
};

struct HttpOptions {
  std::string server = "http://127.0.0.1:8080";  ///< base URL
  std::string token;                             ///< bearer token; empty = none
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{30000};   ///< per read/write step (not per whole transfer)
  int max_attempts = 4;                          ///< first try + retries, idempotent requests only
  std::chrono::milliseconds backoff_base{200};   ///< delay before retry k: uniform(0, min(max, base * 2^k))
  std::chrono::milliseconds backoff_max{5000};
  bool tls_verify = true;                        ///< verify the server certificate (https)
  std::string ca_file;                           ///< extra CA bundle (PEM); empty = system store
  std::string user_agent = std::string("tensorslm-client/") + TSM_VERSION;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case field name -> value
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpRequest {
  std::string method = "GET";
  std::string target;                          ///< path + query, joined to the server's base path
  std::map<std::string, std::string> headers;  ///< extra fields (e.g. If-None-Match)
  std::string body;
  std::string content_type;
  /// Retry this request although its method is not idempotent (e.g. a POST that the server dedups).
  bool idempotent = false;
};

/// Progress callback: (bytes done, bytes total or 0 when unknown).
using Progress = std::function<void(uint64_t, uint64_t)>;

struct DownloadResult {
  bool not_modified = false;  ///< 304: nothing written
  uint64_t bytes = 0;
  std::string sha256;
  std::string etag;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions opts);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const HttpOptions& options() const { return opts_; }
  const Url& url() const { return url_; }

  /// Sends a request with a small in-memory body; returns any status (no throw on >= 400).
  /// Throws NetworkError when no reply arrived after the allowed attempts.
  HttpResponse send(const HttpRequest& req);
  /// send() that throws HttpError on status >= 400.
  HttpResponse checked(const HttpRequest& req);

  HttpResponse get(const std::string& target);
  /// POST with a JSON body (not retried: not idempotent).
  HttpResponse post_json(const std::string& target, const std::string& json);

  /// Streams a file as the request body (Content-Length known up front); progress after every write.
  HttpResponse upload_file(const std::string& target, const std::string& path, const std::string& content_type,
                           const Progress& progress = {});

  /// Streams a GET body into `dest` through a temp file beside it. When expected_size/expected_sha256
  /// are given and differ, throws IntegrityError and leaves neither temp nor dest behind; otherwise the
  /// file is renamed over dest atomically. `if_none_match` may yield not_modified.
  DownloadResult download(const std::string& target, const std::string& dest,
                          std::optional<uint64_t> expected_size = std::nullopt,
                          const std::string& expected_sha256 = "", const std::string& if_none_match = "",
                          const Progress& progress = {});

  /// Delay before retry number `retry` (0-based): uniform in [0, min(max, base * 2^retry)].
  std::chrono::milliseconds backoff_delay(int retry);

 private:
  struct Impl;
  HttpOptions opts_;
  Url url_;
  Impl* impl_;
};

/// Text of a problem+json body (detail, else title), else the body cut to 300 characters.
std::string problem_text(const std::string& body);
/// True for status codes worth retrying: 408, 425, 429, 500, 502, 503, 504.
bool retryable_status(int status);

}  // namespace tsm::client
