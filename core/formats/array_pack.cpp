#include "formats/array_pack.h"

#include "common/tensor.h"

namespace tsm {

v1::DType to_proto(DType t) {
  switch (t) {
    case DType::F32: return v1::F32;
    case DType::F16: return v1::F16;
    case DType::BF16: return v1::BF16;
    case DType::F64: return v1::F64;
    case DType::I8: return v1::I8;
    case DType::U8: return v1::U8;
    case DType::I16: return v1::I16;
    case DType::U16: return v1::U16;
    case DType::I32: return v1::I32;
    case DType::U32: return v1::U32;
    case DType::I64: return v1::I64;
  }
  return v1::DTYPE_UNSPECIFIED;
}

DType from_proto(v1::DType t) {
  switch (t) {
    case v1::F32: return DType::F32;
    case v1::F16: return DType::F16;
    case v1::BF16: return DType::BF16;
    case v1::F64: return DType::F64;
    case v1::I8: return DType::I8;
    case v1::U8: return DType::U8;
    case v1::I16: return DType::I16;
    case v1::U16: return DType::U16;
    case v1::I32: return DType::I32;
    case v1::U32: return DType::U32;
    case v1::I64: return DType::I64;
    default: throw FormatError("array with unknown dtype " + std::to_string(static_cast<int>(t)));
  }
}

v1::Array make_array(const std::string& name, DType dtype, std::span<const int64_t> shape, const void* data, size_t nbytes) {
  v1::Array a;
  a.set_name(name);
  a.set_dtype(to_proto(dtype));
  for (int64_t d : shape) a.add_shape(static_cast<uint64_t>(d));
  a.set_data(static_cast<const char*>(data), nbytes);
  check_array(a);
  return a;
}

std::vector<int64_t> array_shape(const v1::Array& a) {
  std::vector<int64_t> s;
  for (uint64_t d : a.shape()) {
    if (d > (uint64_t{1} << 40)) throw FormatError("array '" + a.name() + "' has an implausible dimension " + std::to_string(d));
    s.push_back(static_cast<int64_t>(d));
  }
  return s;
}

void check_array(const v1::Array& a) {
  DType t = from_proto(a.dtype());
  // The limit of safetensors and npy, which every array must export to (fuzzing found an artifact
  // that validated with a 33-dimensional array and then failed at export).
  if (a.shape_size() > kMaxArrayDims)
    throw FormatError("array '" + a.name() + "': " + std::to_string(a.shape_size()) + " dimensions, at most " + std::to_string(kMaxArrayDims));
  auto shape = array_shape(a);
  int64_t n = shape_numel(shape);
  if (static_cast<uint64_t>(n) * dtype_size(t) != a.data().size())
    throw FormatError("array '" + a.name() + "': shape " + shape_str(shape) + " x " + std::string(dtype_name(t)) + " needs " +
                      std::to_string(static_cast<uint64_t>(n) * dtype_size(t)) + " bytes, found " + std::to_string(a.data().size()));
}

const v1::Array* try_find_array(const v1::CompressedTensor& t, const std::string& name) {
  for (const auto& a : t.arrays())
    if (a.name() == name) {
      check_array(a);
      return &a;
    }
  return nullptr;
}

const v1::Array& find_array(const v1::CompressedTensor& t, const std::string& name) {
  const v1::Array* a = try_find_array(t, name);
  if (!a) throw FormatError("tensor '" + t.name() + "' (" + t.method() + ") has no array '" + name + "'");
  return *a;
}

std::vector<float> unpack_f32(const v1::Array& a) {
  DType t = from_proto(a.dtype());
  if (!is_float(t)) throw FormatError("array '" + a.name() + "' has dtype " + std::string(dtype_name(t)) + ", expected a floating type");
  std::vector<float> out(a.data().size() / dtype_size(t));
  to_f32(t, a.data().data(), out.data(), out.size());
  return out;
}

}  // namespace tsm
