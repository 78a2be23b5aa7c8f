// The runtime's linear layer for a "saten" CompressedTensor: y = x W_hat^T applied as TT(x) + S x
// (SatenOperator), never densified. Invariant: in/out features are the logical (d_in, d_out) whatever
// the stored orientation (GPT-2 Conv1D tensors are stored (in, out) with orientation "in_out").
#pragma once
#include <memory>

#include "artifact.pb.h"
#include "model/linear.h"
#include "methods/saten/saten_operator.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

class SatenLinear final : public LinearOp {
 public:
  explicit SatenLinear(SatenFactors f) : op_(std::move(f)) {}
  int64_t in_features() const override { return op_.in_features(); }
  int64_t out_features() const override { return op_.out_features(); }
  void forward(const float* x, int64_t n, float* y) const override { op_.forward(x, n, y); }
  uint64_t resident_bytes() const override { return op_.resident_bytes(); }
  const SatenOperator& op() const { return op_; }

 private:
  SatenOperator op_;
};

/// Validates `t` (saten_from_proto; FormatError on bad arrays) and builds the operator.
std::unique_ptr<LinearOp> make_saten_linear(const v1::CompressedTensor& t);

}  // namespace tsm
