// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh: "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", arXiv 2210.17323) for the block formats of block_formats.h.
//
// Minimises ||X (W - Q)^T||^2 over the codes Q of W (rows = output features, cols = input features)
// given H = X^T X / n (cols, cols), the covariance of the layer's inputs: columns are quantized in
// order, and each column's rounding error, scaled by the Cholesky factor of H^-1, is pushed onto
// the columns not yet quantized (lazy batches of 128 columns). Block parameters (d, m) of each
// 32-column group are fitted when the group is reached, from the already-updated weights, which is
// GPTQ's grouped variant with group size = block size. Dead inputs (H_jj = 0) are zeroed; H is
// damped by `damp` * mean(diag H).
// Invariant: the output has exactly the bytes quantize_row() would write for some codes, so any
// decoder of the format reads it unchanged.
#pragma once
#include <cstdint>

#include "common/matrix.h"
#include "methods/block_quant/block_formats.h"

namespace tsm {

/// W (rows, cols) with cols a multiple of 32, H (cols, cols). out: rows * (cols / 32) blocks,
/// row-major (row r's blocks at out + r * (cols / 32) * bytes).
void gptq_quantize(BlockType t, ConstMatrixRef W, const MatrixRMd& H, uint8_t* out, double damp = 0.01);

}  // namespace tsm
