// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh: "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", arXiv 2210.17323) for the block formats of block_formats.h.
//
// Minimises ||X (W - Q)^T||^2 over the codes Q of W (rows = output features, cols = input features)
// given H = X^T X / n (cols, cols), the covariance of the layer's inputs: columns are quantized in
// order, and each column's rounding error, scaled by the Cholesky factor of H^-1, is pushed onto
// the columns not yet quantized (lazy batches of 128 columns). Block parameters of each group of
// block_format(t).values columns are fitted by the format's own quantizer when the sweep reaches the
// group, from the already-updated weights, then held fixed while its columns are coded one by one:
// GPTQ's grouped variant with group size = block size (32). For a k-quant super-block (256) only
// the units d, dmin are fixed on entry; each sub-block's scale (and min) is refitted when the sweep
// reaches the sub-block (16 or 32 columns), by llama.cpp's importance-weighted search with the
// weights of its --imatrix quantization (quantize_row_q*_K_impl, llama.cpp PR #4861: importance =
// diag(H), the mean squared input per column), quantized against those units. Without the refit the
// sweep's updates drift out of a range fitted 256 columns earlier and GPTQ loses to plain rounding
// on gpt2-man; with it, KL falls by 18-46% on gpt2-man and llama-man (tests/core/test_k_quants.cpp).
// Dead inputs (H_jj = 0) are zeroed; H is damped by `damp` * mean(diag H).
// Invariant: the output is blocks of the format as ggml lays them out (header fields in range, one
// code per value), so any decoder of the format reads it unchanged.
#pragma once
#include <cstdint>

#include "common/matrix.h"
#include "methods/block_quant/block_formats.h"

namespace tsm {

/// W (rows, cols), H (cols, cols), G = block_format(t).values.
/// rows_per_block 1: cols a multiple of G; out: rows * (cols / G) blocks, row-major (row r's blocks
/// at out + r * (cols / G) * bytes).
/// rows_per_block k > 1 (narrow inputs, cols * k == G, rows a multiple of k, cols a multiple of the
/// sub-block): block b holds rows b*k .. b*k+k-1 one after the other; out: rows / k blocks. The
/// block's units are fitted at column 0 from all k rows; sub-block scales are refitted per row as
/// the sweep reaches them, as for row-wise blocks.
void gptq_quantize(BlockType t, ConstMatrixRef W, const MatrixRMd& H, uint8_t* out, double damp = 0.01, int rows_per_block = 1);

}  // namespace tsm
