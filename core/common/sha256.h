// Streaming SHA-256 (OpenSSL EVP). Used for content addresses of uploads and artifacts.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace tsm {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t n);
  /// Lower-case hex digest; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);
/// Hashes a file in 1 MiB chunks. Throws tsm::Error when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace tsm
