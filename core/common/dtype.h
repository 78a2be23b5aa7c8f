// Element types of stored arrays and conversions to and from f32.
// Invariant: every DType has a fixed little-endian byte size; f16/bf16 are IEEE binary16 / bfloat16
// bit patterns stored as uint16 (conversion by Eigen::half / Eigen::bfloat16, round to nearest even).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tsm {

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64 };

size_t dtype_size(DType t);
/// Lower-case name: f32 f16 bf16 f64 i8 u8 i16 u16 i32 u32 i64.
std::string_view dtype_name(DType t);
/// Parses a name as written by dtype_name (also accepts float32/float16/bfloat16/float64/int8).
/// Throws tsm::Error naming the text when it is not a known dtype.
DType parse_dtype(std::string_view name);
bool is_float(DType t);

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

/// Converts n elements of a floating or integer array of type `t` to f32. src may be unaligned.
void to_f32(DType t, const void* src, float* dst, size_t n);
/// NaN and Inf among floating elements; `first` is the index of the first one (-1 when none).
struct NonFinite {
  uint64_t nan = 0, inf = 0;
  int64_t first = -1;
  uint64_t count() const { return nan + inf; }
};
/// Adds the NaN/Inf among n elements of floating type `t` at src (unaligned) to `acc`; element i
/// has index base + i. Reads the bit patterns (no conversion); integer types hold none.
void scan_nonfinite(DType t, const void* src, size_t n, uint64_t base, NonFinite& acc);

/// Converts n f32 values to type `t` (floating types only; integers throw). dst may be unaligned.
void from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace tsm
