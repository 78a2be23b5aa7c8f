// GPTQ with block-format groups (see gptq.h).
#include "methods/block_quant/gptq.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <vector>

#include "common/error.h"
#include "methods/block_quant/k_quants.h"

namespace tsm {

void gptq_quantize(BlockType t, ConstMatrixRef Win, const MatrixRMd& Hin, uint8_t* out, double damp, int rows_per_block) {
  const int64_t rows = Win.rows(), cols = Win.cols();
  const BlockFormat& f = block_format(t);
  const int64_t G = f.values, SV = f.sub_values, k = rows_per_block;
  const bool sub_blocks = SV != G;  // a k-quant: sub-block scales under the super-block's units
  if (k == 1 && cols % G != 0)
    throw Error("gptq: " + std::to_string(cols) + " columns is not a multiple of " + std::to_string(G));
  if (k > 1 && (cols * k != G || rows % k != 0 || cols % SV != 0))
    throw Error("gptq: " + std::to_string(k) + " rows of " + std::to_string(cols) + " per block do not fill " + std::to_string(rows) +
                " rows with blocks of " + std::to_string(G));
  if (k < 1) throw Error("gptq: rows_per_block must be at least 1");
  if (Hin.rows() != cols || Hin.cols() != cols) throw Error("gptq: the input covariance does not match the weight's columns");
  // Block b and position in it of weight (r, j): row-wise blocks (k = 1) or k whole rows per block.
  const int64_t groups = k == 1 ? cols / G : 1, nblocks = k == 1 ? rows * groups : rows / k;
  auto block_of = [&](int64_t r, int64_t j) { return k == 1 ? r * groups + j / G : r / k; };
  auto pos_of = [&](int64_t r, int64_t j) { return static_cast<int>(k == 1 ? j % G : (r % k) * cols + j); };

  Eigen::MatrixXd W = Win.cast<double>();  // (rows, cols), updated in place as columns are quantized
  Eigen::MatrixXd H = Hin;                 // (cols, cols)
  for (int64_t j = 0; j < cols; ++j)
    if (H(j, j) <= 0) {  // an input that is always 0: its weights cannot matter
      H(j, j) = 1;
      W.col(j).setZero();
    }
  const double mean_diag = H.diagonal().mean();
  H.diagonal().array() += damp * mean_diag;
  // U: upper Cholesky factor of H^-1 (H^-1 = U^T U); row j of U drives the update after column j.
  Eigen::LLT<Eigen::MatrixXd> llt(H);
  if (llt.info() != Eigen::Success) throw Error("gptq: the damped input covariance is not positive definite");
  const Eigen::MatrixXd Hinv = llt.solve(Eigen::MatrixXd::Identity(cols, cols));
  Eigen::LLT<Eigen::MatrixXd> llt2(Hinv);
  if (llt2.info() != Eigen::Success) throw Error("gptq: H^-1 is not positive definite");
  const Eigen::MatrixXd U = llt2.matrixU();

  std::vector<BlockParams> params(static_cast<size_t>(nblocks));  // one per block
  std::vector<int> codes(static_cast<size_t>(rows * cols));       // (rows, cols)
  constexpr int64_t kBatch = 128;
  std::vector<float> block(static_cast<size_t>(G));       // one block's values (or a sub-block's), as f32
  std::vector<float> importance(static_cast<size_t>(SV));  // diag(H) over the current sub-block
  std::vector<float> sigma2(static_cast<size_t>(nblocks));
  for (int64_t b0 = 0; b0 < cols; b0 += kBatch) {
    const int64_t b1 = std::min(cols, b0 + kBatch), nb = b1 - b0;
    Eigen::MatrixXd Err(rows, nb);  // scaled errors of this batch's columns
    for (int64_t j = b0; j < b1; ++j) {
      if (j % G == 0) {  // (k > 1: only j = 0, every block's k rows at once)
        for (int64_t b = (k == 1 ? j / G : 0); b < nblocks; b += (k == 1 ? groups : 1)) {
          const int64_t r0 = k == 1 ? b / groups : b * k, c0 = k == 1 ? j : 0, w = k == 1 ? G : cols;
          for (int64_t q = 0; q < G; ++q) block[q] = static_cast<float>(W(r0 + q / w, c0 + q % w));
          params[b] = fit_block(t, block.data());
        }
      }
      if (sub_blocks && j % SV == 0) {
        // k-quants: the sub-block's scale (and min) refitted to its current weights, in llama.cpp's
        // importance weights diag(H) * sqrt(sigma2 + w^2) (sigma2 over the super-block's current
        // weights, as quantize_row_q*_K_impl), against the super-block's units fixed above.
        const int64_t j0 = k == 1 ? j / G * G : 0, w = k == 1 ? G : cols;
        for (int64_t q = 0; q < SV; ++q) importance[q] = static_cast<float>(Hin(j + q, j + q));
        for (int64_t b = 0; b < nblocks; ++b) {
          if (k == 1 && b % groups != j / G) continue;
          const int64_t r0 = k == 1 ? b / groups : b * k;
          float sumx2 = 0;
          for (int64_t q = 0; q < G; ++q) {
            const double v = W(r0 + q / w, j0 + q % w);
            sumx2 += static_cast<float>(v * v);
          }
          sigma2[b] = (t == BlockType::kQ2_K ? 1.f : 2.f) * sumx2 / float(G);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t b = block_of(r, j);
          for (int64_t q = 0; q < SV; ++q) block[q] = static_cast<float>(W(r, j + q));
          kquant::refit_sub_block(t, params[b], pos_of(r, j) / static_cast<int>(SV), block.data(), importance.data(), sigma2[b]);
        }
      }
      const double ujj = U(j, j);
      for (int64_t r = 0; r < rows; ++r) {
        const BlockParams& p = params[block_of(r, j)];
        const float w = static_cast<float>(W(r, j));
        const int pos = pos_of(r, j);
        const int q = quantize_value(t, p, pos, w);
        codes[r * cols + j] = q;
        Err(r, j - b0) = (double(w) - double(dequantize_code(t, p, pos, q))) / ujj;
      }
      // Within the batch: push column j's error onto the batch's later columns.
      if (j + 1 < b1) W.block(0, j + 1, rows, b1 - j - 1).noalias() -= Err.col(j - b0) * U.block(j, j + 1, 1, b1 - j - 1);
    }
    // Lazy update of every column after the batch.
    if (b1 < cols) W.rightCols(cols - b1).noalias() -= Err * U.block(b0, b1, nb, cols - b1);
  }
  // Block b's codes are contiguous in (rows, cols) row-major order either way.
  for (int64_t b = 0; b < nblocks; ++b) pack_block(t, params[b], codes.data() + b * G, out + b * f.bytes);
}

}  // namespace tsm
