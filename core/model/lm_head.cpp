// LM head variants (see lm_head.h).
#include "model/lm_head.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace tsm {

void MatrixHead::logits(const float* h, int64_t n, float* out) const {
  matmul_xwt(h, n, w_->cols(), w_->data(), w_->rows(), out);
}

StreamHead::StreamHead(std::shared_ptr<const TokenEmbedding> rows, int64_t block_rows)
    : rows_(std::move(rows)), block_rows_(std::max<int64_t>(1, block_rows)) {}

uint64_t StreamHead::resident_bytes() const {
  const uint64_t per_thread = uint64_t(block_rows_) * rows_->dim() + rows_->workspace_floats();
  return rows_->resident_bytes() + per_thread * sizeof(float) * omp_get_max_threads();
}

void StreamHead::logits(const float* h, int64_t n, float* out) const {
  const int64_t V = rows_->vocab(), d = rows_->dim();
  const int64_t blocks = (V + block_rows_ - 1) / block_rows_;
  Eigen::Map<const MatrixRM> H(h, n, d);   // (n, d)
  Eigen::Map<MatrixRM> Y(out, n, V);       // (n, V)
#pragma omp parallel
  {
    // Reused across calls: one block of decoded rows (block_rows, d) and the decode scratch per thread.
    thread_local std::vector<float> block, work;
    block.resize(size_t(block_rows_ * d));
    work.resize(rows_->workspace_floats());
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * block_rows_, m = std::min(block_rows_, V - r0);
      for (int64_t r = 0; r < m; ++r) rows_->decode_row(r0 + r, block.data() + r * d, work.data());
      Eigen::Map<const MatrixRM> W(block.data(), m, d);  // rows r0..r0+m of the head, (m, d)
      Y.middleCols(r0, m).noalias() = H * W.transpose();
    }
  }
}

}  // namespace tsm
