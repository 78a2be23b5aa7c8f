// Codec defaults and helpers (see codec.h).
#include "methods/codec.h"

#include "methods/param_spec.h"

namespace tsm {

uint64_t Codec::stored_bytes(const v1::CompressedTensor& t) const {
  uint64_t n = 8ull * static_cast<uint64_t>(t.shape_size());
  for (const auto& a : t.arrays()) n += a.data().size() + 8ull * static_cast<uint64_t>(a.shape_size());
  return n;
}

v1::CompressedTensor Codec::encode_calibrated(ConstMatrixRef, const json&, const Calibration&, const CodecContext&) const {
  throw ParamError("calibrate", "calibration-aware compression is not implemented for " + std::string(name()));
}

bool Codec::takes_orientation() const {
  const json s = param_schema();
  return s.contains("properties") && s["properties"].contains("orientation");
}

bool stored_in_out(const json& r) { return r.is_object() && r.value("orientation", std::string("out_in")) == "in_out"; }

namespace {
struct NoParams {};
}  // namespace

json no_param_schema() { return ParamSpec<NoParams>("", {}).schema(); }

void expect_no_params(const json& p, std::string_view method) { ParamSpec<NoParams>(std::string(method), {}).parse(p); }

std::pair<int64_t, int64_t> matrix_shape(const v1::CompressedTensor& t) {
  if (t.shape_size() != 2) throw FormatError("tensor '" + t.name() + "': shape must be (rows, cols)");
  if (t.shape(0) > (uint64_t{1} << 40) || t.shape(1) > (uint64_t{1} << 40))
    throw FormatError("tensor '" + t.name() + "': implausible shape");
  return {static_cast<int64_t>(t.shape(0)), static_cast<int64_t>(t.shape(1))};
}

v1::CompressedTensor tensor_header(std::string_view method, int64_t rows, int64_t cols) {
  v1::CompressedTensor t;
  t.set_method(std::string(method));
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_params_json("{}");
  return t;
}

uint64_t Codec::working_set_bytes(int64_t rows, int64_t cols, const json&, bool) const {
  return 16 * uint64_t(rows) * uint64_t(cols);
}

}  // namespace tsm
