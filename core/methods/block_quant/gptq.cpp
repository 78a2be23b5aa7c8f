// GPTQ with block-format groups (see gptq.h).
#include "methods/block_quant/gptq.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <vector>

#include "common/error.h"
#include "methods/block_quant/k_quants.h"

namespace tsm {

void gptq_quantize(BlockType t, ConstMatrixRef Win, const MatrixRMd& Hin, uint8_t* out, double damp) {
  const int64_t rows = Win.rows(), cols = Win.cols();
  const BlockFormat& f = block_format(t);
  const int64_t G = f.values, groups = cols / G, SV = f.sub_values;
  const bool sub_blocks = SV != G;  // a k-quant: sub-block scales under the super-block's units
  if (cols % G != 0) throw Error("gptq: " + std::to_string(cols) + " columns is not a multiple of " + std::to_string(G));
  if (Hin.rows() != cols || Hin.cols() != cols) throw Error("gptq: the input covariance does not match the weight's columns");

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

  std::vector<BlockParams> params(static_cast<size_t>(rows * groups));  // (rows, groups)
  std::vector<int> codes(static_cast<size_t>(rows * cols));              // (rows, cols)
  constexpr int64_t kBatch = 128;
  std::vector<float> block(static_cast<size_t>(G));       // one row's group (or sub-block), as f32
  std::vector<float> importance(static_cast<size_t>(SV));  // diag(H) over the current sub-block
  for (int64_t b0 = 0; b0 < cols; b0 += kBatch) {
    const int64_t b1 = std::min(cols, b0 + kBatch), nb = b1 - b0;
    Eigen::MatrixXd Err(rows, nb);  // scaled errors of this batch's columns
    for (int64_t j = b0; j < b1; ++j) {
      if (j % G == 0) {
        const int64_t g = j / G;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t k = 0; k < G; ++k) block[k] = static_cast<float>(W(r, j + k));
          params[r * groups + g] = fit_block(t, block.data());
        }
      }
      if (sub_blocks && j % SV == 0) {
        // k-quants: the sub-block's scale (and min) refitted to its current weights, in llama.cpp's
        // importance weights diag(H) * sqrt(sigma2 + w^2) (sigma2 over the super-block's current
        // weights, as quantize_row_q*_K_impl), against the super-block's units fixed above.
        const int64_t j0 = j / G * G;
        const int s = static_cast<int>((j - j0) / SV);
        for (int64_t k = 0; k < SV; ++k) importance[k] = static_cast<float>(Hin(j + k, j + k));
        for (int64_t r = 0; r < rows; ++r) {
          float sumx2 = 0;
          for (int64_t k = 0; k < G; ++k) sumx2 += static_cast<float>(W(r, j0 + k) * W(r, j0 + k));
          const float sigma2 = (t == BlockType::kQ2_K ? 1.f : 2.f) * sumx2 / float(G);
          for (int64_t k = 0; k < SV; ++k) block[k] = static_cast<float>(W(r, j + k));
          kquant::refit_sub_block(t, params[r * groups + j / G], s, block.data(), importance.data(), sigma2);
        }
      }
      const double ujj = U(j, j);
      for (int64_t r = 0; r < rows; ++r) {
        const BlockParams& p = params[r * groups + j / G];
        const float w = static_cast<float>(W(r, j));
        const int pos = static_cast<int>(j % G);
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
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      pack_block(t, params[r * groups + g], codes.data() + r * cols + g * G, out + (r * groups + g) * f.bytes);
}

}  // namespace tsm
