#include "store/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/error.h"

namespace fs = std::filesystem;

namespace tsm::server {
namespace {

std::string random_hex(int n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = digits[rng() & 15];
  return s;
}

bool no_space(int e) { return e == ENOSPC || e == EDQUOT; }

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

BlobSink::BlobSink(const std::string& tmp_dir) {
  path_ = tmp_dir + "/upload-" + random_hex(16);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0 && no_space(errno)) full_ = true;  // said by finish(), after the body
  else if (fd_ < 0) throw StorageError("cannot create " + path_ + ": " + std::strerror(errno));
}

void BlobSink::disk_full() {
  full_ = true;
  full_at_ = written_;
  buf_ = {};
  // Give the space back now: the body keeps arriving, and other writers need the room.
  if (fd_ >= 0 && ::ftruncate(fd_, 0) != 0) { /* the unlink on destruction frees it anyway */ }
}

BlobSink::~BlobSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!released_) ::unlink(path_.c_str());
}

void BlobSink::write(const void* data, size_t n) {
  if (full_) {  // the rest of the body is read and discarded; finish() says why
    bytes_ += n;
    return;
  }
  sha_.update(data, n);
  if (head_.size() < 65536) head_.append(static_cast<const char*>(data), std::min(n, 65536 - head_.size()));
  constexpr size_t kBuf = 1 << 20;
  bytes_ += n;
  if (buf_.size() + n <= kBuf) {
    if (buf_.capacity() < kBuf) buf_.reserve(kBuf);
    buf_.insert(buf_.end(), static_cast<const char*>(data), static_cast<const char*>(data) + n);
    if (buf_.size() == kBuf) flush();
    return;
  }
  flush();
  write_fd(static_cast<const char*>(data), n);
}

void BlobSink::flush() {
  if (full_) return;
  write_fd(buf_.data(), buf_.size());
  buf_.clear();
}

void BlobSink::write_fd(const char* p, size_t n) {
  if (full_) return;  // (write() past the buffer flushes first, which may have found the disk full)
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (no_space(errno)) return disk_full();
      throw StorageError("cannot write " + path_ + ": " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
  // Start write-back of every full 8 MiB behind us now (without waiting), so the fsync before the
  // 201 finds little left to write instead of the whole upload.
  constexpr uint64_t kSyncStep = 8 << 20;
  if (written_ - synced_ >= kSyncStep) {
    uint64_t upto = written_ / kSyncStep * kSyncStep;
    ::sync_file_range(fd_, static_cast<off_t>(synced_), static_cast<off_t>(upto - synced_), SYNC_FILE_RANGE_WRITE);
    synced_ = upto;
  }
}

std::string BlobSink::finish(bool durable) {
  flush();
  if (!full_ && durable && ::fsync(fd_) != 0) {
    if (!no_space(errno)) throw Error("fsync " + path_ + ": " + std::strerror(errno));
    disk_full();  // delayed allocation: the space ran out at write-back
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (full_) {
    ::unlink(path_.c_str());
    throw StorageFull("the disk is full: " + std::to_string(bytes_) + " bytes cannot be stored (" +
                      std::to_string(full_at_) + " were written when the space ran out); nothing was kept");
  }
  return sha_.hex_digest();
}

BlobStore::BlobStore(std::string root, const std::string& tmp_name) : root_(std::move(root)), tmp_(root_ + "/" + tmp_name) {
  fs::create_directories(root_ + "/blobs");
  fs::create_directories(tmp_);
  for (auto& e : fs::directory_iterator(tmp_)) fs::remove_all(e.path());
  // Older servers wrote put() blobs through "<sha>.tmp-*" beside the final name: a kill -9 in
  // between left that file, which no name refers to. Remove such files; count only real blobs.
  uint64_t total = 0;
  std::vector<fs::path> stale;
  for (auto& e : fs::recursive_directory_iterator(root_ + "/blobs")) {
    if (!e.is_regular_file()) continue;
    if (e.path().filename().string().find(".tmp-") != std::string::npos) stale.push_back(e.path());
    else total += e.file_size();
  }
  for (const auto& p : stale) fs::remove(p);
  bytes_stored_ = total;
}

std::string BlobStore::path(std::string_view sha) const {
  if (!is_sha256_hex(sha)) throw Error("not a sha256: '" + std::string(sha) + "'");
  return root_ + "/blobs/" + std::string(sha.substr(0, 2)) + "/" + std::string(sha);
}

bool BlobStore::exists(std::string_view sha) const { return is_sha256_hex(sha) && fs::exists(path(sha)); }

std::string BlobStore::adopt(const std::string& temp_path, const std::string& sha) {
  std::string dst = path(sha);
  std::string dir = fs::path(dst).parent_path().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec == std::errc::no_space_on_device)
    throw StorageFull("the disk is full: cannot create the blob directory " + dir);
  if (ec) throw StorageError("cannot create " + dir + ": " + ec.message());
  if (fs::exists(dst)) {
    fs::remove(temp_path);
    return dst;
  }
  uint64_t size = fs::file_size(temp_path);
  if (::rename(temp_path.c_str(), dst.c_str()) != 0) {
    if (no_space(errno)) throw StorageFull("the disk is full: cannot move " + temp_path + " to " + dst);
    throw StorageError("cannot move " + temp_path + " to " + dst + ": " + std::strerror(errno));
  }
  fsync_dir(dir);
  bytes_stored_ += size;
  return dst;
}

std::string BlobStore::put(std::string_view bytes) {
  std::string sha = sha256_hex(bytes);
  if (fs::exists(path(sha))) return sha;
  // Through tmp/ like an upload: a kill -9 leaves the temp file where start-up empties it.
  BlobSink sink(tmp_dir());
  sink.write(bytes.data(), bytes.size());
  try {
    sink.finish();
  } catch (const StorageFull&) {
    throw StorageFull("the disk is full: a blob of " + std::to_string(bytes.size()) + " bytes cannot be stored under " +
                      root_ + "; free space (DELETE unused uploads) and retry");
  }
  adopt(sink.temp_path(), sha);
  sink.release();
  return sha;
}

void BlobStore::remove(std::string_view sha) {
  std::error_code ec;
  std::string p = path(sha);
  uint64_t size = fs::file_size(p, ec);
  if (!ec && fs::remove(p, ec)) bytes_stored_ -= size;
}

}  // namespace tsm::server
