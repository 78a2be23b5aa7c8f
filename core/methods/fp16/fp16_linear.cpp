// Half-precision linear layer (see fp16_linear.h).
#include "methods/fp16/fp16_linear.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "formats/array_pack.h"
#include "methods/codec.h"

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace tsm {

namespace {

// matmul_xwt's split of the output features (model/linear.cpp): one task per 64 outputs.
constexpr int64_t kOutBlock = 64;
constexpr int64_t kParallelMin = int64_t(1) << 15;
// Activation rows that share one pass over a weight row (n > 1: prompts).
constexpr int kRows = 4;

/// out[k] = sum_j half(w[j]) * x[k * in + j] for k < R: one weight row against R activation rows.
template <int R>
void dot_rows(const uint16_t* w, const float* x, int64_t in, float* out) {
  int64_t j = 0;
  float tail[R] = {};
#if defined(__AVX2__) && defined(__F16C__)
  constexpr int C = R == 1 ? 4 : 1;  // independent FMA chains per row: hide the FMA latency at n = 1
  __m256 acc[R][C];
  for (int k = 0; k < R; ++k)
    for (int c = 0; c < C; ++c) acc[k][c] = _mm256_setzero_ps();
  for (; j + 8 * C <= in; j += 8 * C)
    for (int c = 0; c < C; ++c) {
      const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j + 8 * c)));
      for (int k = 0; k < R; ++k) acc[k][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k * in + j + 8 * c), acc[k][c]);
    }
  for (int k = 0; k < R; ++k) {
    __m256 s = acc[k][0];
    for (int c = 1; c < C; ++c) s = _mm256_add_ps(s, acc[k][c]);
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    tail[k] = _mm_cvtss_f32(r);
  }
#elif defined(__aarch64__)
  float32x4_t acc[R][2];
  for (int k = 0; k < R; ++k) acc[k][0] = acc[k][1] = vdupq_n_f32(0);
  for (; j + 8 <= in; j += 8) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + j));
    const float32x4_t w0 = vcvt_f32_f16(vget_low_f16(h)), w1 = vcvt_high_f32_f16(h);
    for (int k = 0; k < R; ++k) {
      acc[k][0] = vfmaq_f32(acc[k][0], w0, vld1q_f32(x + k * in + j));
      acc[k][1] = vfmaq_f32(acc[k][1], w1, vld1q_f32(x + k * in + j + 4));
    }
  }
  for (int k = 0; k < R; ++k) tail[k] = vaddvq_f32(vaddq_f32(acc[k][0], acc[k][1]));
#else
  constexpr int64_t kChunk = 64;
  float wf[kChunk];
  for (; j + kChunk <= in; j += kChunk) {
    for (int64_t c = 0; c < kChunk; ++c) wf[c] = half_to_float(w[j + c]);
    for (int k = 0; k < R; ++k) {
      float s[8] = {};
      for (int64_t c = 0; c < kChunk; ++c) s[c & 7] += wf[c] * x[k * in + j + c];
      for (float v : s) tail[k] += v;
    }
  }
#endif
  for (; j < in; ++j) {
    const float wj = half_to_float(w[j]);
    for (int k = 0; k < R; ++k) tail[k] += wj * x[k * in + j];
  }
  for (int k = 0; k < R; ++k) out[k] = tail[k];
}

/// The (rows, cols) 'values' of an fp16 tensor, checked.
std::pair<std::pair<int64_t, int64_t>, const v1::Array*> values_of(const v1::CompressedTensor& t) {
  auto [rows, cols] = matrix_shape(t);
  const v1::Array& a = find_array(t, "values");  // checks product(shape) * 2 == data size
  if (a.dtype() != v1::F16 || array_shape(a) != std::vector<int64_t>{rows, cols} || rows < 1 || cols < 1)
    throw FormatError("fp16 tensor '" + t.name() + "': 'values' must be f16 of shape (" + std::to_string(rows) + ", " +
                      std::to_string(cols) + ")");
  return {{rows, cols}, &a};
}

}  // namespace

Fp16Linear::Fp16Linear(int64_t in, int64_t out, std::vector<uint16_t> w) : in_(in), out_(out), w_(std::move(w)) {
  if (in < 1 || out < 1 || int64_t(w_.size()) != in * out)
    throw Error("fp16 linear layer: " + std::to_string(w_.size()) + " weights for " + std::to_string(out) + " x " + std::to_string(in));
}

void Fp16Linear::forward(const float* x, int64_t n, float* y) const {
  const int64_t blocks = (out_ + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && out_ * in_ > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t o1 = std::min(out_, (b + 1) * kOutBlock);
    float r[kRows];
    for (int64_t o = b * kOutBlock; o < o1; ++o) {
      const uint16_t* w = w_.data() + o * in_;
      int64_t i = 0;
      for (; i + kRows <= n; i += kRows) {
        dot_rows<kRows>(w, x + i * in_, in_, r);
        for (int k = 0; k < kRows; ++k) y[(i + k) * out_ + o] = r[k];
      }
      for (; i < n; ++i) {
        dot_rows<1>(w, x + i * in_, in_, r);
        y[i * out_ + o] = r[0];
      }
    }
  }
}

std::unique_ptr<LinearOp> make_fp16_linear(const v1::CompressedTensor& t) {
  auto [shape, a] = values_of(t);
  std::vector<uint16_t> w(size_t(shape.first * shape.second));
  std::memcpy(w.data(), a->data().data(), w.size() * sizeof(uint16_t));
  return std::make_unique<Fp16Linear>(shape.second, shape.first, std::move(w));
}

std::unique_ptr<LinearOp> make_fp16_linear_in_out(const v1::CompressedTensor& t) {
  auto [shape, a] = values_of(t);
  const auto [in, out] = shape;
  const char* src = a->data().data();
  std::vector<uint16_t> w(size_t(in * out));  // (out, in)
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) std::memcpy(&w[size_t(o * in + i)], src + 2 * (i * out + o), 2);
  return std::make_unique<Fp16Linear>(in, out, std::move(w));
}

}  // namespace tsm
