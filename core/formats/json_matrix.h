// A small JSON array of numbers ([1, 2, 3]) or of equal-length rows ([[1, 2], [3, 4]]) read as an
// f32 matrix, with a streaming (SAX) reader: nothing but the numbers is held in memory, nesting
// deeper than rows is refused at the first bracket, and at most `max_values` numbers are read, so a
// hostile body (60 MiB of "[[[[...") costs no more memory than its numbers would.
// Layout: values (rows, cols) row-major; a flat array is one row with `flat` set.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace tsm {

struct JsonMatrix {
  int64_t rows = 0, cols = 0;
  bool flat = false;           ///< [1, 2, 3] rather than [[1, 2, 3]]
  std::vector<float> values;   ///< (rows, cols)
};

/// Malformed JSON text (not a structural problem): `offset` is the byte at fault.
class JsonSyntaxError : public FormatError {
 public:
  using FormatError::FormatError;
};

/// Throws JsonSyntaxError for text that is not JSON, FormatError (detail "row" where one is at
/// fault) for JSON that is not such an array: objects, strings, deeper nesting, ragged or empty
/// rows, more than `max_values` numbers.
JsonMatrix read_json_matrix(std::string_view text, uint64_t max_values);

}  // namespace tsm
