// Crash-safe file writes: data goes to a temp file beside the target, is fsync'ed, then renamed over
// the target and the directory is fsync'ed. A reader sees the old file or the whole new one, never
// a half-written one; a writer that is destroyed without commit() removes its temp file.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tsm {

class AtomicFileWriter {
 public:
  /// Opens `<target>.tmp-<random>` in the target's directory. Throws tsm::Error on failure.
  explicit AtomicFileWriter(std::string target);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  /// fsync, rename to the target, fsync the directory. After this the writer is closed.
  void commit();
  /// Removes the temp file (also done by the destructor when not committed).
  void abort();
  const std::string& temp_path() const { return temp_; }
  size_t bytes_written() const { return written_; }

 private:
  std::string target_, temp_;
  int fd_ = -1;
  size_t written_ = 0;
};

/// Writes `data` to `path` atomically (AtomicFileWriter).
void write_file_atomic(const std::string& path, std::string_view data);
/// Reads a whole file. Throws tsm::Error naming the path when it cannot be read or is larger than max_bytes.
std::string read_file(const std::string& path, size_t max_bytes = size_t(1) << 34);

}  // namespace tsm
