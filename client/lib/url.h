// A parsed http(s) URL: scheme, host, port and the path prefix requests are joined to.
// Invariant: scheme is "http" or "https"; port is set (80/443 by default); base_path has no trailing '/'.
#pragma once
#include <string>

namespace tsm::client {

struct Url {
  std::string scheme;     ///< "http" | "https"
  std::string host;       ///< host name or address, without brackets
  std::string port;       ///< decimal port
  std::string base_path;  ///< "" or "/prefix" (no trailing slash)

  bool tls() const { return scheme == "https"; }
  /// "scheme://host:port"
  std::string origin() const;
};

/// Parses "http://host[:port][/prefix]" or "https://..."; throws tsm::ParamError("server", ...) otherwise.
Url parse_url(const std::string& text);

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters kept).
std::string url_encode(const std::string& s);

}  // namespace tsm::client
