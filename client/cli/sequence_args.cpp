// Evaluation / calibration sequence options (see sequence_args.h).
#include "cli/sequence_args.h"

#include <algorithm>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/tokenizer.h"

namespace tsm::cli {

void add_sequence_options(CLI::App* cmd, SequenceArgs& a, const std::string& prefix, const std::string& what) {
  // No prefix (the eval command): --ids, --text, ...; --ids-file and --samples are older spellings.
  const std::string p = prefix.empty() ? "--" : "--" + prefix + "-";
  auto* ids = cmd->add_option(p + "ids" + (prefix.empty() ? ",--ids-file" : ""), a.ids_file,
                              "token-sequence file for " + what + ": a JSON array of arrays of ids, or one sequence per line");
  auto* text = cmd->add_option(p + "text", a.text_file,
                               "text file for " + what + " (tokenized with the model's tokenizer, cut into windows of " + p + "length)");
  ids->excludes(text);
  cmd->add_option(p + "sequences" + (prefix.empty() ? ",--samples" : ""), a.spec.sequences,
                  "sampled " + what + " sequences (default " +
                      (a.spec.sequences > 0 ? std::to_string(a.spec.sequences) : "enough for " + p + "tokens") + ")")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option(p + "tokens", a.spec.min_tokens,
                  "predicted tokens the sampled " + what + " sequences cover at least (default " + std::to_string(a.spec.min_tokens) + ")")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option(p + "length", a.spec.length,
                  "tokens per " + what + " sequence or text window (default " + std::to_string(a.spec.length) + ", capped by the context)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option(p + "seed", a.spec.seed, "first seed of the sampled " + what + " sequences (default " + std::to_string(a.spec.seed) + ")");
}

SequenceSpec sequence_spec(const SequenceArgs& a, const std::optional<std::string>& tokenizer_json, int64_t context) {
  SequenceSpec s = a.spec;
  if (!a.ids_file.empty()) {
    // A sequence longer than the context is evaluated in consecutive windows of the context.
    for (auto& seq : read_sequences_file(a.ids_file))
      for (auto& w : split_windows(seq, context)) s.given.push_back(std::move(w));
    s.given_source = "token-sequence file " + a.ids_file;
  } else if (!a.text_file.empty()) {
    if (!tokenizer_json) throw Error("the model has no tokenizer.json: give token sequences with an --*-ids file instead of text");
    const auto ids = load_tokenizer(*tokenizer_json)->encode(read_file(a.text_file, size_t(1) << 30));
    s.given = split_windows(ids, std::min<int64_t>(a.spec.length, context));
    if (s.given.empty()) throw Error("text file " + a.text_file + " has fewer than 2 tokens");
    s.given_source = "text file " + a.text_file;
  }
  return s;
}

}  // namespace tsm::cli
