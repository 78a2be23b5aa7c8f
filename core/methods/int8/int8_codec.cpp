// Per-row int8 codec (see int8_codec.h).
#include "methods/int8/int8_codec.h"

#include <algorithm>
#include <cmath>

#include "formats/array_pack.h"

namespace tsm {

float quantize_row_int8(const float* x, int64_t n, int8_t* q) {
  float mx = 0;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, std::abs(x[j]));
  const float scale = mx / 127.f;
  const float inv = mx > 0 ? 127.f / mx : 0.f;
  for (int64_t j = 0; j < n; ++j) q[j] = static_cast<int8_t>(std::lrint(std::clamp(x[j] * inv, -127.f, 127.f)));
  return scale;
}

json Int8RowCodec::resolve(const json& p, int64_t, int64_t) const {
  expect_no_params(p, name());
  return json::object();
}

v1::CompressedTensor Int8RowCodec::encode(ConstMatrixRef W, const json&, const CodecContext& ctx) const {
  const int64_t rows = W.rows(), cols = W.cols();
  std::vector<int8_t> q(static_cast<size_t>(rows * cols));  // (rows, cols)
  std::vector<float> scales(static_cast<size_t>(rows));      // (rows)
  for (int64_t i = 0; i < rows; ++i) {
    if ((i & 4095) == 0) ctx.check_cancel();
    scales[i] = quantize_row_int8(W.row(i).data(), cols, q.data() + i * cols);
  }
  auto t = tensor_header(name(), rows, cols);
  const std::vector<int64_t> s{rows, cols}, ss{rows};
  t.add_arrays()->CopyFrom(make_array<int8_t>("values", s, q));
  t.add_arrays()->CopyFrom(make_array<float>("scales", ss, scales));
  return t;
}

MatrixRM Int8RowCodec::decode(const v1::CompressedTensor& t) const {
  auto [rows, cols] = matrix_shape(t);
  const v1::Array& a = find_array(t, "values");
  const v1::Array& s = find_array(t, "scales");
  if (a.dtype() != v1::I8 || array_shape(a) != std::vector<int64_t>{rows, cols})
    throw FormatError("int8 tensor '" + t.name() + "': 'values' must be i8 of shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
  if (s.dtype() != v1::F32 || array_shape(s) != std::vector<int64_t>{rows})
    throw FormatError("int8 tensor '" + t.name() + "': 'scales' must be f32 of shape (" + std::to_string(rows) + ")");
  auto q = unpack<int8_t>(a);
  auto sc = unpack<float>(s);
  MatrixRM out(rows, cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out(i, j) = sc[i] * q[i * cols + j];
  return out;
}

}  // namespace tsm
