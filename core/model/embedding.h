// Token embedding lookup behind one interface (the runtime's EmbeddingOp): a dense table here, or
// an operator that a compression method provides (e.g. tt-token: each row contracted from its own
// cores), built by the method table. This layer never names a method.
// Invariant: lookup() writes ids.size() rows of dim() floats and rejects ids outside [0, vocab());
// decode_row() / decode_range() are the same rows by index, for a head tied to the embedding.
// Layout: rows are tokens, row-major (vocab, dim).
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "common/matrix.h"

namespace tsm {

class TokenEmbedding {
 public:
  virtual ~TokenEmbedding() = default;
  virtual int64_t vocab() const = 0;
  virtual int64_t dim() const = 0;
  /// out: (ids.size(), dim). Throws tsm::Error naming the id when it is out of range.
  virtual void lookup(std::span<const int32_t> ids, float* out) const = 0;
  /// out: (end - begin, dim) = rows [begin, end). Unchecked: 0 <= begin <= end <= vocab().
  virtual void decode_range(int64_t begin, int64_t end, float* out) const = 0;
  /// out: (dim) = row `id`, with caller scratch of workspace_floats() floats: thread-safe and
  /// allocation-free (the streamed head calls it from several threads). Unchecked id.
  virtual void decode_row(int64_t id, float* out, float* workspace) const = 0;
  virtual size_t workspace_floats() const { return 0; }
  /// Bytes kept resident for the lookup.
  virtual uint64_t resident_bytes() const = 0;
  /// "dense", or the method's short name for its operator (e.g. "tt"), for reports.
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
  void decode_range(int64_t begin, int64_t end, float* out) const override;
  void decode_row(int64_t id, float* out, float*) const override { decode_range(id, id + 1, out); }
  uint64_t resident_bytes() const override { return uint64_t(table_->size()) * sizeof(float); }
  const char* kind() const override { return "dense"; }
  const std::shared_ptr<const MatrixRM>& table() const { return table_; }

 private:
  std::shared_ptr<const MatrixRM> table_;  ///< (vocab, dim)
};

}  // namespace tsm
