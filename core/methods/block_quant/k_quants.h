// llama.cpp's k-quant super-block formats, one super-block of QK_K = 256 values at a time: the bytes
// of block_q2_K, block_q3_K, block_q4_K, block_q5_K and block_q6_K (ggml/src/ggml-common.h of
// ggerganov/llama.cpp), written by a port of ggml's reference quantizers quantize_row_q*_K_ref
// (ggml/src/ggml-quants.c: make_qkx2_quants, make_q3_quants, make_qx_quants, nearest_int,
// get_scale_min_k4), byte for byte (tests/core/test_k_quants.cpp holds golden bytes from llama.cpp).
//
//   type  llama.cpp   bytes  sub-blocks  layout (byte offsets, f16 little-endian)              value of code q in sub-block s
//   q2_k  block_q2_K   84    16 x 16     scales[16] @0 (lo nibble sc, hi nibble m), qs[64] @16,  d * sc_s * q - dmin * m_s
//                                        d @80, dmin @82                                          (q 0..3)
//   q3_k  block_q3_K  110    16 x 16     hmask[32] @0, qs[64] @32, scales[12] @96 (16 x 6 bits,   d * (sc_s - 32) * (q - 4)
//                                        biased by 32), d @108                                    (q 0..7)
//   q4_k  block_q4_K  144     8 x 32     d @0, dmin @2, scales[12] @4 (8 x 6-bit sc, 8 x 6-bit m), d * sc_s * q - dmin * m_s
//                                        qs[128] @16                                              (q 0..15)
//   q5_k  block_q5_K  176     8 x 32     d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48    as q4_k (q 0..31)
//   q6_k  block_q6_K  210    16 x 16     ql[128] @0, qh[64] @128, scales[16] @192 (i8), d @208    d * sc_s * (q - 32) (q 0..63)
//
// Where value j's code lives (h, k, l as in ggml's loops):
//   q2_k, q3_k low 2 bits: j = 128h + 32k + l -> qs[32h + l] bits 2k..2k+1; q3_k bit 2: hmask[j % 32] bit j / 32.
//   q4_k, q5_k low 4 bits: j = 64h + 32k + l -> qs[32h + l] nibble k; q5_k bit 4: qh[l] bit 2h + k.
//   q6_k: j = 128h + 32k + l -> low 4 bits in ql[64h + 32(k & 1) + l] nibble k >> 1, bits 4-5 in
//   qh[32h + l] bits 2k..2k+1.
//   6-bit sc / m of q4_k, q5_k (get_scale_min_k4): s < 4: sc = scales[s] & 63, m = scales[s + 4] & 63;
//   s >= 4: sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4, m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4.
//   q3_k 6-bit sc: low 4 bits in scales[s] (s < 8) or scales[s - 8] >> 4, high 2 bits (scales[8 + s % 4] >> 2(s / 4)) & 3.
//
// Quantization is two passes, as in ggml: each sub-block fits its own scale (and min) to its values
// (phase 1, which also yields first codes), the sub-block scales are quantized against the largest
// one (d, dmin in f16), and every value is re-coded with the decoded sub-block scale (phase 2); a
// sub-block whose quantized scale is 0 keeps its phase-1 codes (they decode to -dmin * m_s or 0).
// The floating-point expressions are ggml's in ggml's order with contraction to FMA off, so the
// bytes do not depend on the target's FMA units; the AVX2 candidate searches keep each candidate's
// operations and their order, so they do not change the bytes either.
#pragma once
#include <cstdint>

#include "methods/block_quant/block_formats.h"

namespace tsm::kquant {

constexpr int kQK_K = 256;

/// Phase 1 for the 256 values at x: p's header (d, dmin as f32 and f16-rounded, the scale bytes as
/// stored, each sub-block's decoded scale and min) and ggml's phase-1 codes L (256), as stored codes.
/// portable: the scalar candidate searches even where the AVX2 ones are built (the same bytes).
void fit(BlockType t, const float* x, BlockParams& p, uint8_t* L, bool portable = false);
/// GPTQ's per-sub-block refit: sub-block s's scale (and min) fitted to its current values x
/// (sub_values floats), quantized against p's fixed super-block units d_stored / m_stored (clamped to
/// what the header holds); p's scale bytes, sub_d and sub_m updated. importance (sub_values, the
/// inputs' mean squares) null: the reference quantizer's sub-block search and weights; else
/// llama.cpp's imatrix search (quantize_row_q*_K_impl): weights importance * sqrt(sigma2 + x^2),
/// sigma2 from the super-block's values as there (q2_k: mean x^2; others: 2 mean x^2).
void refit_sub_block(BlockType t, BlockParams& p, int s, const float* x, const float* importance = nullptr, float sigma2 = 0);
/// The code of value x at position j (0..255) under p: ggml's phase-2 rounding. A sub-block whose
/// decoded scale is 0 gets code 0 here (any code decodes to the same value there).
int code(BlockType t, const BlockParams& p, int j, float x);
/// The value code q at position j decodes to, as ggml's dequantize_row_q*_K computes it.
float value(BlockType t, const BlockParams& p, int j, int q);
/// One super-block (block_format(t).bytes bytes) from p's header and the 256 codes L.
void pack(BlockType t, const BlockParams& p, const uint8_t* L, uint8_t* out);

/// quantize_row_q*_K_ref for one super-block: x (256) -> out (block_format(t).bytes). The candidate
/// scale searches run 8 candidates per AVX2 instruction where built (portable = false), each with the
/// scalar loop's operations in its order: the bytes are the same either way.
void quantize_superblock(BlockType t, const float* x, uint8_t* out, bool portable = false);
/// dequantize_row_q*_K for one super-block: in -> y (256).
void dequantize_superblock(BlockType t, const uint8_t* in, float* y);

}  // namespace tsm::kquant
