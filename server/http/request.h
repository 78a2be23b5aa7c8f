// What a handler sees of one HTTP request and how it answers. A handler may answer at once or
// later from another thread (long polls, upload validation on the blocking pool): `Respond` posts
// the response back to the connection's strand. Invariant: Respond is called exactly once.
#pragma once
#include <boost/beast/http.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "config/auth.h"

namespace tsm::server {

namespace http = boost::beast::http;

using StringResponse = http::response<http::string_body>;
using FileResponse = http::response<http::file_body>;
using Response = std::variant<StringResponse, FileResponse>;
using Respond = std::function<void(Response)>;

class BlobSink;

struct Request {
  http::verb method = http::verb::get;
  std::string target;                         ///< as sent (path + query)
  std::string path;                           ///< percent-decoded path
  std::map<std::string, std::string> query;   ///< percent-decoded query parameters
  std::vector<std::string> params;            ///< path parameters in route order ({id}, {name}...)
  http::fields headers;
  std::string body;                           ///< non-streaming routes only (<= body_max_bytes)
  std::shared_ptr<BlobSink> upload;           ///< streaming routes: the body, already on disk and hashed
  Principal principal;
  std::string request_id;
  /// A handler that holds its reply (?wait=) may set this, before it returns: the connection calls
  /// it once, on its strand, when the client disconnects before the reply, so the handler can drop
  /// the reply and free what it holds at once (not when the job ends). The reply is discarded.
  std::function<void()> on_disconnect;

  std::string header(http::field f) const {
    auto it = headers.find(f);
    return it == headers.end() ? std::string() : std::string(it->value());
  }
  /// Query parameter or `def` when absent.
  std::string q(const std::string& key, const std::string& def = "") const {
    auto it = query.find(key);
    return it == query.end() ? def : it->second;
  }
};

using RequestPtr = std::shared_ptr<Request>;
using Handler = std::function<void(RequestPtr, Respond)>;

}  // namespace tsm::server
