// The runtime operator of a tt-token embedding: token rows contracted on the fly from each token's
// cores (TensorSLM), never stored densely. Also serves a head tied to the embedding (streamed or
// materialized by the model's LmHead through decode_row / decode_range).
#pragma once
#include <memory>

#include "methods/tt_token/token_train_table.h"
#include "model/embedding.h"

namespace tsm {

class TtEmbedding final : public TokenEmbedding {
 public:
  explicit TtEmbedding(std::shared_ptr<const TokenTrainTable> table) : table_(std::move(table)) {}
  int64_t vocab() const override { return table_->rows(); }
  int64_t dim() const override { return table_->cols(); }
  void lookup(std::span<const int32_t> ids, float* out) const override;
  void decode_range(int64_t begin, int64_t end, float* out) const override { table_->decode_range(begin, end, out); }
  void decode_row(int64_t id, float* out, float* workspace) const override { table_->decode_row(id, out, workspace); }
  size_t workspace_floats() const override { return table_->workspace_floats(); }
  uint64_t resident_bytes() const override { return table_->stored_bytes(); }
  const char* kind() const override { return "tt"; }
  const std::shared_ptr<const TokenTrainTable>& table() const { return table_; }

 private:
  std::shared_ptr<const TokenTrainTable> table_;  ///< per-token cores, (vocab, dim) when decoded
};

/// Validates `t` (TokenTrainTable::from_proto; FormatError on bad arrays) and builds the operator.
std::shared_ptr<const TokenEmbedding> make_tt_embedding(const v1::CompressedTensor& t);

}  // namespace tsm
