#include "http/router.h"

namespace tsm::server {
namespace {

std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < p.size()) {
    if (p[i] == '/') { ++i; continue; }
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    out.emplace_back(p.substr(i, j - i));
    i = j;
  }
  return out;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

}  // namespace

bool split_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query) {
  auto qpos = target.find('?');
  if (!decode(target.substr(0, qpos), path, false)) return false;
  if (qpos == std::string_view::npos) return true;
  std::string_view qs = target.substr(qpos + 1);
  size_t i = 0;
  while (i <= qs.size()) {
    size_t j = qs.find('&', i);
    if (j == std::string_view::npos) j = qs.size();
    std::string_view kv = qs.substr(i, j - i);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      std::string k, v;
      if (!decode(kv.substr(0, eq), k, true)) return false;
      if (eq != std::string_view::npos && !decode(kv.substr(eq + 1), v, true)) return false;
      query[k] = v;
    }
    i = j + 1;
  }
  return true;
}

void Router::add(http::verb method, std::string pattern, Perm perm, Handler h, BodyMode body, RunOn run) {
  Route r{method, pattern, perm, body, run, std::move(h), split_path(pattern)};
  routes_.push_back(std::move(r));
}

RouteMatch Router::match(http::verb method, const std::string& path) const {
  RouteMatch m;
  auto segs = split_path(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::vector<std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const auto& s = r.segments[i];
      if (s.size() >= 2 && s.front() == '{' && s.back() == '}') params.push_back(segs[i]);
      else ok = (s == segs[i]);
    }
    if (!ok) continue;
    if (r.method == method || (method == http::verb::head && r.method == http::verb::get)) {
      if (r.method == method || !m.route) {
        m.route = &r;
        m.params = std::move(params);
        if (r.method == method) return m;
      }
    } else {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += std::string(http::to_string(r.method));
    }
  }
  return m;
}

}  // namespace tsm::server
