// /v1/openapi.json, generated from the live route table (every route, its method, path parameters
// and auth scope) and the method table (each codec's parameter JSON Schema), so it cannot drift.
#pragma once
#include <nlohmann/json.hpp>

#include "http/router.h"

namespace tsm::server {

nlohmann::json openapi_document(const Router& router);

}  // namespace tsm::server
