// A 2:4 sparse residual packed for apply: in every group of 4 consecutive inputs of an output row
// exactly 2 slots (a group with fewer kept entries is padded with zeros), values in input order.
// Invariant: cols % 16 == 0; slot j of chunk c (16 inputs = 4 groups, 8 slots) reads input
// 16c + 8*(j / 4) + pos[j], pos[j] in 0..7: the first 4 slots come from the chunk's first 8 inputs,
// the last 4 from its second 8, so a chunk is two in-register permutes and a blend (no gathers;
// on aarch64 two byte-table lookups).
// Layout: values (rows, cols / 2) f32 and pos (rows, cols / 2) u8, row-major: 5 bytes per kept
// value instead of CSR's 8 (f32 value + i32 column).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "methods/saten/sparse_residual.h"

namespace tsm {

class Packed2of4 {
 public:
  /// The packed form of `s`, or nullopt when some group of 4 keeps more than 2 entries, cols is
  /// not a multiple of 16, or the packed form would be larger than the CSR one (a sparse residual
  /// below 31% density, e.g. unstructured 1%): the caller then keeps the CSR apply.
  static std::optional<Packed2of4> from(const SparseResidual& s);
  /// y (n, rows) += x (n, cols) S^T, parallel over rows.
  void apply_add(const float* x /*(n, cols)*/, int64_t n, float* y /*(n, rows)*/) const;
  /// Multiply-adds of one apply per batch row (padding slots included).
  int64_t macs_per_row() const { return rows_ * cols_ / 2; }
  uint64_t resident_bytes() const { return values_.size() * sizeof(float) + pos_.size(); }

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<float> values_;  ///< (rows, cols / 2)
  std::vector<uint8_t> pos_;   ///< (rows, cols / 2), each 0..7
};

}  // namespace tsm
