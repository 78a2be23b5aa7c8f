// Token embedding lookup: a dense table or a tt-token table whose rows are contracted on the fly
// from each token's cores (TensorSLM). Invariant: lookup() writes ids.size() rows of dim() floats
// and rejects ids outside [0, vocab()). Layout: rows are tokens, row-major (vocab, dim).
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "codec/tt_token_codec.h"
#include "common/matrix.h"

namespace tsm {

class TokenEmbedding {
 public:
  virtual ~TokenEmbedding() = default;
  virtual int64_t vocab() const = 0;
  virtual int64_t dim() const = 0;
  /// out: (ids.size(), dim). Throws tsm::Error naming the id when it is out of range.
  virtual void lookup(std::span<const int32_t> ids, float* out) const = 0;
  /// Bytes kept resident for the lookup.
  virtual uint64_t resident_bytes() const = 0;
  /// "dense" or "tt".
  virtual const char* kind() const = 0;

 protected:
  void check_ids(std::span<const int32_t> ids) const;
};

class DenseEmbedding final : public TokenEmbedding {
 public:
  explicit DenseEmbedding(std::shared_ptr<const MatrixRM> table) : table_(std::move(table)) {}
  int64_t vocab() const override { return table_->rows(); }
  int64_t dim() const override { return table_->cols(); }
  void lookup(std::span<const int32_t> ids, float* out) const override;
  uint64_t resident_bytes() const override { return uint64_t(table_->size()) * sizeof(float); }
  const char* kind() const override { return "dense"; }
  const std::shared_ptr<const MatrixRM>& table() const { return table_; }

 private:
  std::shared_ptr<const MatrixRM> table_;  ///< (vocab, dim)
};

class TtEmbedding final : public TokenEmbedding {
 public:
  explicit TtEmbedding(std::shared_ptr<const TokenTrainTable> table) : table_(std::move(table)) {}
  int64_t vocab() const override { return table_->rows(); }
  int64_t dim() const override { return table_->cols(); }
  void lookup(std::span<const int32_t> ids, float* out) const override;
  uint64_t resident_bytes() const override { return table_->stored_bytes(); }
  const char* kind() const override { return "tt"; }
  const std::shared_ptr<const TokenTrainTable>& table() const { return table_; }

 private:
  std::shared_ptr<const TokenTrainTable> table_;  ///< per-token cores, (vocab, dim) when decoded
};

}  // namespace tsm
