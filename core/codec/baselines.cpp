#include "codec/baselines.h"

#include <cmath>
#include <cstring>

#include "codec/quant_codec.h"
#include "codec/svd_codec.h"
#include "common/dtype.h"
#include "metrics/metrics.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

namespace {

// Bytes as Codec::stored_bytes counts them: array data + 8 per shape entry, 16 for the tensor shape.
constexpr uint64_t kTensorMeta = 16, kArray2D = 16, kArray1D = 8;

// llama.cpp's Q4_0 (ggml-quants.c quantize_row_q4_0_ref / dequantize_row_q4_0): blocks of 32 values,
// d = max / -8 where max is the value of largest magnitude, q = min(15, (int8)(x / d + 8.5)),
// stored as 2 bytes f16 d + 16 bytes of nibbles (low nibble: value j, high: value j + 16).
// Rows whose length is not a multiple of 32 are zero-padded to a whole block.
void q4_0_roundtrip_row(const float* x, int64_t n, float* y) {
  float blk[32];
  for (int64_t b0 = 0; b0 < n; b0 += 32) {
    const int64_t len = std::min<int64_t>(32, n - b0);
    for (int j = 0; j < 32; ++j) blk[j] = j < len ? x[b0 + j] : 0.f;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(blk[j])) { amax = std::fabs(blk[j]); max = blk[j]; }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    const float dh = half_to_float(float_to_half(d));
    float out[32];
    for (int j = 0; j < 16; ++j) {
      const uint8_t xi0 = std::min<int8_t>(15, static_cast<int8_t>(blk[j] * id + 8.5f));
      const uint8_t xi1 = std::min<int8_t>(15, static_cast<int8_t>(blk[16 + j] * id + 8.5f));
      const uint8_t qs = xi0 | static_cast<uint8_t>(xi1 << 4);
      out[j] = static_cast<float>((qs & 0x0F) - 8) * dh;
      out[j + 16] = static_cast<float>((qs >> 4) - 8) * dh;
    }
    for (int64_t j = 0; j < len; ++j) y[b0 + j] = out[j];
  }
}

v1::Baseline make(const std::string& method, const std::string& params, ConstMatrixRef A, const MatrixRM& A_hat, uint64_t bytes,
                  size_t src) {
  v1::Baseline b;
  b.set_method(method);
  b.set_params_json(params);
  fill_metrics(*b.mutable_metrics(), error_stats(A, A_hat), bytes, A.rows(), A.cols(), src);
  return b;
}

}  // namespace

std::vector<v1::Baseline> compute_baselines(ConstMatrixRef A, uint64_t target_bytes, size_t src) {
  const int64_t rows = A.rows(), cols = A.cols();
  const uint64_t n = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  std::vector<v1::Baseline> out;
  MatrixRM A_hat(rows, cols);

  // fp16 cast
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) A_hat(i, j) = half_to_float(float_to_half(A(i, j)));
  }
  out.push_back(make("fp16", "{}", A, A_hat, kTensorMeta + kArray2D + 2 * n, src));

  // symmetric per-row int8
  {
    std::vector<int8_t> q(static_cast<size_t>(cols));
    for (int64_t i = 0; i < rows; ++i) {
      const float s = quantize_row_int8(A.row(i).data(), cols, q.data());
      for (int64_t j = 0; j < cols; ++j) A_hat(i, j) = s * q[j];
    }
    out.push_back(make("int8-row", "{}", A, A_hat, kTensorMeta + kArray2D + n + kArray1D + 4ull * rows, src));
  }

  // Q4_0
  {
    for (int64_t i = 0; i < rows; ++i) q4_0_roundtrip_row(A.row(i).data(), cols, A_hat.row(i).data());
    const uint64_t blocks = static_cast<uint64_t>(rows) * static_cast<uint64_t>((cols + 31) / 32);
    out.push_back(make("q4_0", R"({"block":32})", A, A_hat, kTensorMeta + kArray2D + 18 * blocks, src));
  }

  // truncated SVD at the rank whose bytes are nearest the target
  if (rows > 0 && cols > 0) {
    GramSvd g = gram_svd(A);
    const uint64_t per_rank = 4ull * static_cast<uint64_t>(rows + cols);
    const uint64_t meta = kTensorMeta + 2 * kArray2D;
    const int64_t p = g.sigma.size();
    int64_t k = 1;
    if (target_bytes > meta) k = static_cast<int64_t>(std::llround(double(target_bytes - meta) / double(per_rank)));
    k = std::clamp<int64_t>(k, 1, p);
    MatrixRM L, R;
    svd_factors(A, g, k, L, R);
    A_hat.noalias() = L * R;
    out.push_back(make("svd", "{\"rank\":" + std::to_string(k) + "}", A, A_hat, meta + per_rank * k, src));
  }
  return out;
}

}  // namespace tsm
