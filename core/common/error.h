// Error types of tensorslm_core. Bad input (files, parameters) throws one of these with a message a
// person can act on; broken internal invariants use assert. The CLI turns them into one line and a
// non-zero exit, the server into application/problem+json.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace tsm {

/// Base of every error that reports bad input or an unavailable resource.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file or body whose content is malformed. `offset` is the byte offset at fault when known.
class FormatError : public Error {
 public:
  explicit FormatError(const std::string& what, int64_t offset = -1)
      : Error(offset >= 0 ? what + " (at byte " + std::to_string(offset) + ")" : what), offset_(offset) {}
  int64_t offset() const { return offset_; }

 private:
  int64_t offset_;
};

/// A method parameter that is missing, of the wrong type or out of range. `field` names it.
class ParamError : public Error {
 public:
  ParamError(std::string field, const std::string& why)
      : Error("parameter '" + field + "': " + why), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

/// A job stopped because its cancel flag was raised.
class Canceled : public Error {
 public:
  Canceled() : Error("canceled") {}
};

}  // namespace tsm
