// Builds a Transformer from ModelWeights: resolves every tensor through the architecture table,
// checks its shape against config.json, and picks the embedding (dense | tt) and the tied-head
// mode (materialize | stream). Compressed linear weights become a LinearOp from
// make_compressed_linear when their method has one, else they are decoded densely.
#pragma once
#include <memory>
#include <string>

#include "model/model_weights.h"
#include "model/transformer.h"

namespace tsm {

enum class EmbeddingMode { kAuto, kDense, kTt };  ///< auto: tt when the embedding is tt-token compressed
enum class HeadMode { kMaterialize, kStream };    ///< for a head tied to (or stored as) a tt-token table

struct LoadOptions {
  EmbeddingMode embedding = EmbeddingMode::kAuto;
  HeadMode head = HeadMode::kMaterialize;
  int64_t stream_block_rows = 256;  ///< vocabulary rows decoded per block by the stream head
};

/// Throws tsm::Error naming the tensor (and its expected shape) when one is missing or malformed,
/// tsm::FormatError naming the field when config.json is bad, tsm::ParamError for impossible options
/// (e.g. --embedding tt on a model whose embedding is not tt-token compressed).
std::unique_ptr<Transformer> load_transformer(const ModelWeights& weights, const LoadOptions& opt = {});

/// Parses "dense"/"tt"/"auto" and "materialize"/"stream" (ParamError otherwise).
EmbeddingMode parse_embedding_mode(const std::string& s);
HeadMode parse_head_mode(const std::string& s);

/// The checkpoint name of the token embedding of the model in `weights` (for tools that compress it).
std::string embedding_tensor_name(const ModelWeights& weights);

}  // namespace tsm
