// The route table: (method, path pattern) -> handler, permission and body mode. Patterns are
// '/'-separated literals and {params}; a path that matches some pattern but not the method is a 405.
// Invariant: the pattern string is also the route's metrics label (bounded cardinality).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "http/request.h"

namespace tsm::server {

enum class BodyMode { Buffered, Streamed };
/// Where the handler runs: on the connection's I/O strand (cheap lookups only), or on the request
/// pool (anything that parses an untrusted body as JSON or protobuf, or compiles a pattern).
enum class RunOn { IoThread, Pool };

struct Route {
  http::verb method;
  std::string pattern;           ///< e.g. "/v1/jobs/{id}"
  Perm perm;
  BodyMode body = BodyMode::Buffered;
  RunOn run = RunOn::IoThread;
  Handler handler;
  std::vector<std::string> segments;
};

struct RouteMatch {
  const Route* route = nullptr;     ///< null: no route for this path (404) or method (405)
  std::vector<std::string> params;
  std::string allow;                ///< for 405: the methods that the path accepts
};

class Router {
 public:
  void add(http::verb method, std::string pattern, Perm perm, Handler h, BodyMode body = BodyMode::Buffered,
           RunOn run = RunOn::IoThread);
  RouteMatch match(http::verb method, const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

/// Splits a target into a percent-decoded path and query map. False on malformed escapes.
bool split_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query);

}  // namespace tsm::server
