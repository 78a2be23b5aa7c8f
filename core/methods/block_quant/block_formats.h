// llama.cpp-compatible block quantization formats, one row at a time. A row of n values (n a
// multiple of the type's block length; callers pad with zeros) becomes n / values blocks of exactly
// the bytes ggml writes (ggml-common.h), so a row can be handed to a ggml-style kernel as it is:
//
//   type   values  bytes  layout (little-endian)                              value
//   q8_0   32      34     f16 d, i8 qs[32]                                     d * qs[j]
//   q4_0   32      18     f16 d, u8 qs[16]  (j: low nibble, j+16: high)        d * (q - 8)
//   q4_1   32      20     f16 d, f16 m, u8 qs[16]                              d * q + m
//   q5_0   32      22     f16 d, u32 qh, u8 qs[16] (bit 4 of value j in qh j)  d * (q - 16)
//   q5_1   32      24     f16 d, f16 m, u32 qh, u8 qs[16]                      d * q + m
//   q2_k   256     84     block_q2_K: 16 sub-blocks of 16, 4-bit scales and mins      (k_quants.h)
//   q3_k   256     110    block_q3_K: 16 sub-blocks of 16, 6-bit scales
//   q4_k   256     144    block_q4_K: 8 sub-blocks of 32, 6-bit scales and mins
//   q5_k   256     176    block_q5_K: 8 sub-blocks of 32, 6-bit scales and mins
//   q6_k   256     210    block_q6_K: 16 sub-blocks of 16, 8-bit scales
//
// Quantization follows ggml's reference (quantize_row_*_ref): symmetric types scale by the value
// of largest magnitude (signed, so it maps to the most negative code exactly), asymmetric ones by
// (max - min) / (levels - 1) from min; codes are rounded from the f32 scale, and values decode with
// the scale rounded to f16 as stored. Invariant: |x - decode(encode(x))| <= d / 2 + the f16
// rounding of d (and m) times the largest code, per block; q4_0 and q5_0 reach only 7 (15) steps on
// the side opposite to the largest magnitude, as in ggml, so there the error can reach one step d.
// The k-quants (k_quants.h) fit a scale (and min) per sub-block by ggml's weighted searches and
// quantize those against the super-block's f16 scale; their bound is stated in k_quants.h's tests.
//
// The same formats are split into a block's parameters, the code of one value and the packing, so
// error-feedback quantizers (GPTQ, gptq.h) can quantize column by column with fixed block parameters.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tsm {

enum class BlockType : uint8_t { kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K };

struct BlockFormat {
  BlockType type;
  std::string_view name;  ///< "q8_0", ..., "q4_k" (the method name; ggml's type name, "q4_K" for k-quants)
  int values;             ///< values per block (32; k-quants: a super-block of 256)
  int bytes;              ///< bytes per block
  int levels;             ///< codes per value (2^bits; q8_0: 255 symmetric codes -127..127)
  bool has_min;           ///< asymmetric (scale and min) rather than symmetric (scale)
  int sub_values;         ///< values per scale: = values, or a k-quant's sub-block (16 or 32)
};

const BlockFormat& block_format(BlockType t);
std::optional<BlockType> parse_block_type(std::string_view name);

/// The parameters of one block: scale d and offset m (0 for symmetric types), as f32 before the
/// f16 rounding of storage, plus the f16-rounded values that decoding uses. For a k-quant super-block
/// d and m are the super-block's d and dmin, and the scale bytes and per-sub-block decoded scale
/// and min are filled too.
struct BlockParams {
  float d = 0, m = 0;           ///< as quantization uses them
  float id = 0;                 ///< 1 / d (0 when d is 0), as ggml computes codes (32-value types)
  float d_stored = 0, m_stored = 0;  ///< as decoded (f16-rounded)
  uint8_t scales[16] = {};      ///< k-quants: the header's scale bytes as stored (12 or 16 used)
  float sub_d[16] = {};         ///< k-quants: decoded scale of sub-block s (16 or 8 used)
  float sub_m[16] = {};         ///< k-quants: decoded min of sub-block s, subtracted (0 for q3_k, q6_k)
};

/// ggml's parameters for the `values` floats at x (one block).
BlockParams fit_block(BlockType t, const float* x);
/// The code of value x at position j (0..values-1) of its block under p (ggml's rounding), and the
/// value that code decodes to.
int quantize_value(BlockType t, const BlockParams& p, int j, float x);
float dequantize_code(BlockType t, const BlockParams& p, int j, int code);
/// Writes one block of `codes` (values entries) with parameters p: block_format(t).bytes bytes.
void pack_block(BlockType t, const BlockParams& p, const int* codes, uint8_t* out);

/// n / values blocks: x (n) -> out (n / values * bytes). n must be a multiple of values.
void quantize_row(BlockType t, const float* x, int64_t n, uint8_t* out);
/// y (n) from n / values blocks.
void dequantize_row(BlockType t, const uint8_t* in, int64_t n, float* y);

}  // namespace tsm
