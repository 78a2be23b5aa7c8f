// Autoregressive generation: the prompt in one forward pass, then one token at a time through the
// KV cache, stopping at max_new_tokens, an EOS id (when asked) or the context length.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/sampler.h"
#include "model/transformer.h"

namespace tsm {

struct GenerateOptions {
  int max_new_tokens = 32;
  SamplingOptions sampling;
  bool stop_at_eos = true;   ///< stop after emitting one of cfg.eos_ids (the EOS token is kept)
};

struct GenerateResult {
  std::vector<int32_t> generated;  ///< new tokens only
  double prompt_seconds = 0;       ///< forward pass over the prompt incl. the first choice
  double decode_seconds = 0;       ///< every later token
  bool stopped_at_eos = false;
  /// Prompt tokens per second and generated tokens per second (tokens after the first / decode_seconds).
  double prompt_tokens_per_s(size_t prompt_len) const { return prompt_seconds > 0 ? prompt_len / prompt_seconds : 0; }
  double decode_tokens_per_s() const {
    return decode_seconds > 0 && generated.size() > 1 ? (generated.size() - 1) / decode_seconds : 0;
  }
};

/// Throws tsm::Error for an empty prompt or out-of-range ids.
GenerateResult generate(const Transformer& net, std::span<const int32_t> prompt, const GenerateOptions& opt);

}  // namespace tsm
