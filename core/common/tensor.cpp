#include "common/tensor.h"

#include <cstring>

#include "common/error.h"

namespace tsm {

int64_t shape_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw FormatError("negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > (int64_t{1} << 62) / d) throw FormatError("shape " + shape_str(shape) + " is too large");
    n *= d;
  }
  return n;
}

std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t Tensor::numel() const { return shape_numel(shape); }

MatrixRM Tensor::to_matrix() const {
  if (!is_float(dtype)) throw Error("tensor '" + name + "' has dtype " + std::string(dtype_name(dtype)) + ", expected a floating type");
  int64_t rows = shape.empty() ? 1 : (shape.size() == 1 ? 1 : shape[0]);
  int64_t n = numel();
  int64_t cols = rows == 0 ? 0 : n / rows;
  MatrixRM m(rows, cols);
  to_f32(dtype, bytes.data(), m.data(), static_cast<size_t>(n));
  return m;
}

Tensor Tensor::from_matrix(std::string name, const MatrixRM& m) {
  std::vector<std::byte> data(static_cast<size_t>(m.size()) * 4);
  std::memcpy(data.data(), m.data(), data.size());
  return from_bytes(std::move(name), DType::F32, {m.rows(), m.cols()}, std::move(data));
}

Tensor Tensor::from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> data) {
  auto buf = std::make_shared<std::vector<std::byte>>(std::move(data));
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes = std::span<const std::byte>(buf->data(), buf->size());
  t.owner = buf;
  if (static_cast<size_t>(t.numel()) * dtype_size(dtype) != t.bytes.size())
    throw FormatError("tensor '" + t.name + "': " + std::to_string(t.bytes.size()) + " bytes do not match shape " +
                      shape_str(t.shape) + " x " + std::string(dtype_name(dtype)));
  return t;
}

}  // namespace tsm
