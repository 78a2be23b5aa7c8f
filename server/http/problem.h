// Response builders: JSON bodies and application/problem+json errors (RFC 9457: type, title,
// status, detail, plus `field` / `offset` when a parameter or byte is at fault).
// Invariant: building a response never throws on the bytes it quotes (invalid UTF-8 is replaced).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "common/json_text.h"
#include "http/request.h"

namespace tsm::server {

using json = nlohmann::json;

/// `extra` members (e.g. {"field": "params.ranks"}) are merged into the problem object.
StringResponse problem(http::status status, const std::string& detail, const json& extra = json::object());
StringResponse json_response(http::status status, const json& body);
StringResponse text_response(http::status status, std::string body, const std::string& content_type);

/// A handler-side error turned into a problem response by the router (handlers may throw it).
struct HttpError : std::runtime_error {
  HttpError(http::status s, const std::string& detail, json extra = json::object())
      : std::runtime_error(detail), status(s), extra(std::move(extra)) {}
  http::status status;
  json extra;
};

/// The problem response for an exception (the one mapping of the HTTP edge): HttpError as it says;
/// tsm::OptionError 400 with `field`; tsm::UnsupportedFormat 415; tsm::ParamError 422 with
/// `field`; tsm::FormatError 422 with `offset` when known; StorageFull (store/storage_error.h) and a
/// std::system_error with ENOSPC / EDQUOT 507 with reason "disk_full"; any other StorageError 500
/// with reason "storage_error", but StoreUnavailable 503 with reason "store_unavailable"; any other
/// tsm::Error 400;
/// anything else 500. A tsm::Error's details become members of the problem object. Never throws on bad bytes.
StringResponse problem_for(const std::exception& e);

}  // namespace tsm::server
