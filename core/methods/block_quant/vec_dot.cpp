// Activation quantization and block dot products (see vec_dot.h). The AVX2 kernels follow
// llama.cpp's ggml-cpu quants.c (bytes_from_nibbles_32, bytes_from_bits_32, mul_sum_i8_pairs); the
// NEON kernels use vdotq_s32 where the target has the dot-product extension.
#include "methods/block_quant/vec_dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/dtype.h"
#include "common/error.h"

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace tsm::vec_dot {

namespace {

constexpr int kQK = kQ8Values;

/// An f16 field (unaligned, little-endian) as f32, with the target's conversion instruction.
inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);
#elif defined(__aarch64__)
  __fp16 v;
  std::memcpy(&v, &h, 2);
  return float(v);
#else
  return half_to_float(h);
#endif
}

/// The 32 weight codes of one block as integers, ggml's value order (j < 16: low nibbles), and the
/// block's scale and minimum: q8_0 codes as stored, q4_0 code - 8, q5_0 code - 16, q4_1 / q5_1 the
/// unsigned code (value = d * q + m).
inline void codes_of(BlockType t, const uint8_t* blk, int* q, float& d, float& m) {
  d = f16_at(blk);
  m = 0;
  switch (t) {
    case BlockType::kQ8_0:
      for (int j = 0; j < kQK; ++j) q[j] = static_cast<int8_t>(blk[2 + j]);
      return;
    case BlockType::kQ4_0:
    case BlockType::kQ4_1: {
      const bool asym = t == BlockType::kQ4_1;
      if (asym) m = f16_at(blk + 2);
      const uint8_t* qs = blk + (asym ? 4 : 2);
      const int off = asym ? 0 : 8;
      for (int j = 0; j < kQK / 2; ++j) {
        q[j] = (qs[j] & 0x0F) - off;
        q[j + 16] = (qs[j] >> 4) - off;
      }
      return;
    }
    case BlockType::kQ5_0:
    case BlockType::kQ5_1: {
      const bool asym = t == BlockType::kQ5_1;
      if (asym) m = f16_at(blk + 2);
      uint32_t qh;
      std::memcpy(&qh, blk + (asym ? 4 : 2), 4);
      const uint8_t* qs = blk + (asym ? 8 : 6);
      const int off = asym ? 0 : 16;
      for (int j = 0; j < kQK / 2; ++j) {
        q[j] = ((qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - off;
        q[j + 16] = ((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off;
      }
      return;
    }
    default: throw Error("vec_dot: no q8 kernel for block type " + std::string(block_format(t).name));
  }
}

#if defined(__AVX2__)

inline float hsum(__m256 x) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

/// 32 nibbles of 16 bytes: low nibbles in bytes 0..15, high nibbles in 16..31 (ggml's order).
inline __m256i bytes_from_nibbles_32(const uint8_t* p) {
  const __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i b = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
  return _mm256_and_si256(_mm256_set1_epi8(0x0F), b);
}

/// Byte j = 0xFF where bit j of the 32-bit word at p is set, else 0.
inline __m256i bytes_from_bits_32(const uint8_t* p) {
  uint32_t x32;
  std::memcpy(&x32, p, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x32)), shuf);
  b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/// sum of ax * sy over 32 bytes (ax unsigned <= 128, sy signed <= 127 in magnitude: no i16
/// saturation, 2 * 128 * 127 < 32767), as 8 f32 partial sums.
inline __m256 mul_sum_us8(__m256i ax, __m256i sy) {
  const __m256i dot = _mm256_maddubs_epi16(ax, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)));
}

/// sum of x * y over 32 signed bytes.
inline __m256 mul_sum_i8(__m256i x, __m256i y) { return mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)); }

float dot_avx2(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb) {
  const int bytes = block_format(t).bytes;
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;
  for (int64_t b = 0; b < nb; ++b, w += bytes) {
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[b].qs));
    const __m256 d = _mm256_set1_ps(f16_at(w) * a[b].d);
    switch (t) {
      case BlockType::kQ8_0: {
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
        break;
      }
      case BlockType::kQ4_0: {
        const __m256i qx = _mm256_sub_epi8(bytes_from_nibbles_32(w + 2), _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
        break;
      }
      case BlockType::kQ4_1: {
        summs += f16_at(w + 2) * a[b].s;
        acc = _mm256_fmadd_ps(d, mul_sum_us8(bytes_from_nibbles_32(w + 4), qy), acc);
        break;
      }
      case BlockType::kQ5_0: {
        // code - 16 as a signed byte: the low nibble, with 0xF0 or-ed in where bit 4 is clear.
        __m256i qx = bytes_from_nibbles_32(w + 6);
        qx = _mm256_or_si256(qx, _mm256_andnot_si256(bytes_from_bits_32(w + 2), _mm256_set1_epi8(char(0xF0))));
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
        break;
      }
      case BlockType::kQ5_1: {
        summs += f16_at(w + 2) * a[b].s;
        __m256i qx = bytes_from_nibbles_32(w + 8);
        qx = _mm256_or_si256(qx, _mm256_and_si256(bytes_from_bits_32(w + 4), _mm256_set1_epi8(0x10)));
        acc = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc);
        break;
      }
      default: throw Error("vec_dot: no q8 kernel for block type " + std::string(block_format(t).name));
    }
  }
  return hsum(acc) + summs;
}

void quantize_avx2(const float* x, int64_t n, BlockQ8* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(xb + 8 * k);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(mx, 1), _mm256_castps256_ps128(mx));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.f, id = d != 0 ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
    __m256i q[4];
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[k] = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_max_ps(lo, r)));
      sum = _mm256_add_epi32(sum, q[k]);
    }
    const __m256i s01 = _mm256_packs_epi32(q[0], q[1]), s23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i packed = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(s01, s23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), packed);
    __m128i s4 = _mm_add_epi32(_mm256_extracti128_si256(sum, 1), _mm256_castsi256_si128(sum));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    out[b].d = d;
    out[b].s = d * float(_mm_cvtsi128_si32(s4));
  }
}

#elif defined(__ARM_NEON)

/// sum of w * a over 32 signed bytes (|w| <= 128, |a| <= 127: vmlal_s8 of two products fits i16).
inline int32_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vaddvq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, a0), w1, a1));
#else
  int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
  p0 = vmlal_s8(p0, vget_high_s8(w0), vget_high_s8(a0));
  int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(a1));
  p1 = vmlal_s8(p1, vget_high_s8(w1), vget_high_s8(a1));
  return vaddvq_s32(vpadalq_s16(vpaddlq_s16(p0), p1));
#endif
}

/// Bytes 0..15 (low) and 16..31 (high) = 0x10 where bits 0..15 / 16..31 of the word at p are set.
inline void high_bits(const uint8_t* p, uint8x16_t& lo, uint8x16_t& hi) {
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  static const uint8_t kBits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bits = vld1q_u8(kBits), ten = vdupq_n_u8(0x10);
  const uint8x16_t b01 = vcombine_u8(vdup_n_u8(uint8_t(qh)), vdup_n_u8(uint8_t(qh >> 8)));
  const uint8x16_t b23 = vcombine_u8(vdup_n_u8(uint8_t(qh >> 16)), vdup_n_u8(uint8_t(qh >> 24)));
  lo = vandq_u8(vtstq_u8(b01, bits), ten);
  hi = vandq_u8(vtstq_u8(b23, bits), ten);
}

float dot_neon(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb) {
  const int bytes = block_format(t).bytes;
  float sum = 0;
  const uint8x16_t low = vdupq_n_u8(0x0F);
  for (int64_t b = 0; b < nb; ++b, w += bytes) {
    const int8x16_t a0 = vld1q_s8(a[b].qs), a1 = vld1q_s8(a[b].qs + 16);
    const float d = f16_at(w) * a[b].d;
    int8x16_t w0, w1;
    switch (t) {
      case BlockType::kQ8_0:
        w0 = vld1q_s8(reinterpret_cast<const int8_t*>(w + 2));
        w1 = vld1q_s8(reinterpret_cast<const int8_t*>(w + 18));
        break;
      case BlockType::kQ4_0:
      case BlockType::kQ4_1: {
        const bool asym = t == BlockType::kQ4_1;
        const uint8x16_t v = vld1q_u8(w + (asym ? 4 : 2));
        w0 = vreinterpretq_s8_u8(vandq_u8(v, low));
        w1 = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        if (asym) {
          sum += f16_at(w + 2) * a[b].s;
        } else {
          w0 = vsubq_s8(w0, vdupq_n_s8(8));
          w1 = vsubq_s8(w1, vdupq_n_s8(8));
        }
        break;
      }
      case BlockType::kQ5_0:
      case BlockType::kQ5_1: {
        const bool asym = t == BlockType::kQ5_1;
        uint8x16_t hlo, hhi;
        high_bits(w + (asym ? 4 : 2), hlo, hhi);
        const uint8x16_t v = vld1q_u8(w + (asym ? 8 : 6));
        w0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, low), hlo));
        w1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), hhi));
        if (asym) {
          sum += f16_at(w + 2) * a[b].s;
        } else {
          w0 = vsubq_s8(w0, vdupq_n_s8(16));
          w1 = vsubq_s8(w1, vdupq_n_s8(16));
        }
        break;
      }
      default: throw Error("vec_dot: no q8 kernel for block type " + std::string(block_format(t).name));
    }
    sum += d * float(dot32(w0, w1, a0, a1));
  }
  return sum;
}

void quantize_neon(const float* x, int64_t n, BlockQ8* out) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float32x4_t v[8];
    float32x4_t mx = vdupq_n_f32(0);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(xb + 4 * k);
      mx = vmaxq_f32(mx, vabsq_f32(v[k]));
    }
    const float amax = vmaxvq_f32(mx);
    const float d = amax / 127.f, id = d != 0 ? 1.0f / d : 0.0f;
    int32x4_t sum = vdupq_n_s32(0);
    int16x4_t h[8];
    for (int k = 0; k < 8; ++k) {
      const float32x4_t r = vminq_f32(vdupq_n_f32(127.f), vmaxq_f32(vdupq_n_f32(-127.f), vmulq_n_f32(v[k], id)));
      const int32x4_t q = vcvtnq_s32_f32(r);  // round to nearest, ties to even
      sum = vaddq_s32(sum, q);
      h[k] = vmovn_s32(q);
    }
    for (int k = 0; k < 4; ++k) vst1_s8(out[b].qs + 8 * k, vmovn_s16(vcombine_s16(h[2 * k], h[2 * k + 1])));
    out[b].d = d;
    out[b].s = d * float(vaddvq_s32(sum));
  }
}

#endif

}  // namespace

Path compiled_path() {
#if defined(__AVX2__)
  return Path::kAvx2;
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
  return Path::kNeonDotprod;
#elif defined(__ARM_NEON)
  return Path::kNeon;
#else
  return Path::kScalar;
#endif
}

const char* path_name(Path p) {
  switch (p) {
    case Path::kAvx2: return "avx2";
    case Path::kNeonDotprod: return "neon-dotprod";
    case Path::kNeon: return "neon";
    case Path::kScalar: return "scalar";
  }
  return "?";
}

bool has_q8_kernel(BlockType t) { return block_format(t).values == kQK; }

void quantize_q8_scalar(const float* x, int64_t n, BlockQ8* out) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.f, id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      const int q = static_cast<int>(std::nearbyint(std::clamp(xb[j] * id, -127.f, 127.f)));  // ties to even
      out[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    out[b].d = d;
    out[b].s = d * float(sum);
  }
}

void quantize_q8(const float* x, int64_t n, BlockQ8* out) {
  if (n % kQK != 0) throw Error("quantize_q8: " + std::to_string(n) + " values is not a multiple of 32");
#if defined(__AVX2__)
  quantize_avx2(x, n, out);
#elif defined(__ARM_NEON)
  quantize_neon(x, n, out);
#else
  quantize_q8_scalar(x, n, out);
#endif
}

float dot_q8_scalar(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb) {
  if (!has_q8_kernel(t)) throw Error("vec_dot: no q8 kernel for block type " + std::string(block_format(t).name));
  const int bytes = block_format(t).bytes;
  float sum = 0;
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, w += bytes) {
    float d, m;
    codes_of(t, w, q, d, m);
    int32_t isum = 0;
    for (int j = 0; j < kQK; ++j) isum += q[j] * a[b].qs[j];
    sum += d * a[b].d * float(isum) + m * a[b].s;
  }
  return sum;
}

float dot_q8(BlockType t, const uint8_t* w, const BlockQ8* a, int64_t nb) {
  if (!has_q8_kernel(t)) throw Error("vec_dot: no q8 kernel for block type " + std::string(block_format(t).name));
#if defined(__AVX2__)
  return dot_avx2(t, w, a, nb);
#elif defined(__ARM_NEON)
  return dot_neon(t, w, a, nb);
#else
  return dot_q8_scalar(t, w, a, nb);
#endif
}

float dot_f32(const float* a, const float* b, int64_t n) {
  int64_t j = 0;
  float sum = 0;
#if defined(__AVX2__)
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  for (; j + 32 <= n; j += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), s3);
  }
  sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
#elif defined(__ARM_NEON)
  float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
  for (; j + 16 <= n; j += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + j), vld1q_f32(b + j));
    s1 = vfmaq_f32(s1, vld1q_f32(a + j + 4), vld1q_f32(b + j + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + j + 8), vld1q_f32(b + j + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + j + 12), vld1q_f32(b + j + 12));
  }
  sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
#else
  float s[8] = {};
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[j + k] * b[j + k];
  for (int k = 0; k < 8; ++k) sum += s[k];
#endif
  for (; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

}  // namespace tsm::vec_dot
