// CLI options that choose evaluation or calibration sequences (`--eval-*`, `--calib-*`): a token
// sequence file (several sequences: JSON array of arrays, or one per line), a text file (tokenized,
// cut into windows of --X-length), or sequences the dense model samples. Shared by compress-model
// and eval so both read the same flags the same way.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "model/evaluate.h"

namespace tsm::cli {

struct SequenceArgs {
  std::string ids_file, text_file;
  SequenceSpec spec;  ///< sampled-set parameters, defaults from the core
};

/// Adds --<prefix>-ids, --<prefix>-text, --<prefix>-sequences, --<prefix>-tokens, --<prefix>-length
/// and --<prefix>-seed to `cmd`, with `a.spec`'s current values as the documented defaults.
void add_sequence_options(CLI::App* cmd, SequenceArgs& a, const std::string& prefix, const std::string& what);

/// The spec the flags describe: given sequences from the ids or text file (text needs
/// `tokenizer_json`: tsm::Error otherwise), else the sampled spec.
SequenceSpec sequence_spec(const SequenceArgs& a, const std::optional<std::string>& tokenizer_json, int64_t context);

}  // namespace tsm::cli
