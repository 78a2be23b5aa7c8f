// safetensors files: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data.
// The header is untrusted: N is capped (100 MB), offsets lie in the data section, do not overlap,
// and product(shape) * dtype size == end - begin. Read dtypes F32/F16/BF16/F64 (+ integer dtypes
// for passthrough); every violation is a tsm::FormatError naming the tensor and the byte offset.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/tensor.h"

namespace tsm {

class SafetensorsFile {
 public:
  /// Memory-maps and parses `path`.
  static SafetensorsFile open(const std::string& path);
  /// Parses an in-memory image; tensors borrow `bytes` and keep `owner` alive.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner);

  /// Tensors in file order (ascending data offset).
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* find(std::string_view name) const;
  /// Throws tsm::Error "no tensor 'x' in <file> (has: a, b, ...)".
  const Tensor& at(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::vector<Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string origin_;
};

/// The safetensors image of `tensors` (names unique; 8-byte aligned data as the reference writer).
std::string safetensors_bytes(std::span<const Tensor> tensors, const std::map<std::string, std::string>& metadata = {});
/// Writes safetensors_bytes atomically.
void write_safetensors(const std::string& path, std::span<const Tensor> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tsm
