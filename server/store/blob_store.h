// Content-addressed blob directory: <root>/blobs/<sha[0:2]>/<sha> holds bytes whose SHA-256 is sha.
// Invariant: a blob file is complete or absent (temp in <root>/tmp, fsync, rename, fsync dir);
// <root>/tmp is emptied at start-up, and "<sha>.tmp-*" files beside blobs (written there by older
// servers) are removed, so an interrupted upload or store leaves nothing behind. A full disk is a
// StorageFull error (HTTP 507), never a half-written blob.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/sha256.h"
#include "store/storage_error.h"

namespace tsm::server {

/// A body being streamed to a temp file while it is hashed. Not committed = removed on destruction.
/// A full disk (ENOSPC / EDQUOT when the file is created or written) does not throw from write():
/// the sink truncates its file at once (the space is free again for everyone else), keeps reading
/// and counting the body, and finish() throws StorageFull, so that the client gets a 507 after its
/// body rather than a reset connection mid-body.
class BlobSink {
 public:
  explicit BlobSink(const std::string& tmp_dir);
  ~BlobSink();
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;

  void write(const void* data, size_t n);  ///< throws tsm::Error on I/O errors other than a full disk
  /// fsync (when `durable`) + close; returns the sha256 hex. Call once, after the last write.
  /// Throws StorageFull when the disk filled up (at any write, or at the fsync).
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
  bool full_ = false;       ///< the disk filled up: the file is truncated, the rest of the body is discarded
  uint64_t full_at_ = 0;    ///< bytes stored when it did
  void disk_full();
};

class BlobStore {
 public:
  /// Creates <root>/blobs and <root>/<tmp_name>, empties the latter, sums the stored bytes. Processes
  /// that share one root (several hosts on NFS, say) each give their own tmp_name (tmp/<instance>),
  /// so that a start-up never removes another process's temp files.
  explicit BlobStore(std::string root, const std::string& tmp_name = "tmp");

  std::string path(std::string_view sha256) const;
  bool exists(std::string_view sha256) const;
  std::string tmp_dir() const { return tmp_; }
  /// Moves a finished temp file (content hash `sha256`) into place; when the blob exists already the
  /// temp file is removed instead. Returns the blob path.
  std::string adopt(const std::string& temp_path, const std::string& sha256);
  /// Writes `bytes` atomically (a temp file in tmp_dir(), fsync, adopt()); returns its sha256.
  /// Throws StorageFull, having removed the temp file, when the disk is full.
  std::string put(std::string_view bytes);
  /// Removes the blob (garbage collection once nothing references it).
  void remove(std::string_view sha256);
  uint64_t bytes_stored() const { return bytes_stored_.load(); }
  const std::string& root() const { return root_; }
  /// Held while a blob gains its first row (adopt() to the row's insert) or loses its last (the
  /// row's delete to remove()), so that the two never interleave. Taken before the metadata store's.
  std::mutex& refs_mutex() { return refs_mu_; }

 private:
  std::string root_, tmp_;
  std::mutex refs_mu_;
  std::atomic<uint64_t> bytes_stored_{0};
};

/// True for a 64-character lower-case hex string (validates ids that become paths).
bool is_sha256_hex(std::string_view s);

}  // namespace tsm::server
