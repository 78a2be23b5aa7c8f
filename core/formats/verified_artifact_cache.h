// The artifact files whose content hash has verified, by file identity (formats/mapped_file.h), so
// that loading an unchanged file again does not hash it again (read_artifact_cached).
// Invariant: an identity is recorded only after a full verification of the file that had it, and only
// when its ctime is at least `racy_margin` older than the start of that verification; a later write
// changes the ctime (which user space cannot set back), a replacement the inode, so a changed file
// always misses. The margin covers coarse timestamps: a write in the same clock tick as the hash
// would otherwise keep the identity (git's "racily clean" entries).
// File layout (text, written atomically, newest line last, at most kMaxEntries lines):
//   "<dev> <ino> <size> <mtime_ns> <ctime_ns> <content sha256 hex>\n"
// Lines that do not parse are dropped. The file is a cache: losing it or failing to write it costs
// one more hash, never a wrong answer beyond the identity rule above.
#pragma once
#include <string>
#include <vector>

#include "formats/mapped_file.h"

namespace tsm {

class VerifiedArtifactCache {
 public:
  static constexpr size_t kMaxEntries = 256;
  static constexpr int64_t kRacyMarginNs = 2'000'000'000;

  /// Loads `cache_file` when it exists; "" keeps the cache in memory only.
  explicit VerifiedArtifactCache(std::string cache_file, int64_t racy_margin_ns = kRacyMarginNs);
  /// $XDG_CACHE_HOME/tensorslm/verified-artifacts, else $HOME/.cache/tensorslm/verified-artifacts;
  /// "" when neither variable is set.
  static std::string default_path();

  bool contains(const FileIdentity& id) const;
  /// Records `id`, whose content verified in a pass that started at `hashed_at_ns` (CLOCK_REALTIME),
  /// unless its ctime is too recent for that (see above); moves it to the newest place and rewrites
  /// the file (one that cannot be written is left as it was). Returns whether it was recorded.
  bool add(const FileIdentity& id, const std::string& content_sha256, int64_t hashed_at_ns);
  /// CLOCK_REALTIME in ns, the clock file timestamps use.
  static int64_t now_ns();
  size_t size() const { return entries_.size(); }
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    FileIdentity id;
    std::string sha256;
  };
  std::string path_;
  int64_t racy_margin_ns_;
  std::vector<Entry> entries_;  ///< oldest first
};

}  // namespace tsm
