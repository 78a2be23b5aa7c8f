// Builds a Transformer from ModelWeights: resolves every tensor through the architecture table,
// checks its shape against config.json, and picks the embedding (dense | the method's operator)
// and the tied-head mode (materialize | stream). Compressed tensors run through the operators of
// their method's row in the method table when it has them, else they are decoded densely.
#pragma once
#include <memory>
#include <string>

#include "pipeline/model_weights.h"
#include "model/transformer.h"

namespace tsm {

/// kCompressed ("tt" on the command line): the embedding's method operator (e.g. tt-token cores
/// contracted per token); auto: that when the embedding's method has one, else dense.
enum class EmbeddingMode { kAuto, kDense, kCompressed };
enum class HeadMode { kMaterialize, kStream };  ///< for a head whose rows are an embedding operator

struct LoadOptions {
  EmbeddingMode embedding = EmbeddingMode::kAuto;
  HeadMode head = HeadMode::kMaterialize;
  int64_t stream_block_rows = 256;  ///< vocabulary rows decoded per block by the stream head
};

/// Throws tsm::Error naming the tensor (and its expected shape) when one is missing or malformed,
/// tsm::FormatError naming the field when config.json is bad, tsm::ParamError for impossible options
/// (e.g. --embedding tt on a model whose embedding has no compressed operator).
std::unique_ptr<Transformer> load_transformer(const ModelWeights& weights, const LoadOptions& opt = {});

/// Parses "dense"/"tt"/"auto" and "materialize"/"stream" (ParamError otherwise).
EmbeddingMode parse_embedding_mode(const std::string& s);
HeadMode parse_head_mode(const std::string& s);

/// The checkpoint name of the token embedding of the model in `weights` (for tools that compress it).
std::string embedding_tensor_name(const ModelWeights& weights);

}  // namespace tsm
