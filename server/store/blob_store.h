// Content-addressed blob directory: <root>/blobs/<sha[0:2]>/<sha> holds bytes whose SHA-256 is sha.
// Invariant: a blob file is complete or absent (temp in <root>/tmp, fsync, rename, fsync dir);
// <root>/tmp is emptied at start-up, and temp files that put() left beside blobs are removed, so an
// interrupted upload or store leaves nothing behind.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/sha256.h"

namespace tsm::server {

/// A body being streamed to a temp file while it is hashed. Not committed = removed on destruction.
class BlobSink {
 public:
  explicit BlobSink(const std::string& tmp_dir);
  ~BlobSink();
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;

  void write(const void* data, size_t n);  ///< throws tsm::Error on I/O errors (disk full...)
  /// fsync (when `durable`) + close; returns the sha256 hex. Call once, after the last write.
  std::string finish(bool durable = true);
  const std::string& temp_path() const { return path_; }
  uint64_t bytes() const { return bytes_; }
  /// The first up to 64 KiB written (format detection and header checks without re-reading).
  const std::string& head() const { return head_; }
  /// Hands the temp file over (the sink no longer removes it).
  void release() { released_ = true; }

 private:
  void flush();
  void write_fd(const char* p, size_t n);
  std::string path_, head_;
  std::vector<char> buf_;   ///< (<= 1 MiB) pending bytes: one write(2) per MiB, not per network read
  int fd_ = -1;
  uint64_t bytes_ = 0;
  uint64_t written_ = 0, synced_ = 0;  ///< bytes written to the fd / handed to write-back
  Sha256 sha_;
  bool released_ = false;
};

class BlobStore {
 public:
  /// Creates <root>/blobs and <root>/tmp, empties <root>/tmp, sums the stored bytes.
  explicit BlobStore(std::string root);

  std::string path(std::string_view sha256) const;
  bool exists(std::string_view sha256) const;
  std::string tmp_dir() const { return root_ + "/tmp"; }
  /// Moves a finished temp file (content hash `sha256`) into place; when the blob exists already the
  /// temp file is removed instead. Returns the blob path.
  std::string adopt(const std::string& temp_path, const std::string& sha256);
  /// Writes `bytes` atomically; returns its sha256.
  std::string put(std::string_view bytes);
  /// Removes the blob (garbage collection once nothing references it).
  void remove(std::string_view sha256);
  uint64_t bytes_stored() const { return bytes_stored_.load(); }

 private:
  std::string root_;
  std::atomic<uint64_t> bytes_stored_{0};
};

/// True for a 64-character lower-case hex string (validates ids that become paths).
bool is_sha256_hex(std::string_view s);

}  // namespace tsm::server
