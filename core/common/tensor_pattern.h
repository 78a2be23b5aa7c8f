// Tensor selection by regular expression (the `tensors` field of a job, `--tensors` of the CLI),
// on RE2: matching time is linear in the name's length whatever the pattern, and compilation has
// bounded memory and nesting, so an untrusted pattern can neither overflow the stack nor freeze
// a thread (std::regex backtracks: `(a|aa)*c` on 44 characters took minutes).
// Invariant: a TensorPattern that constructed is valid; matching never throws.
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace tsm {

class TensorPattern {
 public:
  enum class Anchor { kFull, kSearch };  ///< the whole name must match, or any part of it
  static constexpr size_t kMaxPatternBytes = 4096;
  static constexpr int64_t kMaxProgramBytes = 8 << 20;  ///< RE2 memory budget per pattern

  /// Throws tsm::ParamError(`field`, ...) for a pattern that is too long, not UTF-8, or not a valid
  /// RE2 expression (RE2 syntax: Perl-like, without backreferences or lookaround).
  TensorPattern(std::string_view pattern, Anchor anchor, const std::string& field = "tensors");
  ~TensorPattern();
  TensorPattern(TensorPattern&&) noexcept;
  TensorPattern& operator=(TensorPattern&&) noexcept;

  bool matches(std::string_view name) const;
  const std::string& pattern() const { return pattern_; }
  /// A pattern that matches exactly `name` (every metacharacter escaped).
  static std::string quote(std::string_view name);

 private:
  std::string pattern_;
  Anchor anchor_;
  std::unique_ptr<re2::RE2> re_;
};

}  // namespace tsm
