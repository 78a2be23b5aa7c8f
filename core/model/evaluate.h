// Language-model quality of a compressed model against its dense original on the same token
// sequences: perplexity of each, mean KL(dense || compressed) of the next-token distributions,
// top-1 agreement and the mean per-token NLL difference. Sequences come from a token-id file, a
// tokenized text, or the dense model itself (seeded temperature-1 samples: no data set needed).
// Invariant: every sequence has >= 2 tokens and at most the model's context length.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "artifact.pb.h"
#include "model/transformer.h"

namespace tsm {

struct QualityResult {
  double ppl_dense = 0, ppl_compressed = 0;
  double kl_mean = 0;         ///< nats per predicted token
  double kl_max = 0;
  double top1_agreement = 0;  ///< fraction of positions where both argmaxes agree
  double nll_delta_mean = 0;  ///< mean(nll_compressed - nll_dense), nats
  uint64_t tokens = 0;        ///< predicted positions
  std::string source;         ///< what was evaluated

  ::tensorslm::v1::ModelQuality to_proto() const;
};

/// Perplexity exp(mean NLL) of `net` on the sequences (each in one forward pass).
double perplexity(const Transformer& net, std::span<const std::vector<int32_t>> seqs, uint64_t* tokens = nullptr);

/// Runs both models on every sequence and compares them position by position. The models must
/// share the vocabulary (else tsm::Error).
QualityResult compare_models(const Transformer& dense, const Transformer& compressed,
                             std::span<const std::vector<int32_t>> seqs, std::string source);

/// `count` sequences of `length` tokens sampled from `net` at temperature 1 with seeds seed, seed+1, ...,
/// each starting with the BOS id (0 when the config has none).
std::vector<std::vector<int32_t>> sample_sequences(const Transformer& net, int count, int length, uint64_t seed);

/// Splits a token stream into consecutive windows of at most `window` tokens (a last window
/// shorter than 2 tokens is dropped).
std::vector<std::vector<int32_t>> split_windows(std::span<const int32_t> ids, int64_t window);

/// Reads token ids from a file: a JSON array, or integers separated by whitespace and/or commas.
/// Throws tsm::FormatError naming the file and the offending text.
std::vector<int32_t> read_ids_file(const std::string& path);
/// Parses "1,2,3" / "1 2 3" (ParamError naming `field` otherwise).
std::vector<int32_t> parse_ids(const std::string& text, const char* field = "ids");

}  // namespace tsm
