// Applying a Saten approximation without densifying it: y (n, d_out) = x (n, d_in) W_hat^T computed
// as the tensor-train contraction with x plus the sparse product S x.
//   saten layout: x is contracted with the input cores right to left, leaving (n, r_a) (the bond
//   between input and output modes), which the output cores expand left to right to (n, d_out).
//   mpo layout: the TT-matrix-vector product core by core, state (n * o_1..o_{k-1}, r_{k-1}, i_k..i_d).
// Invariant: the cores are stored pre-permuted for the GEMMs above; the operator is immutable and
// forward() may be called from several threads at once.
#pragma once
#include <cstdint>
#include <vector>

#include <optional>

#include "methods/saten/packed_2of4.h"
#include "methods/saten/saten_factors.h"

namespace tsm {

class SatenOperator {
 public:
  explicit SatenOperator(SatenFactors f);
  int64_t in_features() const { return f_.layout.d_in; }
  int64_t out_features() const { return f_.layout.d_out; }
  /// y = x W_hat^T; x (n, d_in), y (n, d_out), y overwritten.
  void forward(const float* x, int64_t n, float* y) const;
  /// Floats held: cores (as stored) + permuted copies + sparse values and indices.
  uint64_t resident_bytes() const;
  /// Multiply-adds of one forward() per batch row (for the benchmark's break-even analysis).
  double flops_per_row() const;

 private:
  void forward_saten(const float* x, int64_t n, float* y) const;
  void forward_mpo(const float* x, int64_t n, float* y) const;

  SatenFactors f_;
  // saten: core a-1 as (i_a, r_{a-1} * r_a); other cores used as stored.
  // mpo: core k as (o_k * r_k, r_{k-1} * i_k).
  std::vector<std::vector<float>> perm_;
  // The sparse part packed as 2:4 when that is its smaller form (then f_.sparse's CSR is emptied).
  std::optional<Packed2of4> packed_;
};

}  // namespace tsm
