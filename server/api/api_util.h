// Small helpers shared by the API handlers: ids, JSON body parsing with problem+json errors,
// query parameters as numbers, and entity tags.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "http/problem.h"
#include "http/request.h"

namespace tsm::server {

/// prefix + 16 random hex digits (e.g. "j_3f9a...").
std::string new_id(const char* prefix);
/// True for ids of the form prefix + 16 hex digits.
bool is_id(const std::string& s, const char* prefix);
/// Parses the body as JSON; throws HttpError 400 with the byte offset on malformed JSON.
nlohmann::json parse_json_body(const Request& r);
/// Query parameter as a number in [lo, hi]; `def` when absent; HttpError 400 naming it otherwise.
double query_number(const Request& r, const std::string& key, double def, double lo, double hi);
/// True when an If-None-Match header lists `etag` (quoted) or "*".
bool etag_matches(const Request& r, const std::string& etag);

}  // namespace tsm::server
