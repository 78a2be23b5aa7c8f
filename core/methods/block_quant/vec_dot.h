// Activation quantization and integer dot products for the 32-value block types (q8_0, q4_0, q4_1,
// q5_0, q5_1), as llama.cpp's quantize_row_q8_0 / ggml_vec_dot_q*_q8_*: an activation row is cut into
// blocks of 32, each quantized to int8 codes with one f32 scale, and a weight block's codes are
// multiplied with them in integers; scales (and a q4_1 / q5_1 block's minimum) are applied per block.
// Plus the f32 dot product that the k-quant operator uses on super-blocks it decodes (block_linear.h).
//
// Kernel path, chosen at COMPILE time from the target macros (compiled_path() says which one built):
//   __AVX2__ (x86-64-v3: AVX2 + FMA + F16C)   kAvx2: _mm256_maddubs_epi16 pairs, _mm256_madd_epi16, FMA
//   __ARM_NEON && __ARM_FEATURE_DOTPROD        kNeonDotprod: vdotq_s32 (Cortex-A76 built with -mcpu=cortex-a76)
//   __ARM_NEON                                  kNeon: vmull_s8 / vmlal_s8 + vpadalq_s16 (Cortex-A72 baseline)
//   otherwise                                   kScalar: portable C++
// The *_scalar functions are always built (tests compare the compiled path with them).
//
// Activation block (BlockQ8, 40 bytes): d = max|x_j| / 127 over the block (f32, not rounded to f16
// as ggml's q8_0 is), qs[j] = round-half-even(x_j / d) clamped to [-127, 127], s = d * sum(qs).
// All paths produce the same codes (round to nearest even everywhere).
//
// Error bound of a dot product (what tests/core/test_compressed_linear.cpp asserts): with w the
// decoded weights and x the f32 activations, |dot(w, q8(x)) - w.x| <= sum_b (amax_b / 254) ||w_b||_1
// (+ f32 rounding, <= 4 n u sum_j |x_j w_j|, u = 2^-24), amax_b = max_j |x_j| over block b. By
// Cauchy-Schwarz over a block of 32 this is <= (sqrt(32) / 254) ||x|| ||w|| = 0.0223 ||x|| ||w||.
#pragma once
#include <cstdint>

#include "methods/block_quant/block_formats.h"

namespace tsm::vec_dot {

inline constexpr int kQ8Values = 32;

/// One quantized block of 32 activations. Invariant: |d * qs[j] - x_j| <= d / 2 (+ rounding of d).
struct BlockQ8 {
  float d = 0;          ///< scale: max |x_j| / 127 (0 for an all-zero block)
  float s = 0;          ///< d * sum_j qs[j], for the minimum term of q4_1 / q5_1
  int8_t qs[kQ8Values] = {};
};

enum class Path { kAvx2, kNeonDotprod, kNeon, kScalar };
Path compiled_path();
const char* path_name(Path p);

/// Whether dot_q8 handles weights of type t (the 32-value types; the k-quants decode instead).
bool has_q8_kernel(BlockType t);

/// x (n) -> n / 32 blocks out (n a multiple of 32; callers zero-pad).
void quantize_q8(const float* x, int64_t n, BlockQ8* out);
void quantize_q8_scalar(const float* x, int64_t n, BlockQ8* out);

/// sum over nb blocks of decode(weight block b) . decode(a[b]) for `w`, nb stored blocks of type t
/// (block_format(t).bytes each, ggml's bytes). t must satisfy has_q8_kernel (else tsm::Error).
float dot_q8(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb);
float dot_q8_scalar(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb);

/// sum_j a[j] b[j] over n floats, in f32 with several accumulators.
float dot_f32(const float* a, const float* b, int64_t n);

}  // namespace tsm::vec_dot
