// The language-model head: logits (n, vocab) = h (n, dim) W^T for W (vocab, dim). Variants: a dense
// matrix (untied, tied to a dense embedding, or a compressed embedding operator decoded once at
// load: "materialize"), any LinearOp (a compressed untied head), and "stream": W is never held;
// blocks of rows are decoded from a compressed TokenEmbedding (e.g. tt-token cores) into a reused
// per-thread buffer (block, dim) and multiplied at once, trading compute for RAM.
#pragma once
#include <cstdint>
#include <memory>

#include "common/matrix.h"
#include "model/embedding.h"
#include "model/linear.h"

namespace tsm {

class LmHead {
 public:
  virtual ~LmHead() = default;
  virtual int64_t vocab() const = 0;
  virtual int64_t dim() const = 0;
  /// out (n, vocab) = h (n, dim) W^T.
  virtual void logits(const float* h, int64_t n, float* out) const = 0;
  virtual uint64_t resident_bytes() const = 0;
  /// "dense", "linear", "materialize" or "stream".
  virtual const char* kind() const = 0;
};

class MatrixHead final : public LmHead {
 public:
  /// `kind`: what the matrix is ("dense" or "materialize"), for reports.
  MatrixHead(std::shared_ptr<const MatrixRM> w, const char* kind) : w_(std::move(w)), kind_(kind) {}
  int64_t vocab() const override { return w_->rows(); }
  int64_t dim() const override { return w_->cols(); }
  void logits(const float* h, int64_t n, float* out) const override;
  uint64_t resident_bytes() const override { return uint64_t(w_->size()) * sizeof(float); }
  const char* kind() const override { return kind_; }

 private:
  std::shared_ptr<const MatrixRM> w_;  ///< (vocab, dim); may be shared with the embedding
  const char* kind_;
};

class LinearHead final : public LmHead {
 public:
  explicit LinearHead(std::unique_ptr<LinearOp> op) : op_(std::move(op)) {}
  int64_t vocab() const override { return op_->out_features(); }
  int64_t dim() const override { return op_->in_features(); }
  void logits(const float* h, int64_t n, float* out) const override { op_->forward(h, n, out); }
  uint64_t resident_bytes() const override { return op_->resident_bytes(); }
  const char* kind() const override { return "linear"; }

 private:
  std::unique_ptr<LinearOp> op_;
};

class StreamHead final : public LmHead {
 public:
  /// `rows`: the head's rows as an embedding operator (shared with a tied embedding);
  /// `block_rows`: vocabulary rows decoded per block (per thread).
  explicit StreamHead(std::shared_ptr<const TokenEmbedding> rows, int64_t block_rows = 256);
  int64_t vocab() const override { return rows_->vocab(); }
  int64_t dim() const override { return rows_->dim(); }
  void logits(const float* h, int64_t n, float* out) const override;
  /// The operator (shared with the embedding) plus the block buffers of every thread.
  uint64_t resident_bytes() const override;
  const char* kind() const override { return "stream"; }

 private:
  std::shared_ptr<const TokenEmbedding> rows_;
  int64_t block_rows_;
};

}  // namespace tsm
