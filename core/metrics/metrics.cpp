#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.h"

namespace tsm {

ErrorStats error_stats(ConstMatrixRef A, ConstMatrixRef A_hat) {
  if (A.rows() != A_hat.rows() || A.cols() != A_hat.cols())
    throw Error("error_stats: shapes differ (" + std::to_string(A.rows()) + "x" + std::to_string(A.cols()) + " vs " +
                std::to_string(A_hat.rows()) + "x" + std::to_string(A_hat.cols()) + ")");
  ErrorStats s;
  const int64_t rows = A.rows(), cols = A.cols();
  double num = 0, den = 0, maxabs = 0;
  std::vector<double> cos(static_cast<size_t>(rows));  // (rows)
  for (int64_t i = 0; i < rows; ++i) {
    const float* a = A.row(i).data();
    const float* b = A_hat.row(i).data();
    double aa = 0, bb = 0, ab = 0, dd = 0, mx = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double x = a[j], y = b[j], d = x - y;
      aa += x * x; bb += y * y; ab += x * y; dd += d * d;
      mx = std::max(mx, std::abs(d));
    }
    num += dd; den += aa;
    maxabs = std::max(maxabs, mx);
    if (aa == 0 && bb == 0) cos[i] = 1.0;
    else if (aa == 0 || bb == 0) cos[i] = 0.0;
    else cos[i] = std::clamp(ab / std::sqrt(aa * bb), -1.0, 1.0);
  }
  s.rel_error = den > 0 ? std::sqrt(num / den) : (num > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  s.max_abs_error = maxabs;
  if (rows > 0) {
    double sum = 0;
    for (double c : cos) sum += c;
    s.cos_mean = sum / double(rows);
    s.cos_min = *std::min_element(cos.begin(), cos.end());
    const size_t k = static_cast<size_t>(std::floor(0.01 * double(rows - 1)));
    std::nth_element(cos.begin(), cos.begin() + k, cos.end());
    s.cos_p01 = cos[k];
  }
  return s;
}

void fill_metrics(::tensorslm::v1::Metrics& m, const ErrorStats& s, uint64_t stored_bytes, uint64_t rows, uint64_t cols,
                  size_t source_dtype_size) {
  m.set_stored_bytes(stored_bytes);
  m.set_dense_f32_bytes(rows * cols * 4);
  m.set_source_bytes(rows * cols * source_dtype_size);
  m.set_ratio_f32(stored_bytes ? double(rows * cols * 4) / double(stored_bytes) : 0.0);
  m.set_ratio_source(stored_bytes ? double(rows * cols * source_dtype_size) / double(stored_bytes) : 0.0);
  m.set_rel_error(s.rel_error);
  m.set_cos_mean(s.cos_mean);
  m.set_cos_min(s.cos_min);
  m.set_cos_p01(s.cos_p01);
  m.set_max_abs_error(s.max_abs_error);
}

}  // namespace tsm
