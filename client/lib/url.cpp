#include "lib/url.h"

#include <cctype>
#include <cstdio>

#include "common/error.h"

namespace tsm::client {

std::string Url::origin() const { return scheme + "://" + host + ":" + port; }

Url parse_url(const std::string& text) {
  Url u;
  auto sep = text.find("://");
  if (sep == std::string::npos) throw ParamError("server", "'" + text + "' is not a URL (expected http://host:port)");
  u.scheme = text.substr(0, sep);
  for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (u.scheme != "http" && u.scheme != "https")
    throw ParamError("server", "scheme '" + u.scheme + "' is not supported (use http or https)");
  std::string rest = text.substr(sep + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  if (authority.empty()) throw ParamError("server", "'" + text + "' has no host");
  if (authority.find('@') != std::string::npos)
    throw ParamError("server", "credentials in the URL are not supported; use --token");
  if (authority.front() == '[') {  // [v6]:port
    auto close = authority.find(']');
    if (close == std::string::npos) throw ParamError("server", "unterminated '[' in '" + text + "'");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw ParamError("server", "bad port in '" + text + "'");
      u.port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw ParamError("server", "'" + text + "' has no host");
  if (u.port.empty()) u.port = u.tls() ? "443" : "80";
  for (char c : u.port)
    if (!std::isdigit(static_cast<unsigned char>(c))) throw ParamError("server", "port '" + u.port + "' is not a number");
  if (std::stoul(u.port) == 0 || std::stoul(u.port) > 65535) throw ParamError("server", "port out of range: " + u.port);
  return u;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace tsm::client
