#include "http/problem.h"

namespace tsm::server {


StringResponse problem(http::status status, const std::string& detail, const json& extra) {
  json j = {{"type", "about:blank"},
            {"title", std::string(http::obsolete_reason(status))},
            {"status", static_cast<int>(status)},
            {"detail", detail}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  StringResponse r{status, 11};
  r.set(http::field::content_type, "application/problem+json");
  r.body() = dump_json(j);
  r.prepare_payload();
  return r;
}

StringResponse json_response(http::status status, const json& body) {
  return text_response(status, dump_json(body), "application/json");
}

StringResponse text_response(http::status status, std::string body, const std::string& content_type) {
  StringResponse r{status, 11};
  r.set(http::field::content_type, content_type);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

}  // namespace tsm::server
