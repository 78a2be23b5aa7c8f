// A named n-dimensional array read from a file or body. Bytes are row-major little-endian of
// `dtype`, length product(shape) * dtype_size(dtype); `owner` keeps them alive (a memory map or a
// heap buffer), so copies of a Tensor are cheap and share the bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/matrix.h"

namespace tsm {

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;

  int64_t numel() const;
  /// The tensor as an f32 matrix: 2-D as is, 1-D as one row, n-D as (shape[0], rest).
  /// Throws tsm::Error for integer dtypes.
  MatrixRM to_matrix() const;
  /// Makes an owning tensor from a matrix (dtype f32, shape {rows, cols}).
  static Tensor from_matrix(std::string name, const MatrixRM& m);
  /// Makes an owning tensor holding a copy of `data`.
  static Tensor from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> data);
};

/// Checked product of a shape: throws tsm::FormatError on negative dims or overflow past 2^62.
int64_t shape_numel(std::span<const int64_t> shape);
std::string shape_str(std::span<const int64_t> shape);

}  // namespace tsm
