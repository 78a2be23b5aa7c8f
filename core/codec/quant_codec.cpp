#include "codec/quant_codec.h"

#include <cmath>

#include "codec/array_pack.h"
#include "common/dtype.h"

namespace tsm {

namespace {

void no_params(const json& p, const char* method) {
  if (p.is_null()) return;
  if (!p.is_object()) throw ParamError("params", "must be a JSON object");
  if (!p.empty()) throw ParamError(p.begin().key(), std::string("unknown parameter (") + method + " takes none)");
}

std::pair<int64_t, int64_t> matrix_shape(const v1::CompressedTensor& t) {
  if (t.shape_size() != 2) throw FormatError("tensor '" + t.name() + "': shape must be (rows, cols)");
  if (t.shape(0) > (uint64_t{1} << 40) || t.shape(1) > (uint64_t{1} << 40)) throw FormatError("tensor '" + t.name() + "': implausible shape");
  return {static_cast<int64_t>(t.shape(0)), static_cast<int64_t>(t.shape(1))};
}

v1::CompressedTensor header(std::string_view method, int64_t rows, int64_t cols) {
  v1::CompressedTensor t;
  t.set_method(std::string(method));
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_params_json("{}");
  return t;
}

}  // namespace

float quantize_row_int8(const float* x, int64_t n, int8_t* q) {
  float mx = 0;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, std::abs(x[j]));
  const float scale = mx / 127.f;
  const float inv = mx > 0 ? 127.f / mx : 0.f;
  for (int64_t j = 0; j < n; ++j) q[j] = static_cast<int8_t>(std::lrint(std::clamp(x[j] * inv, -127.f, 127.f)));
  return scale;
}

json Fp16Codec::param_schema() const { return json{{"type", "object"}, {"additionalProperties", false}, {"properties", json::object()}}; }
json Fp16Codec::resolve(const json& p, int64_t, int64_t) const {
  no_params(p, "fp16");
  return json::object();
}

v1::CompressedTensor Fp16Codec::encode(ConstMatrixRef W, const json&, const CodecContext& ctx) const {
  const int64_t rows = W.rows(), cols = W.cols();
  std::vector<uint16_t> v(static_cast<size_t>(rows * cols));  // (rows, cols)
  for (int64_t i = 0; i < rows; ++i) {
    if ((i & 4095) == 0) ctx.check_cancel();
    from_f32(DType::F16, W.row(i).data(), v.data() + i * cols, cols);
  }
  auto t = header(name(), rows, cols);
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

json Int8RowCodec::param_schema() const { return json{{"type", "object"}, {"additionalProperties", false}, {"properties", json::object()}}; }
json Int8RowCodec::resolve(const json& p, int64_t, int64_t) const {
  no_params(p, "int8");
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
  auto t = header(name(), rows, cols);
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
