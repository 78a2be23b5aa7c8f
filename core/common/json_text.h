// JSON text that cannot fail: dump() with ill-formed UTF-8 in a string replaced by U+FFFD instead of
// throwing. For error paths and for text built from outside input (messages quoting a path, a
// parser's "last read" excerpt, a tensor name), which must not throw themselves.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace tsm {

inline std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tsm
