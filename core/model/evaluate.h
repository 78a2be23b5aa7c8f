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
  uint64_t sequences = 0;
  std::string source;         ///< what was evaluated

  ::tensorslm::v1::ModelQuality to_proto() const;
};

/// Perplexity exp(mean NLL) of `net` on the sequences (each in one forward pass).
double perplexity(const Transformer& net, std::span<const std::vector<int32_t>> seqs, uint64_t* tokens = nullptr);

/// Runs both models on every sequence and compares them position by position. The models must
/// share the vocabulary (else tsm::Error).
QualityResult compare_models(const Transformer& dense, const Transformer& compressed,
                             std::span<const std::vector<int32_t>> seqs, std::string source);

/// The dense model's logits on fixed sequences, computed once, for comparing many compressed
/// models with it (the planner measures hundreds). Memory: 4 * tokens * vocab bytes.
class ReferenceLogits {
 public:
  /// Runs `dense` on every sequence (each >= 2 tokens and within the context, else tsm::Error).
  ReferenceLogits(const Transformer& dense, std::span<const std::vector<int32_t>> seqs);
  /// compare_models(dense, comp, seqs, source), without running the dense model again.
  QualityResult compare(const Transformer& comp, std::string source) const;

 private:
  int64_t vocab_;
  std::vector<std::vector<int32_t>> seqs_;
  std::vector<std::vector<float>> logits_;  ///< per sequence (n, vocab)
  std::vector<std::vector<double>> lse_;    ///< per sequence (n): log-sum-exp of each row
};

/// `count` sequences of `length` tokens sampled from `net` at temperature 1 with seeds seed, seed+1, ...,
/// each starting with the BOS id (0 when the config has none).
std::vector<std::vector<int32_t>> sample_sequences(const Transformer& net, int count, int length, uint64_t seed);

/// Splits a token stream into consecutive windows of at most `window` tokens (a last window
/// shorter than 2 tokens is dropped).
std::vector<std::vector<int32_t>> split_windows(std::span<const int32_t> ids, int64_t window);

/// Several token sequences from a file: a JSON array of arrays of ids, or one sequence per line (ids
/// separated by spaces and/or commas; blank lines skipped). Throws tsm::FormatError naming the file
/// and line for anything else, and for a sequence shorter than 2 tokens.
std::vector<std::vector<int32_t>> read_sequences_file(const std::string& path);

/// Where the sequences of an evaluation or a calibration come from: the user's own (`given`, e.g.
/// read_sequences_file or a tokenized text cut in windows), or sampled from the dense model at
/// temperature 1 with seeds seed, seed + 1, ... (enough sequences to predict `min_tokens`).
struct SequenceSpec {
  std::vector<std::vector<int32_t>> given;  ///< each >= 2 tokens; empty: sample
  std::string given_source;                 ///< what `given` is, for reports ("ids file x.txt")
  int sequences = 0;                        ///< sampled: how many; 0 = ceil(min_tokens / (length - 1))
  int64_t min_tokens = 2048;                ///< sampled, sequences 0: predicted tokens to cover
  int length = 129;                         ///< sampled: tokens per sequence (capped by the context)
  uint64_t seed = 1;                        ///< sampled: first seed
};
/// The default evaluation set: >= 2,048 predicted tokens in sequences of 129 tokens (capped by the context).
SequenceSpec default_eval_spec();
/// The default calibration set: 64 sequences of 128 tokens, seeds 1,000,004.. (disjoint from the evaluation's).
SequenceSpec default_calib_spec();

struct SequenceSet {
  std::vector<std::vector<int32_t>> seqs;
  std::string source;  ///< one line: where they come from, how many, how long
  uint64_t predicted_tokens() const;
};
/// Throws ParamError(field) for a given sequence shorter than 2 tokens, longer than `context`, or
/// with an id outside 0..vocab-1. Cheap: the service checks a job with it before queueing.
void check_given_sequences(const SequenceSpec& spec, int64_t vocab, int64_t context, const std::string& field);
/// The sequences of `spec` for `net` (sampled ones from `net`). `what` names the set in messages
/// ("evaluation", "calibration"). Throws ParamError for a spec that yields no sequence, or a given
/// sequence longer than the context or with ids outside the vocabulary.
SequenceSet make_sequence_set(const Transformer& net, const SequenceSpec& spec, const std::string& what);
/// Sequences that make_sequence_set samples for `spec` in a context of `context` tokens.
int sampled_sequence_count(const SequenceSpec& spec, int64_t context);
/// Throws ParamError("calibrate") when both specs sample with overlapping seed ranges, or when a
/// sequence of calib_set is also one of eval_set (which may be left empty when both are sampled):
/// evaluation must be held out from calibration.
void require_disjoint(const SequenceSpec& calib, const SequenceSet& calib_set, const SequenceSpec& eval,
                      const SequenceSet& eval_set, int64_t context);

/// Reads token ids from a file: a JSON array, or integers separated by whitespace and/or commas.
/// Throws tsm::FormatError naming the file and the offending text.
std::vector<int32_t> read_ids_file(const std::string& path);
/// Parses "1,2,3" / "1 2 3" (ParamError naming `field` otherwise).
std::vector<int32_t> parse_ids(const std::string& text, const char* field = "ids");

}  // namespace tsm
