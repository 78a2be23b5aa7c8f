#include "energy/rapl_meter.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "common/error.h"

namespace tsm::client {
namespace fs = std::filesystem;

namespace {
uint64_t read_u64(const std::string& path) {
  std::ifstream f(path);
  uint64_t v = 0;
  if (!(f >> v)) throw Error("cannot read a number from '" + path + "'");
  return v;
}
}  // namespace

uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t range) {
  if (cur >= prev) return cur - prev;
  return (range - prev) + cur;  // wrapped once past range back to 0
}

RaplMeter::~RaplMeter() { stop(); }

std::string RaplMeter::detail() const {
  return "powercap RAPL, " + std::to_string(domains_.size()) + " package domain(s) under " + root_ + "/class/powercap";
}

void RaplMeter::start() {
  stop();
  domains_.clear();
  total_uj_ = 0;
  const fs::path dir = fs::path(root_) / "class" / "powercap";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("rapl: no " + dir.string());
  static const std::regex pkg(R"(intel-rapl:\d+)");  // top-level = package; intel-rapl:0:0 are sub-domains
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (std::regex_match(e.path().filename().string(), pkg)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    Domain d;
    d.file = (dir / n / "energy_uj").string();
    d.range_uj = read_u64((dir / n / "max_energy_range_uj").string());
    d.last_uj = read_u64(d.file);  // throws when not readable (needs root on recent kernels)
    domains_.push_back(d);
  }
  if (domains_.empty()) throw Error("rapl: no intel-rapl:N package domain under " + dir.string());
  poller_.start(poll_, [this] {
    std::lock_guard lk(mu_);
    update();
  });
}

void RaplMeter::update() {  // caller holds mu_
  for (auto& d : domains_) {
    uint64_t cur = read_u64(d.file);
    total_uj_ += counter_delta(d.last_uj, cur, d.range_uj);
    d.last_uj = cur;
  }
}

double RaplMeter::joules() {
  std::lock_guard lk(mu_);
  update();
  return static_cast<double>(total_uj_) * 1e-6;
}

void RaplMeter::stop() { poller_.stop(); }

}  // namespace tsm::client
