// llama.cpp block formats (see block_formats.h): ggml's reference quantizers, split into block
// parameters, per-value codes and packing; the k-quants are in k_quants.cpp.
#include "methods/block_quant/block_formats.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common/dtype.h"
#include "common/error.h"
#include "methods/block_quant/half_bytes.h"
#include "methods/block_quant/k_quants.h"

// ggml's expressions evaluated as written (x * id + 8.5f rounds twice), also in the intrinsics: with
// contraction to FMA (GCC's default under -march=x86-64-v3, and on aarch64) a code could differ from
// ggml's reference at a rounding boundary (measured: 1 in ~10^6 for q4_0 and q5_0).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tsm {

namespace {

constexpr int kQK = 32;

constexpr int kQK_K = kquant::kQK_K;

// In BlockType order. constexpr, so it is constant-initialized: the codecs of the method table read
// it during static initialization of another translation unit (with plain const, GCC initializes it
// dynamically, and the table's codecs would see zeros depending on link order).
constexpr BlockFormat kFormats[] = {
    {BlockType::kQ8_0, "q8_0", kQK, 34, 255, false, kQK},
    {BlockType::kQ4_0, "q4_0", kQK, 18, 16, false, kQK},
    {BlockType::kQ4_1, "q4_1", kQK, 20, 16, true, kQK},
    {BlockType::kQ5_0, "q5_0", kQK, 22, 32, false, kQK},
    {BlockType::kQ5_1, "q5_1", kQK, 24, 32, true, kQK},
    {BlockType::kQ2_K, "q2_k", kQK_K, 84, 4, true, 16},
    {BlockType::kQ3_K, "q3_k", kQK_K, 110, 8, false, 16},
    {BlockType::kQ4_K, "q4_k", kQK_K, 144, 16, true, 32},
    {BlockType::kQ5_K, "q5_k", kQK_K, 176, 32, true, 32},
    {BlockType::kQ6_K, "q6_k", kQK_K, 210, 64, false, 16},
};

bool is_k(BlockType t) { return block_format(t).values == kQK_K; }

using namespace block_half;

/// ggml's truncating cast (int8_t)(v) for v already clamped to a safe range.
int trunc_code(float v, int lo, int hi) { return std::clamp(static_cast<int>(std::clamp(v, -1.f, 255.f)), lo, hi); }

}  // namespace

const BlockFormat& block_format(BlockType t) { return kFormats[static_cast<int>(t)]; }

std::optional<BlockType> parse_block_type(std::string_view name) {
  for (const auto& f : kFormats)
    if (f.name == name) return f.type;
  return std::nullopt;
}

BlockParams fit_block(BlockType t, const float* x) {
  BlockParams p;
  if (is_k(t)) {
    uint8_t L[kQK_K];  // phase-1 codes, not needed by a caller that codes value by value
    kquant::fit(t, x, p, L);
    return p;
  }
  const bool asym = block_format(t).has_min;
  if (t == BlockType::kQ8_0) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    p.d = amax / 127.f;
  } else if (!asym) {
    // The value of largest magnitude, with its sign, maps to the most negative code.
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    p.d = max / (t == BlockType::kQ4_0 ? -8.f : -16.f);
  } else {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    p.d = (mx - mn) / float(block_format(t).levels - 1);
    p.m = mn;
  }
  p.id = p.d != 0 ? 1.0f / p.d : 0.0f;
  p.d_stored = round_f16(p.d);
  p.m_stored = asym ? round_f16(p.m) : 0.f;
  return p;
}

namespace {

/// roundf (half away from zero) in a form the compiler vectorizes: trunc, then one step away
/// from zero when the remainder is at least a half. Same result as roundf for every float.
inline float round_half_away(float v) {
  const float t = std::trunc(v), f = v - t;
  return t + float(f >= 0.5f) - float(f <= -0.5f);
}

/// q8_0 codes of one block: clamp(roundf(x * id), -127, 127). AVX2: 8 lanes at a time with the
/// same rounding (trunc, then a step away from zero at a remainder of one half); else scalar.
inline void quantize_q8_0_codes(const float* x, float id, int8_t* q) {
#if defined(__AVX2__)
  const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f),
               one = _mm256_set1_ps(1.f), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  __m256i lanes[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(v, t);
    t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(f, half, _CMP_GE_OQ), one));
    t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(f, mhalf, _CMP_LE_OQ), one));
    lanes[k] = _mm256_cvttps_epi32(_mm256_min_ps(hi, _mm256_max_ps(lo, t)));
  }
  // 32 x i32 -> 32 x i8 in order: the packs work per 128-bit lane, the permute restores the order.
  const __m256i s01 = _mm256_packs_epi32(lanes[0], lanes[1]), s23 = _mm256_packs_epi32(lanes[2], lanes[3]);
  const __m256i b = _mm256_packs_epi16(s01, s23);
  const __m256i ordered = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
#else
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<int8_t>(static_cast<int>(std::clamp(round_half_away(x[j] * id), -127.f, 127.f)));
#endif
}

/// Codes of one block of a 4- or 5-bit type: trunc((x - m) * id + offset) clamped to
/// [0, levels - 1], which is ggml's (int8_t)(x * id + 8.5f) / MIN(15, ...) for values in range.
inline void quantize_small_codes(BlockType t, const BlockParams& p, const float* x, int* q) {
  const bool asym = t == BlockType::kQ4_1 || t == BlockType::kQ5_1;
  const float off = t == BlockType::kQ4_0 ? 8.5f : t == BlockType::kQ5_0 ? 16.5f : 0.5f;
  const float top = t == BlockType::kQ4_0 || t == BlockType::kQ4_1 ? 15.f : 31.f;
  const float m = asym ? p.m : 0.f;
#if defined(__AVX2__)
  const __m256 vid = _mm256_set1_ps(p.id), vm = _mm256_set1_ps(m), voff = _mm256_set1_ps(off),
               vtop = _mm256_set1_ps(top), zero = _mm256_setzero_ps();
  for (int k = 0; k < kQK; k += 8) {
    // mul then add (two roundings, as ggml), not an fma
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + k), vm), vid), voff);
    const __m256 c = _mm256_min_ps(vtop, _mm256_max_ps(zero, _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_cvttps_epi32(c));
  }
#else
  for (int j = 0; j < kQK; ++j) q[j] = quantize_value(t, p, j, x[j]);
#endif
}

}  // namespace

int quantize_value(BlockType t, const BlockParams& p, int j, float x) {
  if (is_k(t)) return kquant::code(t, p, j, x);
  const float id = p.id;
  switch (t) {
    case BlockType::kQ8_0: return static_cast<int>(std::clamp(round_half_away(x * id), -127.f, 127.f));
    case BlockType::kQ4_0: return trunc_code(x * id + 8.5f, 0, 15);
    case BlockType::kQ5_0: return trunc_code(x * id + 16.5f, 0, 31);
    case BlockType::kQ4_1: return trunc_code((x - p.m) * id + 0.5f, 0, 15);
    case BlockType::kQ5_1: return trunc_code((x - p.m) * id + 0.5f, 0, 31);
    default: break;
  }
  return 0;
}

float dequantize_code(BlockType t, const BlockParams& p, int j, int q) {
  if (is_k(t)) return kquant::value(t, p, j, q);
  switch (t) {
    case BlockType::kQ8_0: return float(q) * p.d_stored;
    case BlockType::kQ4_0: return float(q - 8) * p.d_stored;
    case BlockType::kQ5_0: return float(q - 16) * p.d_stored;
    case BlockType::kQ4_1:
    case BlockType::kQ5_1: return float(q) * p.d_stored + p.m_stored;
    default: break;
  }
  return 0;
}

void pack_block(BlockType t, const BlockParams& p, const int* q, uint8_t* out) {
  if (is_k(t)) {
    uint8_t L[kQK_K];
    const int top = block_format(t).levels - 1;
    for (int j = 0; j < kQK_K; ++j) L[j] = static_cast<uint8_t>(std::clamp(q[j], 0, top));
    kquant::pack(t, p, L, out);
    return;
  }
  put_f16(out, p.d);
  uint8_t* body = out + 2;
  if (block_format(t).has_min) {
    put_f16(out + 2, p.m);
    body = out + 4;
  }
  if (t == BlockType::kQ8_0) {
    for (int j = 0; j < kQK; ++j) body[j] = static_cast<uint8_t>(static_cast<int8_t>(q[j]));
    return;
  }
  uint8_t* qs = body;
  if (t == BlockType::kQ5_0 || t == BlockType::kQ5_1) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      qh |= uint32_t((q[j] & 0x10) >> 4) << j;
      qh |= uint32_t((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(body, &qh, 4);  // little-endian hosts (x86-64, aarch64), as ggml's memcpy
    qs = body + 4;
  }
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

void quantize_row(BlockType t, const float* x, int64_t n, uint8_t* out) {
  const int values = block_format(t).values, bytes = block_format(t).bytes;
  if (n % values != 0)
    throw Error("quantize_row: " + std::to_string(n) + " values is not a multiple of " + std::to_string(values));
  if (is_k(t)) {
    for (int64_t b = 0; b < n / values; ++b) kquant::quantize_superblock(t, x + b * values, out + b * bytes);
    return;
  }
  int q[kQK];
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    const BlockParams p = fit_block(t, xb);
    if (t == BlockType::kQ8_0) {  // the hot type: a loop of its own, vectorized
      int8_t* qs = reinterpret_cast<int8_t*>(out + b * bytes + 2);
      put_f16(out + b * bytes, p.d);
      quantize_q8_0_codes(xb, p.id, qs);
      continue;
    }
    quantize_small_codes(t, p, xb, q);
    pack_block(t, p, q, out + b * bytes);
  }
}

void dequantize_row(BlockType t, const uint8_t* in, int64_t n, float* y) {
  const BlockFormat& f = block_format(t);
  if (is_k(t)) {
    for (int64_t b = 0; b < n / f.values; ++b) kquant::dequantize_superblock(t, in + b * f.bytes, y + b * f.values);
    return;
  }
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = in + b * f.bytes;
    float* yb = y + b * kQK;
    const float d = get_f16(blk);
    const float m = f.has_min ? get_f16(blk + 2) : 0.f;
    const uint8_t* body = blk + (f.has_min ? 4 : 2);
    switch (t) {
      case BlockType::kQ8_0:
        for (int j = 0; j < kQK; ++j) yb[j] = float(static_cast<int8_t>(body[j])) * d;
        break;
      case BlockType::kQ4_0:
        for (int j = 0; j < kQK / 2; ++j) {
          yb[j] = float((body[j] & 0x0F) - 8) * d;
          yb[j + 16] = float((body[j] >> 4) - 8) * d;
        }
        break;
      case BlockType::kQ4_1:
        for (int j = 0; j < kQK / 2; ++j) {
          yb[j] = float(body[j] & 0x0F) * d + m;
          yb[j + 16] = float(body[j] >> 4) * d + m;
        }
        break;
      case BlockType::kQ5_0:
      case BlockType::kQ5_1: {
        uint32_t qh;
        std::memcpy(&qh, body, 4);
        const uint8_t* qs = body + 4;
        const int off = t == BlockType::kQ5_0 ? 16 : 0;
        for (int j = 0; j < kQK / 2; ++j) {
          const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
          const int q0 = ((qs[j] & 0x0F) | h0) - off, q1 = ((qs[j] >> 4) | h1) - off;
          yb[j] = float(q0) * d + m;
          yb[j + 16] = float(q1) * d + m;
        }
        break;
      }
      default: break;
    }
  }
}

}  // namespace tsm
