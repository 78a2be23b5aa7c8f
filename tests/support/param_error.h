// The field a ParamError names, for tests that check which field a bad input is blamed on.
// Header-only; included by tests/core/test_*.cpp.
#pragma once
#include <functional>
#include <string>

#include "common/error.h"

namespace tsm::test {

/// Runs f; the field of the ParamError it throws, or "" when it throws none.
inline std::string param_error_field(const std::function<void()>& f) {
  try {
    f();
  } catch (const ParamError& e) {
    return e.field();
  }
  return "";
}

}  // namespace tsm::test
