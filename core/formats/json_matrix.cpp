// Streaming reader of JSON number arrays (see json_matrix.h).
#include "formats/json_matrix.h"

#include <nlohmann/json.hpp>
#include <string>

namespace tsm {

namespace {

using json = nlohmann::json;

class MatrixSax {
 public:
  explicit MatrixSax(uint64_t max_values) : max_(max_values) {}
  JsonMatrix m;

  bool null() { return not_a_number(); }
  bool boolean(bool) { return not_a_number(); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return number(v); }
  bool string(json::string_t&) { return not_a_number(); }
  bool binary(json::binary_t&) { return not_a_number(); }
  bool start_object(std::size_t) { fail("a JSON upload holds arrays of numbers, not objects"); }
  bool key(json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) {
    ++depth_;
    if (depth_ > 2) fail("a JSON upload is an array of numbers or of rows of numbers; it nests deeper");
    if (depth_ == 2) {
      if (m.flat) fail("a JSON upload mixes numbers and rows");
      row_len_ = 0;
    }
    return true;
  }
  bool end_array() {
    if (depth_ == 2) {
      if (row_len_ == 0) fail_with_row("row " + std::to_string(m.rows) + " is empty");
      if (m.rows > 0 && row_len_ != m.cols)
        fail_with_row("row " + std::to_string(m.rows) + " has " + std::to_string(row_len_) + " values, expected " +
                      std::to_string(m.cols));
      m.cols = row_len_;
      ++m.rows;
    } else if (depth_ == 1 && m.flat) {
      m.rows = 1;
      m.cols = static_cast<int64_t>(m.values.size());
    }
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    throw JsonSyntaxError(std::string("malformed JSON: ") + ex.what(), position > 0 ? int64_t(position) - 1 : 0);
  }

 private:
  bool number(double v) {
    if (depth_ == 0) fail("a JSON upload must be an array, not a number");
    if (depth_ == 1) {
      if (m.rows > 0) fail("a JSON upload mixes numbers and rows");
      m.flat = true;
    } else {
      ++row_len_;
    }
    if (m.values.size() >= max_) fail("a JSON upload holds more than " + std::to_string(max_) + " numbers; send .npy instead");
    m.values.push_back(static_cast<float>(v));
    return true;
  }
  bool not_a_number() { fail_with_row("row " + std::to_string(m.rows) + " holds a non-number"); }
  [[noreturn]] void fail(const std::string& why) { throw FormatError(why); }
  [[noreturn]] void fail_with_row(const std::string& why) { throw with_detail(FormatError(why), "row", m.rows); }

  uint64_t max_;
  int depth_ = 0;
  int64_t row_len_ = 0;
};

}  // namespace

JsonMatrix read_json_matrix(std::string_view text, uint64_t max_values) {
  MatrixSax sax(max_values);
  json::sax_parse(text.begin(), text.end(), &sax);
  if (sax.m.values.empty()) throw FormatError("a JSON upload must be a non-empty array of numbers or of equal-length rows");
  return std::move(sax.m);
}

}  // namespace tsm
