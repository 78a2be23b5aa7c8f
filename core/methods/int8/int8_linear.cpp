// Per-row int8 linear layer (see int8_linear.h).
#include "methods/int8/int8_linear.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "formats/array_pack.h"
#include "methods/codec.h"

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace tsm {

namespace {

// matmul_xwt's split of the output features (model/linear.cpp): one task per 64 outputs.
constexpr int64_t kOutBlock = 64;
constexpr int64_t kParallelMin = int64_t(1) << 15;
constexpr int kRows = 4;  // activation rows that share one pass over a weight row

/// out[k] = sum_j q[j] * x[k * in + j] for k < R.
template <int R>
void dot_rows(const int8_t* q, const float* x, int64_t in, float* out) {
  int64_t j = 0;
  float tail[R] = {};
#if defined(__AVX2__)
  constexpr int C = R == 1 ? 4 : 1;  // independent FMA chains per row at n = 1
  __m256 acc[R][C];
  for (int k = 0; k < R; ++k)
    for (int c = 0; c < C; ++c) acc[k][c] = _mm256_setzero_ps();
  for (; j + 8 * C <= in; j += 8 * C)
    for (int c = 0; c < C; ++c) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + j + 8 * c));
      const __m256 wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
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
    const int16x8_t h = vmovl_s8(vld1_s8(q + j));
    const float32x4_t w0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), w1 = vcvtq_f32_s32(vmovl_high_s16(h));
    for (int k = 0; k < R; ++k) {
      acc[k][0] = vfmaq_f32(acc[k][0], w0, vld1q_f32(x + k * in + j));
      acc[k][1] = vfmaq_f32(acc[k][1], w1, vld1q_f32(x + k * in + j + 4));
    }
  }
  for (int k = 0; k < R; ++k) tail[k] = vaddvq_f32(vaddq_f32(acc[k][0], acc[k][1]));
#else
  for (; j + 8 <= in; j += 8)
    for (int k = 0; k < R; ++k) {
      float s = 0;
      for (int c = 0; c < 8; ++c) s += float(q[j + c]) * x[k * in + j + c];
      tail[k] += s;
    }
#endif
  for (; j < in; ++j)
    for (int k = 0; k < R; ++k) tail[k] += float(q[j]) * x[k * in + j];
  for (int k = 0; k < R; ++k) out[k] = tail[k];
}

struct Int8Arrays {
  int64_t rows, cols;
  const v1::Array* values;
  std::vector<float> scales;  ///< (rows)
};

Int8Arrays arrays_of(const v1::CompressedTensor& t) {
  auto [rows, cols] = matrix_shape(t);
  const v1::Array& a = find_array(t, "values");  // find_array checks product(shape) * dtype size == data size
  const v1::Array& s = find_array(t, "scales");
  if (a.dtype() != v1::I8 || array_shape(a) != std::vector<int64_t>{rows, cols} || rows < 1 || cols < 1)
    throw FormatError("int8 tensor '" + t.name() + "': 'values' must be i8 of shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
  if (s.dtype() != v1::F32 || array_shape(s) != std::vector<int64_t>{rows})
    throw FormatError("int8 tensor '" + t.name() + "': 'scales' must be f32 of shape (" + std::to_string(rows) + ")");
  return {rows, cols, &a, unpack<float>(s)};
}

}  // namespace

Int8Linear::Int8Linear(int64_t in, int64_t out, std::vector<int8_t> q, std::vector<float> row_scale, std::vector<float> in_scale)
    : in_(in), out_(out), q_(std::move(q)), row_scale_(std::move(row_scale)), in_scale_(std::move(in_scale)) {
  const bool per_row = int64_t(row_scale_.size()) == out && in_scale_.empty();
  const bool per_in = int64_t(in_scale_.size()) == in && row_scale_.empty();
  if (in < 1 || out < 1 || int64_t(q_.size()) != in * out || !(per_row || per_in))
    throw Error("int8 linear layer: " + std::to_string(q_.size()) + " codes, " + std::to_string(row_scale_.size()) + " row and " +
                std::to_string(in_scale_.size()) + " input scales for " + std::to_string(out) + " x " + std::to_string(in));
}

void Int8Linear::forward(const float* x, int64_t n, float* y) const {
  std::vector<float> xs;  // (n, in): x scaled by the input scales (in_out storage)
  if (!in_scale_.empty()) {
    xs.resize(size_t(n * in_));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < in_; ++j) xs[size_t(i * in_ + j)] = x[i * in_ + j] * in_scale_[size_t(j)];
    x = xs.data();
  }
  const int64_t blocks = (out_ + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && out_ * in_ > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t o1 = std::min(out_, (b + 1) * kOutBlock);
    float r[kRows];
    for (int64_t o = b * kOutBlock; o < o1; ++o) {
      const int8_t* q = q_.data() + o * in_;
      const float sc = row_scale_.empty() ? 1.0f : row_scale_[size_t(o)];
      int64_t i = 0;
      for (; i + kRows <= n; i += kRows) {
        dot_rows<kRows>(q, x + i * in_, in_, r);
        for (int k = 0; k < kRows; ++k) y[(i + k) * out_ + o] = sc * r[k];
      }
      for (; i < n; ++i) {
        dot_rows<1>(q, x + i * in_, in_, r);
        y[i * out_ + o] = sc * r[0];
      }
    }
  }
}

std::unique_ptr<LinearOp> make_int8_linear(const v1::CompressedTensor& t) {
  Int8Arrays a = arrays_of(t);
  std::vector<int8_t> q(size_t(a.rows * a.cols));
  std::memcpy(q.data(), a.values->data().data(), q.size());
  return std::make_unique<Int8Linear>(a.cols, a.rows, std::move(q), std::move(a.scales), std::vector<float>{});
}

std::unique_ptr<LinearOp> make_int8_linear_in_out(const v1::CompressedTensor& t) {
  Int8Arrays a = arrays_of(t);
  const int64_t in = a.rows, out = a.cols;
  const auto* src = reinterpret_cast<const int8_t*>(a.values->data().data());
  std::vector<int8_t> q(size_t(in * out));  // (out, in)
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) q[size_t(o * in + i)] = src[i * out + o];
  return std::make_unique<Int8Linear>(in, out, std::move(q), std::vector<float>{}, std::move(a.scales));
}

}  // namespace tsm
