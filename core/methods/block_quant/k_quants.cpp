// llama.cpp k-quants (see k_quants.h): a port of ggml/src/ggml-quants.c's reference quantizers and
// dequantizers, split into fit (phase 1 + header), code, value and pack so GPTQ can drive them.
#include "methods/block_quant/k_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common/dtype.h"
#include "common/error.h"
#include "methods/block_quant/half_bytes.h"

// ggml's expressions are evaluated as written (mul, then add): no contraction to FMA, which
// -march=x86-64-v3 and aarch64 would otherwise do, so the bytes match llama.cpp's reference.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tsm::kquant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // GROUP_MAX_EPS

using namespace block_half;

/// ggml's nearest_int: round half to even through the float adder, for |fval| <= 4194303 (ggml
/// asserts that; callers here clamp first where the argument is not bounded by construction).
inline int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

inline int nearest_int_clamped(float fval) { return nearest_int(std::clamp(fval, -4194303.f, 4194303.f)); }

#if defined(__AVX2__)
// The candidate searches of make_qx_quants and make_qkx2_quants, 8 candidate scales per pass: lane c
// evaluates one candidate with exactly the scalar loop's float operations in the scalar loop's order
// (each a separate mul or add: this file does not contract to FMA), so its sums, scale, min and
// error are bit-identical to the scalar loop's; the choice among candidates then runs in order, as
// ggml's loop does. Bytes equal the portable path's (tested).

/// nearest_int on 8 lanes: the same float add and bit arithmetic.
inline __m256i nearest_int8(__m256 v) {
  const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
  return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

constexpr int kMaxCandidates = 40;  // ggml's searches: at most 37 (nstep 36)

/// Per-candidate results of one search: lane order = candidate order.
struct Candidates {
  alignas(32) float a[kMaxCandidates];  ///< qx: sumlx; qkx2: scale
  alignas(32) float b[kMaxCandidates];  ///< qx: suml2; qkx2: min
  alignas(32) float c[kMaxCandidates];  ///< qkx2: weighted error (mad)
  uint8_t ok[kMaxCandidates / 8];        ///< qkx2: bit c of pass p: D > 0 for candidate 8p + c
  alignas(32) int32_t L[kMaxCandidates / 8][32][8];  ///< codes: [pass][value][lane]
};

/// make_qx_quants' candidates iscale[k] (count of them) for n <= 32 values with weights w.
void qx_candidates_avx2(int n, int nmax, const float* x, const float* w, const float* iscale, int count, Candidates& out) {
  const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1);
  for (int p = 0; p * 8 < count; ++p) {
    const __m256 is = _mm256_load_ps(iscale + 8 * p);
    __m256 sumlx = _mm256_setzero_ps(), suml2 = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256i l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest_int8(_mm256_mul_ps(is, _mm256_set1_ps(x[i])))));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out.L[p][i]), l);
      const __m256 lf = _mm256_cvtepi32_ps(l);
      sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_set1_ps(w[i] * x[i]), lf));        // w * x * l
      suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w[i]), lf), lf));  // w * l * l
    }
    _mm256_store_ps(out.a + 8 * p, sumlx);
    _mm256_store_ps(out.b + 8 * p, suml2);
  }
}

/// make_qkx2_quants' candidates iscale[k] (count of them) for n <= 32 values.
void qkx2_candidates_avx2(int n, int nmax, const float* x, const float* weights, float min, float sum_w, float sum_x,
                          bool use_mad, const float* iscale, int count, Candidates& out) {
  const __m256i zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(nmax);
  const __m256 vsum_w = _mm256_set1_ps(sum_w), vsum_x = _mm256_set1_ps(sum_x), sign = _mm256_set1_ps(-0.f);
  __m256 lf[32];
  for (int p = 0; p * 8 < count; ++p) {
    const __m256 is = _mm256_load_ps(iscale + 8 * p);
    __m256 sum_l = _mm256_setzero_ps(), sum_l2 = _mm256_setzero_ps(), sum_xl = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      const __m256i l = _mm256_max_epi32(zero, _mm256_min_epi32(top, nearest_int8(_mm256_mul_ps(is, _mm256_set1_ps(x[i] - min)))));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out.L[p][i]), l);
      lf[i] = _mm256_cvtepi32_ps(l);
      const __m256 wl = _mm256_mul_ps(_mm256_set1_ps(weights[i]), lf[i]);
      sum_l = _mm256_add_ps(sum_l, wl);
      sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf[i]));
      sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
    }
    const __m256 D = _mm256_sub_ps(_mm256_mul_ps(vsum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
    __m256 scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(vsum_w, sum_xl), _mm256_mul_ps(vsum_x, sum_l)), D);
    __m256 mn = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, vsum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
    const __m256 pos = _mm256_cmp_ps(mn, _mm256_setzero_ps(), _CMP_GT_OQ);  // this_min > 0: 0, scale sum_xl / sum_l2
    mn = _mm256_andnot_ps(pos, mn);
    scale = _mm256_blendv_ps(scale, _mm256_div_ps(sum_xl, sum_l2), pos);
    __m256 mad = _mm256_setzero_ps();
    for (int i = 0; i < n; ++i) {
      __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, lf[i]), mn), _mm256_set1_ps(x[i]));
      diff = use_mad ? _mm256_andnot_ps(sign, diff) : _mm256_mul_ps(diff, diff);
      mad = _mm256_add_ps(mad, _mm256_mul_ps(_mm256_set1_ps(weights[i]), diff));
    }
    _mm256_store_ps(out.a + 8 * p, scale);
    _mm256_store_ps(out.b + 8 * p, mn);
    _mm256_store_ps(out.c + 8 * p, mad);
    out.ok[p] = static_cast<uint8_t>(_mm256_movemask_ps(_mm256_cmp_ps(D, _mm256_setzero_ps(), _CMP_GT_OQ)));
  }
}
#endif

/// The value of largest magnitude among x[0..n), with its sign (ggml's `max`; the first on ties).
float signed_absmax(int n, const float* x) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

/// make_qx_quants with rmse_type 1: the scale of n values for symmetric codes -nmax..nmax-1,
/// L = code + nmax, in the weights qw (ggml's quant weights; null: x^2). q6_k's sub-block fit.
/// simd: the AVX2 candidate search where built (same result).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw = nullptr, bool simd = true) {
  const float max = signed_absmax(n, x);
  if (std::fabs(max) < kGroupMaxEps) {  // all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
#if defined(__AVX2__)
  if (simd) {
    alignas(32) float isc[24] = {}, w[32];
    int count = 0;
    for (int is = -9; is <= 9; ++is)
      if (is != 0) isc[count++] = -(nmax + 0.1f * is) / max;
    for (int i = 0; i < n; ++i) w[i] = qw ? qw[i] : x[i] * x[i];
    Candidates c;
    qx_candidates_avx2(n, nmax, x, w, isc, count, c);
    for (int k = 0; k < count; ++k) {
      const float slx = c.a[k], sl2 = c.b[k];
      if (sl2 > 0 && slx * slx > best * sl2) {
        for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + c.L[k / 8][i][k % 8]);
        scale = slx / sl2;
        best = scale * slx;
      }
    }
    return scale;
  }
#endif
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// make_q3_quants with do_rmse: q3_k's sub-block fit (weights x^2, coordinate descent on codes);
/// L = code + nmax, or 0 for an all-zero sub-block.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(n, x);
  if (std::fabs(max) < kGroupMaxEps) {  // all zero
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sumlx / suml2;
}

/// make_qkx2_quants: scale and min (returned as -min >= 0 in *the_min) of n values for codes
/// 0..nmax, searching nstep + 1 candidate scales around (max - min) / nmax and refitting each by
/// weighted least squares (weighted absolute or squared error).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep, bool use_mad, bool simd = true) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    const float w = weights[i];
    best_mad += w * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
#if defined(__AVX2__)
  if (simd && nstep < kMaxCandidates) {
    // Candidate is depends on the min of the last accepted candidate (iscale and x - min use it), so
    // the candidates after an acceptance that moves the min are evaluated again with the new min.
    alignas(32) float isc[kMaxCandidates];
    Candidates c;
    int first = 0;
    while (first <= nstep) {  // windows of 8 candidates: an acceptance that moves the min costs one
      const int count = std::min(8, nstep + 1 - first);
      for (int k = 0; k < count; ++k) isc[k] = (rmin + rdelta * (first + k) + nmax) / (max - min);
      for (int k = count; k < 8; ++k) isc[k] = 0;
      qkx2_candidates_avx2(n, nmax, x, weights, min, sum_w, sum_x, use_mad, isc, count, c);
      int next = first + count;
      for (int k = 0; k < count; ++k) {
        if (!((c.ok[k / 8] >> (k % 8)) & 1) || !(c.c[k] < best_mad)) continue;
        for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(c.L[k / 8][i][k % 8]);
        best_mad = c.c[k];
        scale = c.a[k];
        const bool moved = !(c.b[k] == min);
        min = c.b[k];
        if (moved) {
          next = first + k + 1;
          break;
        }
      }
      first = next;
    }
    *the_min = -min;
    return scale;
  }
#endif
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        const float w = weights[i];
        mad += w * diff;
      }
      if (mad < best_mad) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

/// The 6-bit scale of q3_k's sub-block j, unbiased (-32..31).
inline int q3_scale(const uint8_t* scales, int j) {
  const int lo = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  return (lo | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/// Decoded sub-block scales and mins from the stored header (p.d_stored, p.m_stored, p.scales).
void decode_sub_scales(BlockType t, BlockParams& p) {
  switch (t) {
    case BlockType::kQ2_K:
      for (int j = 0; j < 16; ++j) {
        p.sub_d[j] = p.d_stored * (p.scales[j] & 0xF);
        p.sub_m[j] = p.m_stored * (p.scales[j] >> 4);
      }
      break;
    case BlockType::kQ3_K:
      for (int j = 0; j < 16; ++j) p.sub_d[j] = p.d_stored * q3_scale(p.scales, j), p.sub_m[j] = 0;
      break;
    case BlockType::kQ4_K:
    case BlockType::kQ5_K:
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, p.scales, &sc, &m);
        p.sub_d[j] = p.d_stored * sc;
        p.sub_m[j] = p.m_stored * m;
      }
      break;
    case BlockType::kQ6_K:
      for (int j = 0; j < 16; ++j) p.sub_d[j] = p.d_stored * static_cast<int8_t>(p.scales[j]), p.sub_m[j] = 0;
      break;
    default: break;
  }
}

void set_header(BlockParams& p, float d, float dmin) {
  p.d = d;
  p.m = dmin;
  p.id = 0;
  p.d_stored = round_f16(d);
  p.m_stored = round_f16(dmin);
}

// ---- phase 1 per type (quantize_row_q*_K_ref up to the requantization) --------------------------

void fit_q2_k(const float* x, BlockParams& p, uint8_t* L, bool simd) {
  uint8_t Laux[16];
  float weights[16], mins[16], scales[16];
  const float q4scale = 15.f;
  float max_scale = 0, max_min = 0;  // as we are deducting the min, scales are always positive
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true, simd);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float d = 0.f, dmin = 0.f;
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < 16; ++j) p.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    d = max_scale / q4scale;
  } else {
    for (int j = 0; j < 16; ++j) p.scales[j] = 0;
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < 16; ++j) p.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    dmin = max_min / q4scale;
  }
  set_header(p, d, dmin);
}

void fit_q3_k(const float* x, BlockParams& p, uint8_t* Lout) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  std::memset(p.scales, 0, sizeof p.scales);
  float d = 0.f;
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
      l = static_cast<int8_t>(std::max<int>(-32, std::min<int>(31, l)) + 32);
      if (j < 8) p.scales[j] = l & 0xF;
      else p.scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
      l = static_cast<int8_t>(l >> 4);
      p.scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
    }
    d = 1 / iscale;
  }
  set_header(p, d, 0.f);
  p.m = p.m_stored = 0;
  for (int i = 0; i < kQK_K; ++i) Lout[i] = static_cast<uint8_t>(L[i]);
}

/// q4_k (nmax 15) and q5_k (nmax 31): 8 sub-blocks of 32 with 6-bit scales and mins.
void fit_q45_k(const float* x, BlockParams& p, uint8_t* L, int nmax, float rmin, float rdelta, int nstep, bool simd) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;  // as we are deducting the min, scales are always positive
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false, simd);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(p.scales, 0, sizeof p.scales);
  for (int j = 0; j < 8; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      p.scales[j] = ls;
      p.scales[j + 4] = lm;
    } else {
      p.scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      p.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      p.scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  set_header(p, max_scale / 63.f, max_min / 63.f);
}

void fit_q6_k(const float* x, BlockParams& p, uint8_t* Lout, bool simd) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, nullptr, simd);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  std::memset(p.scales, 0, sizeof p.scales);
  if (max_abs_scale < kGroupMaxEps) {  // ggml zeroes the whole block
    set_header(p, 0.f, 0.f);
    std::memset(Lout, 0, kQK_K);
    return;
  }
  const float iscale = -128.f / max_scale;
  for (int ib = 0; ib < 16; ++ib) p.scales[ib] = static_cast<uint8_t>(static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib]))));
  set_header(p, 1 / iscale, 0.f);
  p.m = p.m_stored = 0;
  for (int i = 0; i < kQK_K; ++i) Lout[i] = static_cast<uint8_t>(L[i]);
}

}  // namespace

void fit(BlockType t, const float* x, BlockParams& p, uint8_t* L, bool portable) {
  const bool simd = !portable;
  switch (t) {
    case BlockType::kQ2_K: fit_q2_k(x, p, L, simd); break;
    case BlockType::kQ3_K: fit_q3_k(x, p, L); break;
    case BlockType::kQ4_K: fit_q45_k(x, p, L, 15, -1.f, 0.1f, 20, simd); break;
    case BlockType::kQ5_K: fit_q45_k(x, p, L, 31, -0.5f, 0.1f, 15, simd); break;
    case BlockType::kQ6_K: fit_q6_k(x, p, L, simd); break;
    default: throw Error("kquant::fit: not a k-quant type");
  }
  decode_sub_scales(t, p);
}

void refit_sub_block(BlockType t, BlockParams& p, int s, const float* x, const float* imp, float sigma2) {
  uint8_t L[32], Laux[32];
  int8_t Ls[16];
  float w[32];
  const int sv = block_format(t).sub_values;
  // ggml's quantize_row_q*_K_impl weights: importance x sqrt(sigma2 + x^2)
  if (imp)
    for (int l = 0; l < sv; ++l) w[l] = imp[l] * std::sqrt(sigma2 + x[l] * x[l]);
  switch (t) {
    case BlockType::kQ2_K: {
      float mn;
      float sc;
      if (imp) {
        sc = make_qkx2_quants(16, 3, x, w, L, &mn, Laux, -0.9f, 0.05f, 36, false);
      } else {
        for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[l]);
        sc = make_qkx2_quants(16, 3, x, w, L, &mn, Laux, -0.5f, 0.1f, 15, true);
      }
      const int ls = p.d_stored > 0 ? std::clamp(nearest_int_clamped(sc / p.d_stored), 0, 15) : 0;
      const int lm = p.m_stored > 0 ? std::clamp(nearest_int_clamped(mn / p.m_stored), 0, 15) : 0;
      p.scales[s] = static_cast<uint8_t>(ls | (lm << 4));
      break;
    }
    case BlockType::kQ3_K: {
      const float sc = imp ? make_qx_quants(16, 4, x, Ls, w) : make_q3_quants(16, 4, x, Ls);
      const int l = p.d_stored != 0 ? std::clamp(nearest_int_clamped(sc / p.d_stored), -32, 31) + 32 : 32;
      // low 4 bits at scales[s] (s < 8) or the high nibble of scales[s - 8]; bits 4-5 at scales[8 + s % 4]
      if (s < 8) p.scales[s] = static_cast<uint8_t>((p.scales[s] & 0xF0) | (l & 0xF));
      else p.scales[s - 8] = static_cast<uint8_t>((p.scales[s - 8] & 0x0F) | ((l & 0xF) << 4));
      const int sh = 2 * (s / 4);
      p.scales[8 + s % 4] = static_cast<uint8_t>((p.scales[8 + s % 4] & ~(3 << sh)) | ((l >> 4) << sh));
      break;
    }
    case BlockType::kQ4_K:
    case BlockType::kQ5_K: {
      const bool five = t == BlockType::kQ5_K;
      if (!imp) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[l]);
      }
      float mn;
      const float sc = imp ? make_qkx2_quants(32, five ? 31 : 15, x, w, L, &mn, Laux, -0.9f, 0.05f, 36, false)
                       : five ? make_qkx2_quants(32, 31, x, w, L, &mn, Laux, -0.5f, 0.1f, 15, false)
                              : make_qkx2_quants(32, 15, x, w, L, &mn, Laux, -1.f, 0.1f, 20, false);
      const int ls = p.d_stored > 0 ? std::clamp(nearest_int_clamped(sc / p.d_stored), 0, 63) : 0;
      const int lm = p.m_stored > 0 ? std::clamp(nearest_int_clamped(mn / p.m_stored), 0, 63) : 0;
      if (s < 4) {  // low 6 bits of bytes s and s + 4; their top 2 bits belong to sub-block s + 4
        p.scales[s] = static_cast<uint8_t>((p.scales[s] & 0xC0) | ls);
        p.scales[s + 4] = static_cast<uint8_t>((p.scales[s + 4] & 0xC0) | lm);
      } else {
        p.scales[s + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        p.scales[s - 4] = static_cast<uint8_t>((p.scales[s - 4] & 0x3F) | ((ls >> 4) << 6));
        p.scales[s] = static_cast<uint8_t>((p.scales[s] & 0x3F) | ((lm >> 4) << 6));
      }
      break;
    }
    case BlockType::kQ6_K: {
      const float sc = make_qx_quants(16, 32, x, Ls, imp);
      const int l = p.d_stored != 0 ? std::clamp(nearest_int_clamped(sc / p.d_stored), -128, 127) : 0;
      p.scales[s] = static_cast<uint8_t>(static_cast<int8_t>(l));
      break;
    }
    default: throw Error("kquant::refit_sub_block: not a k-quant type");
  }
  decode_sub_scales(t, p);
}

int code(BlockType t, const BlockParams& p, int j, float x) {
  const int s = j / block_format(t).sub_values;
  const float d = p.sub_d[s];
  if (!d) return 0;
  switch (t) {
    case BlockType::kQ2_K: return std::max(0, std::min(3, nearest_int_clamped((x + p.sub_m[s]) / d)));
    case BlockType::kQ3_K: return std::max(-4, std::min(3, nearest_int_clamped(x / d))) + 4;
    case BlockType::kQ4_K: return std::max(0, std::min(15, nearest_int_clamped((x + p.sub_m[s]) / d)));
    case BlockType::kQ5_K: return std::max(0, std::min(31, nearest_int_clamped((x + p.sub_m[s]) / d)));
    case BlockType::kQ6_K: return std::max(-32, std::min(31, nearest_int_clamped(x / d))) + 32;
    default: return 0;
  }
}

float value(BlockType t, const BlockParams& p, int j, int q) {
  const int s = j / block_format(t).sub_values;
  switch (t) {
    case BlockType::kQ2_K:
    case BlockType::kQ4_K:
    case BlockType::kQ5_K: return p.sub_d[s] * q - p.sub_m[s];
    case BlockType::kQ3_K: return p.sub_d[s] * (q - 4);
    case BlockType::kQ6_K: return p.sub_d[s] * (q - 32);
    default: return 0;
  }
}

void pack(BlockType t, const BlockParams& p, const uint8_t* L, uint8_t* out) {
  std::memset(out, 0, size_t(block_format(t).bytes));
  switch (t) {
    case BlockType::kQ2_K: {
      std::memcpy(out, p.scales, 16);
      uint8_t* qs = out + 16;
      for (int j = 0; j < kQK_K; j += 128)
        for (int l = 0; l < 32; ++l)
          qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
      put_f16(out + 80, p.d);
      put_f16(out + 82, p.m);
      break;
    }
    case BlockType::kQ3_K: {
      uint8_t* hmask = out;
      uint8_t* qs = out + 32;
      uint8_t low[kQK_K];
      // The high bit of the first 32 codes goes to bit 0 of hmask[0..31], of the next 32 to bit 1, ...
      for (int j = 0; j < kQK_K; ++j) {
        low[j] = L[j];
        if (L[j] > 3) {
          hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
          low[j] = static_cast<uint8_t>(L[j] - 4);
        }
      }
      for (int j = 0; j < kQK_K; j += 128)
        for (int l = 0; l < 32; ++l)
          qs[j / 4 + l] = static_cast<uint8_t>(low[j + l] | (low[j + l + 32] << 2) | (low[j + l + 64] << 4) | (low[j + l + 96] << 6));
      std::memcpy(out + 96, p.scales, 12);
      put_f16(out + 108, p.d);
      break;
    }
    case BlockType::kQ4_K: {
      put_f16(out, p.d);
      put_f16(out + 2, p.m);
      std::memcpy(out + 4, p.scales, 12);
      uint8_t* q = out + 16;
      for (int j = 0; j < kQK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
      break;
    }
    case BlockType::kQ5_K: {
      put_f16(out, p.d);
      put_f16(out + 2, p.m);
      std::memcpy(out + 4, p.scales, 12);
      uint8_t* qh = out + 16;
      uint8_t* ql = out + 48;
      uint8_t m1 = 1, m2 = 2;
      for (int n = 0; n < kQK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
          int l1 = L[n + j];
          if (l1 > 15) {
            l1 -= 16;
            qh[j] |= m1;
          }
          int l2 = L[n + j + 32];
          if (l2 > 15) {
            l2 -= 16;
            qh[j] |= m2;
          }
          ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
        m1 = static_cast<uint8_t>(m1 << 2);
        m2 = static_cast<uint8_t>(m2 << 2);
        ql += 32;
      }
      break;
    }
    case BlockType::kQ6_K: {
      uint8_t* ql = out;
      uint8_t* qh = out + 128;
      for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; ++l) {
          const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
          ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
          ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
          qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
      std::memcpy(out + 192, p.scales, 16);
      put_f16(out + 208, p.d);
      break;
    }
    default: throw Error("kquant::pack: not a k-quant type");
  }
}

void quantize_superblock(BlockType t, const float* x, uint8_t* out, bool portable) {
  BlockParams p;
  uint8_t L[kQK_K];
  fit(t, x, p, L, portable);
  // Phase 2: every value re-coded with its decoded sub-block scale; a zero scale keeps phase 1's codes.
  const int sv = block_format(t).sub_values;
  for (int s = 0; s < kQK_K / sv; ++s) {
    if (!p.sub_d[s]) continue;
    for (int i = s * sv; i < (s + 1) * sv; ++i) L[i] = static_cast<uint8_t>(code(t, p, i, x[i]));
  }
  pack(t, p, L, out);
}

void dequantize_superblock(BlockType t, const uint8_t* in, float* y) {
  switch (t) {
    case BlockType::kQ2_K: {
      const uint8_t* sc = in;
      const uint8_t* q = in + 16;
      const float d = get_f16(in + 80), min = get_f16(in + 82);
      int is = 0;
      for (int n = 0; n < kQK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
          for (int half = 0; half < 2; ++half) {
            const uint8_t s = sc[is++];
            const float dl = d * (s & 0xF), ml = min * (s >> 4);
            const uint8_t* qq = q + 16 * half;
            for (int l = 0; l < 16; ++l) *y++ = dl * ((qq[l] >> shift) & 3) - ml;
          }
      break;
    }
    case BlockType::kQ3_K: {
      const uint8_t* hm = in;
      const uint8_t* q = in + 32;
      const float d_all = get_f16(in + 108);
      int is = 0;
      uint8_t m = 1;
      for (int n = 0; n < kQK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1))
          for (int half = 0; half < 2; ++half) {
            const float dl = d_all * q3_scale(in + 96, is++);
            for (int l = 16 * half; l < 16 * half + 16; ++l) *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
          }
      break;
    }
    case BlockType::kQ4_K:
    case BlockType::kQ5_K: {
      const bool five = t == BlockType::kQ5_K;
      const float d = get_f16(in), min = get_f16(in + 2);
      const uint8_t* scales = in + 4;
      const uint8_t* qh = in + 16;
      const uint8_t* q = in + (five ? 48 : 16);
      uint8_t u1 = 1, u2 = 2;
      for (int j = 0, is = 0; j < kQK_K; j += 64, q += 32, is += 2) {
        uint8_t sc, m;
        get_scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        get_scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        if (five) {
          for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
          u1 = static_cast<uint8_t>(u1 << 2);
          u2 = static_cast<uint8_t>(u2 << 2);
        } else {
          for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
      }
      break;
    }
    case BlockType::kQ6_K: {
      const float d = get_f16(in + 208);
      const uint8_t* ql = in;
      const uint8_t* qh = in + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(in + 192);
      for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l + 0] = d * sc[is + 0] * q1;
          y[l + 32] = d * sc[is + 2] * q2;
          y[l + 64] = d * sc[is + 4] * q3;
          y[l + 96] = d * sc[is + 6] * q4;
        }
      break;
    }
    default: throw Error("kquant::dequantize_superblock: not a k-quant type");
  }
}

}  // namespace tsm::kquant
