// Next-token choice from logits: greedy (temperature 0), or temperature softmax sampling restricted
// to the top-k and to the smallest nucleus of probability >= top_p, from a seeded generator.
// Invariant: the same seed and logits give the same sequence of choices.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace tsm {

struct SamplingOptions {
  float temperature = 0.0f;  ///< 0: greedy argmax
  int top_k = 0;             ///< 0: no limit
  float top_p = 1.0f;        ///< 1: no nucleus cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  /// Throws tsm::ParamError for temperature < 0, top_k < 0, top_p outside (0, 1].
  explicit Sampler(const SamplingOptions& opt);
  /// Picks a token id from logits (vocab).
  int32_t sample(std::span<const float> logits);

 private:
  SamplingOptions opt_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  ///< (vocab) candidate ids, reused
  std::vector<float> probs_;    ///< (vocab) probabilities of order_, reused
};

/// Index of the largest logit (the first on ties, as torch.argmax).
int32_t argmax(std::span<const float> logits);

}  // namespace tsm
