// VerifiedArtifactCache (see verified_artifact_cache.h).
#include "formats/verified_artifact_cache.h"

#include <time.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"

namespace tsm {

namespace {

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

VerifiedArtifactCache::VerifiedArtifactCache(std::string cache_file, int64_t racy_margin_ns)
    : path_(std::move(cache_file)), racy_margin_ns_(racy_margin_ns) {
  if (path_.empty()) return;
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line) && entries_.size() < 4 * kMaxEntries) {
    std::istringstream ls(line);
    Entry e;
    std::string extra;
    if (!(ls >> e.id.dev >> e.id.ino >> e.id.size >> e.id.mtime_ns >> e.id.ctime_ns >> e.sha256) || (ls >> extra) ||
        !is_hex64(e.sha256))
      continue;  // a damaged line costs one more hash of that file, nothing else
    entries_.push_back(std::move(e));
  }
  if (entries_.size() > kMaxEntries) entries_.erase(entries_.begin(), entries_.end() - kMaxEntries);
}

std::string VerifiedArtifactCache::default_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) return std::string(xdg) + "/tensorslm/verified-artifacts";
  const char* home = std::getenv("HOME");
  if (home && *home) return std::string(home) + "/.cache/tensorslm/verified-artifacts";
  return "";
}

bool VerifiedArtifactCache::contains(const FileIdentity& id) const {
  for (const auto& e : entries_)
    if (e.id == id) return true;
  return false;
}

int64_t VerifiedArtifactCache::now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool VerifiedArtifactCache::add(const FileIdentity& id, const std::string& content_sha256, int64_t hashed_at_ns) {
  if (id.ctime_ns > hashed_at_ns - racy_margin_ns_) return false;  // changed too recently to vouch for
  std::erase_if(entries_, [&](const Entry& e) { return e.id == id; });
  entries_.push_back({id, content_sha256});
  if (entries_.size() > kMaxEntries) entries_.erase(entries_.begin());
  if (path_.empty()) return true;
  std::string text;
  for (const auto& e : entries_)
    text += std::to_string(e.id.dev) + " " + std::to_string(e.id.ino) + " " + std::to_string(e.id.size) + " " +
            std::to_string(e.id.mtime_ns) + " " + std::to_string(e.id.ctime_ns) + " " + e.sha256 + "\n";
  try {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    write_file_atomic(path_, text);
  } catch (const std::exception&) {
    // read-only or full cache directory: the next load hashes again, which is all a miss costs
  }
  return true;
}

}  // namespace tsm
