// Writes a directory tree as a POSIX ustar archive (the `tar` format), streaming file by file.
// Invariant: only regular files are stored (paths relative to the root, '/'-separated, sorted for
// a reproducible archive); each member is a 512-byte header + data padded to 512; two zero blocks end it.
// Paths longer than ustar allows (100 name + 155 prefix) are an error, never silently cut.
#pragma once
#include <cstdint>
#include <string>

namespace tsm::client {

struct TarStats {
  uint64_t files = 0;
  uint64_t bytes = 0;  ///< archive size
};

/// Archives the regular files under `dir` into `out_path`. Throws tsm::Error naming the file at fault
/// (unreadable, path too long, symlink to outside) .
TarStats write_tar(const std::string& dir, const std::string& out_path);

}  // namespace tsm::client
