// Dense linear layers and the bias wrapper (see linear.h).
#include "model/linear.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace tsm {

LinearOp::~LinearOp() = default;

void matmul_xwt(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y) {
  using ConstMap = Eigen::Map<const MatrixRM>;
  ConstMap X(x, n, in);     // (n, in)
  Eigen::Map<MatrixRM> Y(y, n, out);  // (n, out)
  // Blocks of output features, one per task: each thread reads its own slice of W once, which is
  // what matters when n is 1 (generation) and the product is bound by memory bandwidth.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (out + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && out * in > (int64_t(1) << 15))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t o0 = b * kBlock, m = std::min(kBlock, out - o0);
    ConstMap W(w + o0 * in, m, in);  // (m, in)
    Y.middleCols(o0, m).noalias() = X * W.transpose();
  }
}

DenseLinear::DenseLinear(MatrixRM weight, std::vector<float> bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (!bias_.empty() && int64_t(bias_.size()) != weight_.rows())
    throw Error("linear layer: bias has " + std::to_string(bias_.size()) + " entries, weight has " +
                std::to_string(weight_.rows()) + " output features");
}

void DenseLinear::forward(const float* x, int64_t n, float* y) const {
  matmul_xwt(x, n, weight_.cols(), weight_.data(), weight_.rows(), y);
  if (!bias_.empty()) {
    const int64_t out = weight_.rows();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) y[i * out + o] += bias_[o];
  }
}

uint64_t DenseLinear::resident_bytes() const { return uint64_t(weight_.size() + bias_.size()) * sizeof(float); }

namespace {

class BiasedLinear final : public LinearOp {
 public:
  BiasedLinear(std::unique_ptr<LinearOp> op, std::vector<float> bias) : op_(std::move(op)), bias_(std::move(bias)) {}
  int64_t in_features() const override { return op_->in_features(); }
  int64_t out_features() const override { return op_->out_features(); }
  void forward(const float* x, int64_t n, float* y) const override {
    op_->forward(x, n, y);
    const int64_t out = out_features();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) y[i * out + o] += bias_[o];
  }
  uint64_t resident_bytes() const override { return op_->resident_bytes() + bias_.size() * sizeof(float); }

 private:
  std::unique_ptr<LinearOp> op_;
  std::vector<float> bias_;  ///< (out)
};

}  // namespace

std::unique_ptr<LinearOp> with_bias(std::unique_ptr<LinearOp> op, std::vector<float> bias) {
  if (bias.empty()) return op;
  if (int64_t(bias.size()) != op->out_features())
    throw Error("linear layer: bias has " + std::to_string(bias.size()) + " entries, operator has " +
                std::to_string(op->out_features()) + " output features");
  return std::make_unique<BiasedLinear>(std::move(op), std::move(bias));
}

}  // namespace tsm
