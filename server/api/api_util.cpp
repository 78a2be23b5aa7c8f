#include "api/api_util.h"

#include <random>

namespace tsm::server {

std::string new_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + b;
}

bool is_id(const std::string& s, const char* prefix) {
  std::string p(prefix);
  if (s.size() != p.size() + 16 || s.compare(0, p.size(), p) != 0) return false;
  for (size_t i = p.size(); i < s.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(s[i])) || std::isupper(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

nlohmann::json parse_json_body(const Request& r) {
  if (r.body.empty()) throw HttpError(http::status::bad_request, "empty body: send a JSON object");
  try {
    return nlohmann::json::parse(r.body);
  } catch (const nlohmann::json::parse_error& e) {
    throw HttpError(http::status::bad_request, std::string("malformed JSON: ") + e.what(),
                    {{"offset", e.byte > 0 ? e.byte - 1 : 0}});
  } catch (const nlohmann::json::exception& e) {  // e.g. a number past double's range (1e405)
    throw HttpError(http::status::bad_request, std::string("malformed JSON: ") + e.what());
  }
}

double query_number(const Request& r, const std::string& key, double def, double lo, double hi) {
  auto it = r.query.find(key);
  if (it == r.query.end()) return def;
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !(v >= lo && v <= hi))
    throw HttpError(http::status::bad_request,
                    key + ": '" + it->second + "' must be a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                    {{"field", key}});
  return v;
}

bool etag_matches(const Request& r, const std::string& etag) {
  std::string h = r.header(http::field::if_none_match);
  if (h.empty()) return false;
  if (h == "*") return true;
  std::string quoted = "\"" + etag + "\"";
  size_t i = 0;
  while (i < h.size()) {
    size_t j = h.find(',', i);
    if (j == std::string::npos) j = h.size();
    std::string t = h.substr(i, j - i);
    while (!t.empty() && t.front() == ' ') t.erase(0, 1);
    while (!t.empty() && t.back() == ' ') t.pop_back();
    if (t.rfind("W/", 0) == 0) t = t.substr(2);
    if (t == quoted) return true;
    i = j + 1;
  }
  return false;
}

}  // namespace tsm::server
