#include "lib/report_spool.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tsm::client {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSuffix = ".report";
}

ReportSpool::ReportSpool(std::string dir, size_t max_reports) : dir_(std::move(dir)), max_(std::max<size_t>(1, max_reports)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (!fs::is_directory(dir_)) throw Error("cannot create spool directory '" + dir_ + "': " + ec.message());
  // Leftover temp files of an interrupted write are not reports.
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) fs::remove(e.path(), ec);
}

std::string ReportSpool::path_of(uint64_t seq) const {
  char name[40];
  std::snprintf(name, sizeof name, "%020llu%s", static_cast<unsigned long long>(seq), kSuffix);
  return (fs::path(dir_) / name).string();
}

std::vector<uint64_t> ReportSpool::pending() const {
  std::vector<uint64_t> seqs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() != 20 + std::string(kSuffix).size() || n.substr(20) != kSuffix) continue;
    if (!std::all_of(n.begin(), n.begin() + 20, ::isdigit)) continue;
    seqs.push_back(std::stoull(n.substr(0, 20)));
  }
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

size_t ReportSpool::size() const { return pending().size(); }

uint64_t ReportSpool::dropped() const {
  try {
    return std::stoull(read_file((fs::path(dir_) / "dropped").string(), 64));
  } catch (const std::exception&) {
    return 0;
  }
}

void ReportSpool::save_dropped(uint64_t n) { write_file_atomic((fs::path(dir_) / "dropped").string(), std::to_string(n)); }

uint64_t ReportSpool::push(const std::string& bytes) {
  auto seqs = pending();
  const uint64_t seq = seqs.empty() ? 1 : seqs.back() + 1;
  write_file_atomic(path_of(seq), bytes);
  seqs.push_back(seq);
  if (seqs.size() > max_) {
    const size_t drop = seqs.size() - max_;
    for (size_t i = 0; i < drop; ++i) {
      std::error_code ec;
      fs::remove(path_of(seqs[i]), ec);
    }
    save_dropped(dropped() + drop);
  }
  return seq;
}

size_t ReportSpool::deliver(const std::function<bool(const std::string&)>& send) {
  size_t n = 0;
  for (uint64_t seq : pending()) {
    std::string bytes;
    try {
      bytes = read_file(path_of(seq), size_t(64) << 20);
    } catch (const Error&) {
      continue;  // vanished (dropped concurrently): nothing to send
    }
    if (!send(bytes)) break;
    std::error_code ec;
    fs::remove(path_of(seq), ec);
    ++n;
  }
  return n;
}

}  // namespace tsm::client
