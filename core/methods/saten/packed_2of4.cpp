#include "methods/saten/packed_2of4.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace tsm {

std::optional<Packed2of4> Packed2of4::from(const SparseResidual& s) {
  if (s.cols % 16 != 0 || s.rows <= 0) return std::nullopt;
  // Only when it is the smaller form: 5 bytes per slot (half of all entries) vs 8 per kept entry.
  if (s.nnz() * 8 < s.rows * s.cols / 2 * 5) return std::nullopt;
  Packed2of4 p;
  p.rows_ = s.rows;
  p.cols_ = s.cols;
  const int64_t slots = s.cols / 2;  // per row
  p.values_.assign(size_t(s.rows * slots), 0.f);
  p.pos_.assign(size_t(s.rows * slots), 0);
  for (int64_t r = 0; r < s.rows; ++r) {
    float* v = p.values_.data() + r * slots;
    uint8_t* pos = p.pos_.data() + r * slots;
    // Padding slots point at the group's first input with value 0.
    for (int64_t g = 0; g < s.cols / 4; ++g) pos[2 * g] = pos[2 * g + 1] = uint8_t((g % 2) * 4);
    int64_t prev_group = -1, used = 0;
    for (int64_t q = s.row_ptr[size_t(r)]; q < s.row_ptr[size_t(r + 1)]; ++q) {
      const int64_t c = s.col[size_t(q)], g = c / 4;
      used = g == prev_group ? used + 1 : 0;
      prev_group = g;
      if (used >= 2) return std::nullopt;
      const int64_t slot = 2 * g + used;
      v[slot] = s.values[size_t(q)];
      pos[slot] = uint8_t(c % 8);  // within the chunk half: groups 2h and 2h+1 share 8 inputs
    }
  }
  return p;
}

void Packed2of4::apply_add(const float* x, int64_t n, float* y) const {
  const int64_t slots = cols_ / 2, chunks = cols_ / 16;
#pragma omp parallel for schedule(static) if (rows_ * slots * n > (int64_t(1) << 16))
  for (int64_t r = 0; r < rows_; ++r) {
    const float* v = values_.data() + r * slots;
    const uint8_t* pos = pos_.data() + r * slots;
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * cols_;
#if defined(__AVX2__) && defined(__FMA__)
      __m256 acc = _mm256_setzero_ps();
      for (int64_t c = 0; c < chunks; ++c) {
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(pos + 8 * c)));
        const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xt + 16 * c), idx);
        const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xt + 16 * c + 8), idx);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * c), _mm256_blend_ps(lo, hi, 0xF0), acc);
      }
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
      y[t * rows_ + r] += _mm_cvtss_f32(h);
#elif defined(__ARM_NEON) && defined(__aarch64__)
      // Table lookups on bytes: slot j reads bytes 4*pos[j] .. 4*pos[j]+3 of its 8-input half.
      static const uint8x16_t kRep0 = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
      static const uint8x16_t kRep1 = {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7};
      static const uint8x16_t kByte = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
      float32x4_t a0 = vdupq_n_f32(0.f), a1 = vdupq_n_f32(0.f);
      for (int64_t c = 0; c < chunks; ++c) {
        const uint8x8_t p8 = vld1_u8(pos + 8 * c);
        const uint8x16_t p16 = vcombine_u8(p8, p8);
        const uint8x16_t i0 = vaddq_u8(vshlq_n_u8(vqtbl1q_u8(p16, kRep0), 2), kByte);
        const uint8x16_t i1 = vaddq_u8(vshlq_n_u8(vqtbl1q_u8(p16, kRep1), 2), kByte);
        const float* xc = xt + 16 * c;
        const uint8x16x2_t lo = {{vreinterpretq_u8_f32(vld1q_f32(xc)), vreinterpretq_u8_f32(vld1q_f32(xc + 4))}};
        const uint8x16x2_t hi = {{vreinterpretq_u8_f32(vld1q_f32(xc + 8)), vreinterpretq_u8_f32(vld1q_f32(xc + 12))}};
        a0 = vfmaq_f32(a0, vld1q_f32(v + 8 * c), vreinterpretq_f32_u8(vqtbl2q_u8(lo, i0)));
        a1 = vfmaq_f32(a1, vld1q_f32(v + 8 * c + 4), vreinterpretq_f32_u8(vqtbl2q_u8(hi, i1)));
      }
      y[t * rows_ + r] += vaddvq_f32(vaddq_f32(a0, a1));
#else
      float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t c = 0; c < chunks; ++c)
        for (int j = 0; j < 8; ++j) a[j] += v[8 * c + j] * xt[16 * c + 8 * (j / 4) + pos[8 * c + j]];
      y[t * rows_ + r] += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
#endif
    }
  }
}

}  // namespace tsm
