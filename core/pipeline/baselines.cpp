#include "pipeline/baselines.h"

#include <cmath>
#include <cstring>

#include "methods/block_quant/block_quant_codec.h"
#include "methods/fp16/fp16_codec.h"
#include "methods/int8/int8_codec.h"
#include "methods/svd/svd_codec.h"
#include "common/dtype.h"
#include "metrics/metrics.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

namespace {

// Bytes as Codec::stored_bytes counts them: array data + 8 per shape entry, 16 for the tensor shape.
constexpr uint64_t kTensorMeta = 16, kArray2D = 16, kArray1D = 8;

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
  out.push_back(make(std::string(kFp16Method), "{}", A, A_hat, kTensorMeta + kArray2D + 2 * n, src));

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
    const BlockQuantCodec q4(BlockType::kQ4_0);  // the method itself, rows zero-padded to whole blocks
    A_hat = q4.decode(q4.encode(A, q4.resolve(json::object(), rows, cols), CodecContext{}));
    const uint64_t blocks = static_cast<uint64_t>(rows) * static_cast<uint64_t>((cols + 31) / 32);
    out.push_back(make(std::string(block_format(BlockType::kQ4_0).name), R"({"block":32})", A, A_hat, kTensorMeta + kArray2D + 18 * blocks, src));
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
    out.push_back(make(std::string(kSvdMethod), "{\"rank\":" + std::to_string(k) + "}", A, A_hat, meta + per_rank * k, src));
  }
  return out;
}

}  // namespace tsm
