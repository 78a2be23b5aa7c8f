// sweep_unreferenced (see orphan_sweep.h).
#include "store/orphan_sweep.h"

#include <filesystem>
#include <vector>

namespace tsm::server {
namespace fs = std::filesystem;

namespace {

bool old_enough(const fs::path& p, std::chrono::seconds min_age) {
  if (min_age.count() <= 0) return true;
  std::error_code ec;
  const auto t = fs::last_write_time(p, ec);
  return !ec && fs::file_time_type::clock::now() - t > min_age;
}

}  // namespace

SweepResult sweep_unreferenced(BlobStore& blobs, MetadataStore& store, const std::string& models_dir,
                               std::chrono::seconds min_age) {
  SweepResult r;
  std::error_code ec;
  std::vector<std::string> orphan_blobs;
  for (auto& e : fs::recursive_directory_iterator(blobs.root() + "/blobs", ec)) {
    const std::string sha = e.path().filename().string();
    if (e.is_regular_file() && is_sha256_hex(sha) && old_enough(e.path(), min_age) && store.blob_refs(sha) == 0)
      orphan_blobs.push_back(sha);
  }
  for (const auto& sha : orphan_blobs) {
    std::error_code size_ec;
    const uint64_t size = fs::file_size(blobs.path(sha), size_ec);
    blobs.remove(sha);
    ++r.blobs;
    if (!size_ec) r.bytes += size;
  }
  for (auto& e : fs::directory_iterator(models_dir, ec)) {
    const std::string sha = e.path().filename().string();
    if (!e.is_directory() || !is_sha256_hex(sha) || !old_enough(e.path(), min_age) || store.blob_refs(sha) != 0) continue;
    std::error_code rm_ec;
    fs::remove_all(e.path(), rm_ec);
    if (!rm_ec) ++r.model_dirs;
  }
  return r;
}

}  // namespace tsm::server
