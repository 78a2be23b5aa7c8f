// RE2-backed tensor selection (see tensor_pattern.h).
#include "common/tensor_pattern.h"

#include <re2/re2.h>

#include "common/error.h"
#include "common/utf8.h"

namespace tsm {

TensorPattern::TensorPattern(std::string_view pattern, Anchor anchor, const std::string& field)
    : pattern_(pattern), anchor_(anchor) {
  if (pattern.size() > kMaxPatternBytes)
    throw ParamError(field, "pattern of " + std::to_string(pattern.size()) + " bytes is longer than the limit of " +
                                std::to_string(kMaxPatternBytes));
  if (!is_valid_utf8(pattern)) throw ParamError(field, "pattern is not valid UTF-8");
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(kMaxProgramBytes);
  re_ = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), o);
  if (!re_->ok())
    throw ParamError(field, "'" + std::string(pattern.substr(0, 200)) + (pattern.size() > 200 ? "..." : "") +
                                "' is not a valid regular expression (RE2 syntax): " + re_->error());
}

TensorPattern::~TensorPattern() = default;
TensorPattern::TensorPattern(TensorPattern&&) noexcept = default;
TensorPattern& TensorPattern::operator=(TensorPattern&&) noexcept = default;

bool TensorPattern::matches(std::string_view name) const {
  const re2::StringPiece s(name.data(), name.size());
  return anchor_ == Anchor::kFull ? RE2::FullMatch(s, *re_) : RE2::PartialMatch(s, *re_);
}

std::string TensorPattern::quote(std::string_view name) {
  return RE2::QuoteMeta(re2::StringPiece(name.data(), name.size()));
}

}  // namespace tsm
