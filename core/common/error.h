// Error types of tensorslm_core. Bad input (files, parameters) throws one of these with a message a
// person can act on; broken internal invariants use assert. The CLI turns them into one line and a
// non-zero exit, the server into application/problem+json.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tsm {

/// Base of every error that reports bad input or an unavailable resource. `details` are
/// machine-readable facts about it (e.g. {"nan", 3}) that the HTTP edge adds to the problem object.
class Error : public std::runtime_error {
 public:
  using Detail = std::pair<std::string, std::variant<int64_t, std::string>>;
  using std::runtime_error::runtime_error;
  const std::vector<Detail>& details() const { return details_; }
  void add_detail(std::string key, std::variant<int64_t, std::string> value) {
    details_.emplace_back(std::move(key), std::move(value));
  }

 private:
  std::vector<Detail> details_;
};

/// `e` with one more detail, for `throw with_detail(FormatError(...), "format", "tar")`.
template <class E, class V>
E with_detail(E e, std::string key, V value) {
  if constexpr (std::is_integral_v<V>) e.add_detail(std::move(key), static_cast<int64_t>(value));
  else e.add_detail(std::move(key), std::string(std::move(value)));
  return e;
}

/// A malformed option of a request or command itself (HTTP 400), e.g. a shape that is not a list of
/// sizes. `field` names it. Compare ParamError: a well-formed value that is not acceptable (422).
class OptionError : public Error {
 public:
  OptionError(std::string field, const std::string& what) : Error(what), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

/// Content in no format this build reads (HTTP 415).
class UnsupportedFormat : public Error {
 public:
  using Error::Error;
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
