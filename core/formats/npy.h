// NumPy .npy files, versions 1.0-3.0: magic "\x93NUMPY", version, header length (u16 for v1,
// u32 for v2/v3), a Python-dict header {'descr', 'fortran_order', 'shape'}, padding, then the data.
// Read: little-endian f32/f16/f64 (descr '<f4' '<f2' '<f8'; '|' byte order not accepted for floats),
// C order only; anything else is rejected with a message naming what was found.
#pragma once
#include <cstddef>
#include <span>
#include <string>

#include "common/tensor.h"

namespace tsm {

struct NpyHeader {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t data_offset = 0;    ///< bytes before the data (magic + version + length + header)
  size_t data_bytes = 0;     ///< numel * dtype_size
};

/// Parses the header from the first bytes of a file (at least data_offset bytes are needed; throws
/// tsm::FormatError with the byte offset at fault otherwise, or for any malformed/unsupported header).
NpyHeader parse_npy_header(std::span<const std::byte> prefix);
/// Parses a whole .npy image; the tensor borrows `bytes` and keeps `owner` alive.
/// Checks that exactly data_bytes follow the header.
Tensor parse_npy(std::span<const std::byte> bytes, std::shared_ptr<const void> owner, std::string name = "array");
/// Memory-maps and parses a file.
Tensor read_npy(const std::string& path);
/// The .npy v1.0 image of a floating tensor (f32/f16/f64; bf16 is written as f32).
std::string npy_bytes(const Tensor& t);
/// Writes npy_bytes(t) atomically.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace tsm
