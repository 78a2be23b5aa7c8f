// fp16 cast codec (see fp16_codec.h).
#include "methods/fp16/fp16_codec.h"

#include "common/dtype.h"
#include "formats/array_pack.h"

namespace tsm {

json Fp16Codec::resolve(const json& p, int64_t, int64_t) const {
  expect_no_params(p, name());
  return json::object();
}

v1::CompressedTensor Fp16Codec::encode(ConstMatrixRef W, const json&, const CodecContext& ctx) const {
  const int64_t rows = W.rows(), cols = W.cols();
  std::vector<uint16_t> v(static_cast<size_t>(rows * cols));  // (rows, cols)
  for (int64_t i = 0; i < rows; ++i) {
    if ((i & 4095) == 0) ctx.check_cancel();
    from_f32(DType::F16, W.row(i).data(), v.data() + i * cols, cols);
  }
  auto t = tensor_header(name(), rows, cols);
  const std::vector<int64_t> s{rows, cols};
  t.add_arrays()->CopyFrom(make_array("values", DType::F16, s, v.data(), v.size() * 2));
  return t;
}

MatrixRM Fp16Codec::decode(const v1::CompressedTensor& t) const {
  auto [rows, cols] = matrix_shape(t);
  const v1::Array& a = find_array(t, "values");
  if (a.dtype() != v1::F16 || array_shape(a) != std::vector<int64_t>{rows, cols})
    throw FormatError("fp16 tensor '" + t.name() + "': 'values' must be f16 of shape (" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
  MatrixRM out(rows, cols);
  to_f32(DType::F16, a.data().data(), out.data(), static_cast<size_t>(rows * cols));
  return out;
}

}  // namespace tsm
