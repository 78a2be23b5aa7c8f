// Unicode character classes needed by the GPT-2 pre-tokenizer regex: \p{L}, \p{N} (tables in unicode_tables.cpp, generated
// by scripts/gen_unicode_tables.py) and \s (the White_Space property), plus UTF-8 decoding.
// Invariant: invalid UTF-8 bytes decode to U+FFFD one byte at a time, so every byte is consumed.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tsm {

struct CodepointRange {
  char32_t first, last;  ///< inclusive
};

bool is_unicode_letter(char32_t cp);   ///< general category L*
bool is_unicode_number(char32_t cp);   ///< general category N*
bool is_unicode_space(char32_t cp);    ///< White_Space property

/// One code point of UTF-8 text and the byte length it took.
struct Utf8Char {
  char32_t cp;
  size_t len;
};
/// Decodes the code point at `s[i]` (i < s.size()).
Utf8Char utf8_at(std::string_view s, size_t i);
/// Appends the UTF-8 encoding of `cp`.
void append_utf8(std::string& out, char32_t cp);

}  // namespace tsm
