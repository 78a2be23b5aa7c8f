// A linear layer y = x W^T + b behind one interface (the runtime's LinearOp), so a model can hold
// dense weights or an operator that a compression method provides (built by the method table,
// methods/method_table.h) and applies without densifying. This layer never names a method.
// Invariant: forward() reads n rows of in_features() floats and writes n rows of out_features().
// Layout: x (n, in) row-major, y (n, out) row-major; DenseLinear keeps W as (out, in) row-major.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common/matrix.h"

namespace tsm {


class LinearOp {
 public:
  virtual ~LinearOp();
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;
  /// y = x W^T (+ bias when the op has one). x: (n, in), y: (n, out); y is overwritten.
  virtual void forward(const float* x /*(n, in)*/, int64_t n, float* y /*(n, out)*/) const = 0;
  /// Bytes this operator keeps resident (weights, indices), for RSS accounting.
  virtual uint64_t resident_bytes() const { return 0; }
};

/// Dense f32 weight (out, in) row-major plus an optional bias (out). forward() splits the output
/// features over the OpenMP threads (a matrix-vector product in generation is memory bound and
/// Eigen would run it on one thread).
class DenseLinear final : public LinearOp {
 public:
  /// `weight` is (out, in); `bias` is empty or has `out` entries (else tsm::Error).
  DenseLinear(MatrixRM weight, std::vector<float> bias = {});
  int64_t in_features() const override { return weight_.cols(); }
  int64_t out_features() const override { return weight_.rows(); }
  void forward(const float* x, int64_t n, float* y) const override;
  uint64_t resident_bytes() const override;
  const MatrixRM& weight() const { return weight_; }
  const std::vector<float>& bias() const { return bias_; }

 private:
  MatrixRM weight_;          ///< (out, in)
  std::vector<float> bias_;  ///< (out) or empty
};

/// y (n, out) = x (n, in) W^T for a row-major W (out, in), parallel over blocks of output features.
/// Shared by DenseLinear and the streamed LM head.
void matmul_xwt(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y);

/// `op` followed by adding `bias` (out entries; empty returns `op` unchanged). Throws tsm::Error on a size mismatch.
std::unique_ptr<LinearOp> with_bias(std::unique_ptr<LinearOp> op, std::vector<float> bias);

}  // namespace tsm
