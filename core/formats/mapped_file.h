// A read-only memory map of a whole file, shared by the tensors that borrow from it.
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace tsm {

class MappedFile {
 public:
  /// Maps `path` read-only. Throws tsm::Error naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace tsm
