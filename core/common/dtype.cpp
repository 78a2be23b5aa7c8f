#include "common/dtype.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace tsm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::F64: case DType::I64: return 8;
    case DType::I8: case DType::U8: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::I16: return "i16";
    case DType::U16: return "u16";
    case DType::I32: return "i32";
    case DType::U32: return "u32";
    case DType::I64: return "i64";
  }
  return "?";
}

DType parse_dtype(std::string_view n) {
  if (n == "f32" || n == "float32" || n == "F32") return DType::F32;
  if (n == "f16" || n == "float16" || n == "F16") return DType::F16;
  if (n == "bf16" || n == "bfloat16" || n == "BF16") return DType::BF16;
  if (n == "f64" || n == "float64" || n == "F64") return DType::F64;
  if (n == "i8" || n == "int8" || n == "I8") return DType::I8;
  if (n == "u8" || n == "uint8" || n == "U8") return DType::U8;
  if (n == "i16" || n == "int16" || n == "I16") return DType::I16;
  if (n == "u16" || n == "uint16" || n == "U16") return DType::U16;
  if (n == "i32" || n == "int32" || n == "I32") return DType::I32;
  if (n == "u32" || n == "uint32" || n == "U32") return DType::U32;
  if (n == "i64" || n == "int64" || n == "I64") return DType::I64;
  throw Error("unknown dtype '" + std::string(n) + "' (expected f32, f16, bf16, f64, i8, u8, i16, u16, i32, u32 or i64)");
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

float half_to_float(uint16_t h) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)); }
uint16_t float_to_half(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }
float bf16_to_float(uint16_t b) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(b)); }
uint16_t float_to_bf16(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f)); }

namespace {
template <class T, class F>
void convert_in(const void* src, float* dst, size_t n, F f) {
  const auto* p = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    dst[i] = f(v);
  }
}
template <class T, class F>
void convert_out(const float* src, void* dst, size_t n, F f) {
  auto* p = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < n; ++i) {
    T v = f(src[i]);
    std::memcpy(p + i * sizeof(T), &v, sizeof(T));
  }
}
auto cast = [](auto v) { return static_cast<float>(v); };
}  // namespace

void to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: return convert_in<uint16_t>(src, dst, n, half_to_float);
    case DType::BF16: return convert_in<uint16_t>(src, dst, n, bf16_to_float);
    case DType::F64: return convert_in<double>(src, dst, n, cast);
    case DType::I8: return convert_in<int8_t>(src, dst, n, cast);
    case DType::U8: return convert_in<uint8_t>(src, dst, n, cast);
    case DType::I16: return convert_in<int16_t>(src, dst, n, cast);
    case DType::U16: return convert_in<uint16_t>(src, dst, n, cast);
    case DType::I32: return convert_in<int32_t>(src, dst, n, cast);
    case DType::U32: return convert_in<uint32_t>(src, dst, n, cast);
    case DType::I64: return convert_in<int64_t>(src, dst, n, cast);
  }
}

namespace {

/// U: the element's bit pattern; exp: its all-ones exponent field; a non-finite element has every
/// exponent bit set (Inf: zero mantissa, NaN: any other). Blocks without one cost a vectorised
/// AND/compare/OR pass; only a block that holds one is walked element by element.
template <class U>
void scan_bits(const void* src, size_t n, U exp, uint64_t base, NonFinite& acc) {
  constexpr size_t kBlock = 1024;
  const U mant = static_cast<U>(~exp & (static_cast<U>(~U(0)) >> 1));
  U buf[kBlock];
  for (size_t i = 0; i < n; i += kBlock) {
    size_t m = std::min(kBlock, n - i);
    std::memcpy(buf, static_cast<const char*>(src) + i * sizeof(U), m * sizeof(U));
    U any = 0;
    for (size_t k = 0; k < m; ++k) any |= static_cast<U>((buf[k] & exp) == exp);
    if (!any) continue;
    for (size_t k = 0; k < m; ++k) {
      if ((buf[k] & exp) != exp) continue;
      ((buf[k] & mant) ? acc.nan : acc.inf)++;
      if (acc.first < 0) acc.first = static_cast<int64_t>(base + i + k);
    }
  }
}

}  // namespace

void scan_nonfinite(DType t, const void* src, size_t n, uint64_t base, NonFinite& acc) {
  switch (t) {
    case DType::F32: return scan_bits<uint32_t>(src, n, 0x7f800000u, base, acc);
    case DType::F16: return scan_bits<uint16_t>(src, n, 0x7c00u, base, acc);
    case DType::BF16: return scan_bits<uint16_t>(src, n, 0x7f80u, base, acc);
    case DType::F64: return scan_bits<uint64_t>(src, n, 0x7ff0000000000000ull, base, acc);
    default: return;
  }
}

void from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: return convert_out<uint16_t>(src, dst, n, float_to_half);
    case DType::BF16: return convert_out<uint16_t>(src, dst, n, float_to_bf16);
    case DType::F64: return convert_out<double>(src, dst, n, [](float v) { return static_cast<double>(v); });
    default: throw Error("cannot convert f32 to integer dtype " + std::string(dtype_name(t)));
  }
}

}  // namespace tsm
