// A read-only memory map of a whole file, shared by the tensors that borrow from it, with the
// identity of the file it maps (taken by fstat on the descriptor that was mapped, so the two agree).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace tsm {

/// What tells one version of a file from another without reading it: any write changes mtime and
/// ctime (ctime cannot be set back from user space), a replacement changes the inode.
struct FileIdentity {
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

class MappedFile {
 public:
  /// Maps `path` read-only. Throws tsm::Error naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  const FileIdentity& identity() const { return identity_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  FileIdentity identity_;
};

}  // namespace tsm
