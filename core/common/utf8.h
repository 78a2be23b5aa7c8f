// UTF-8 validation for text that reaches JSON or a log line from outside (HTTP targets, tensor
// names, uploaded JSON). Strict RFC 3629: no overlong forms, no surrogates (U+D800..DFFF), nothing
// above U+10FFFF, no truncated sequences.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tsm {

/// True when `s` is well-formed UTF-8 (the empty string is).
bool is_valid_utf8(std::string_view s);
/// Byte offset of the first ill-formed sequence in `s`, or npos when it is well-formed.
size_t invalid_utf8_offset(std::string_view s);
/// `s` with every ill-formed byte replaced by U+FFFD: for quoting bad input in an error message.
std::string sanitize_utf8(std::string_view s);

}  // namespace tsm
