// The method table: method name -> codec. Adding a method is one codec file plus one row in
// method_table.cpp; the CLI, the server's validation and /v1/openapi.json read this table.
#pragma once
#include <string_view>
#include <vector>

#include "codec/codec.h"

namespace tsm {

/// The codec for `method`. Throws tsm::Error "unknown method 'x' (known: a, b, ...)".
const Codec& find_codec(std::string_view method);
/// nullptr when unknown.
const Codec* try_find_codec(std::string_view method);
/// Every codec in table order.
std::vector<const Codec*> all_codecs();

}  // namespace tsm
