#include "http/problem.h"

#include <cerrno>
#include <system_error>

#include "common/error.h"
#include "store/storage_error.h"

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

namespace {

/// A std::filesystem / std::system_error that says the disk is full.
bool is_no_space(const std::exception& e) {
  const auto* se = dynamic_cast<const std::system_error*>(&e);
  return se && (se->code() == std::errc::no_space_on_device ||
                se->code() == std::error_condition(EDQUOT, std::generic_category()));
}

}  // namespace

StringResponse problem_for(const std::exception& e) {
  const auto* te = dynamic_cast<const Error*>(&e);
  json extra = json::object();
  if (te)
    for (const auto& [k, v] : te->details()) std::visit([&, key = k](const auto& x) { extra[key] = x; }, v);
  if (dynamic_cast<const StorageFull*>(&e) || is_no_space(e)) {
    extra["reason"] = "disk_full";
    return problem(http::status::insufficient_storage,
                   std::string(e.what()) + " (the server's disk is full: free space, e.g. DELETE unused uploads, then retry)",
                   extra);
  }
  if (dynamic_cast<const StoreUnavailable*>(&e)) {
    extra["reason"] = "store_unavailable";
    return problem(http::status::service_unavailable,
                   std::string(e.what()) + " (the server's database is unreachable; nothing was changed: retry shortly)", extra);
  }
  if (dynamic_cast<const StorageError*>(&e)) {
    extra["reason"] = "storage_error";
    return problem(http::status::internal_server_error,
                   std::string(e.what()) + " (the server cannot write its data directory; nothing was kept: retry later, or tell its operator)",
                   extra);
  }
  if (const auto* h = dynamic_cast<const HttpError*>(&e)) {
    for (auto it = h->extra.begin(); it != h->extra.end(); ++it) extra[it.key()] = it.value();
    return problem(h->status, e.what(), extra);
  }
  if (const auto* o = dynamic_cast<const OptionError*>(&e)) {
    extra["field"] = o->field();
    return problem(http::status::bad_request, e.what(), extra);
  }
  if (dynamic_cast<const UnsupportedFormat*>(&e)) return problem(http::status::unsupported_media_type, e.what(), extra);
  if (const auto* p = dynamic_cast<const ParamError*>(&e)) {
    extra["field"] = p->field();
    return problem(http::status::unprocessable_entity, e.what(), extra);
  }
  if (const auto* f = dynamic_cast<const FormatError*>(&e)) {
    if (f->offset() >= 0) extra["offset"] = f->offset();
    return problem(http::status::unprocessable_entity, e.what(), extra);
  }
  if (te) return problem(http::status::bad_request, e.what(), extra);
  return problem(http::status::internal_server_error, std::string("internal error: ") + e.what());
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
