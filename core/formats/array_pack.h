// Packing typed vectors into tensorslm.v1.Array messages and reading them back with checks.
// Invariant on read: product(shape) * dtype_size == data.size(), else tsm::FormatError naming the array.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "artifact.pb.h"
#include "common/dtype.h"
#include "common/error.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

v1::DType to_proto(DType t);
/// Throws tsm::FormatError for DTYPE_UNSPECIFIED or unknown values.
DType from_proto(v1::DType t);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<int16_t>() { return DType::I16; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::U16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::U32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }

/// An Array of raw bytes with an explicit dtype (e.g. f16 payload held in uint16).
v1::Array make_array(const std::string& name, DType dtype, std::span<const int64_t> shape, const void* data, size_t nbytes);

template <class T>
v1::Array make_array(const std::string& name, std::span<const int64_t> shape, std::span<const T> values) {
  return make_array(name, dtype_of<T>(), shape, values.data(), values.size_bytes());
}
template <class T>
v1::Array make_array(const std::string& name, std::initializer_list<int64_t> shape, const std::vector<T>& values) {
  std::vector<int64_t> s(shape);
  return make_array<T>(name, s, std::span<const T>(values));
}

/// The array named `name` in `t`; throws tsm::FormatError when missing or when its size is inconsistent.
const v1::Array& find_array(const v1::CompressedTensor& t, const std::string& name);
const v1::Array* try_find_array(const v1::CompressedTensor& t, const std::string& name);
std::vector<int64_t> array_shape(const v1::Array& a);

/// Copies the array's values as T; the stored dtype must be exactly dtype_of<T>() (else FormatError).
template <class T>
std::vector<T> unpack(const v1::Array& a) {
  if (from_proto(a.dtype()) != dtype_of<T>())
    throw FormatError("array '" + a.name() + "' has dtype " + std::string(dtype_name(from_proto(a.dtype()))) +
                      ", expected " + std::string(dtype_name(dtype_of<T>())));
  std::vector<T> out(a.data().size() / sizeof(T));
  std::memcpy(out.data(), a.data().data(), out.size() * sizeof(T));
  return out;
}
/// Converts a floating array (f32/f16/bf16/f64) to f32.
std::vector<float> unpack_f32(const v1::Array& a);

/// Most dimensions an array may have (as safetensors and npy allow).
inline constexpr int kMaxArrayDims = 32;

/// Checks at most kMaxArrayDims dimensions and product(shape) * dtype_size == data.size(); throws
/// FormatError naming the array.
void check_array(const v1::Array& a);

}  // namespace tsm
