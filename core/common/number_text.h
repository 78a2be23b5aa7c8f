// One number printed with a printf format ("%.4g", "%.2fx"), for messages and text tables.
// Invariant: the result is at most 63 characters (longer output is cut).
#pragma once
#include <cstdio>
#include <string>

namespace tsm {

inline std::string number_text(const char* format, double v) {
  char b[64];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

}  // namespace tsm
