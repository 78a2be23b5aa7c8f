#include "energy/hwmon_meter.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/error.h"

namespace tsm::client {
namespace fs = std::filesystem;

namespace {
bool read_line(const fs::path& p, std::string* out) {
  std::ifstream f(p);
  return static_cast<bool>(std::getline(f, *out));
}
uint64_t read_u64(const fs::path& p) {
  std::ifstream f(p);
  uint64_t v = 0;
  if (!(f >> v)) throw Error("hwmon: cannot read a number from '" + p.string() + "'");
  return v;
}
bool supported_chip(const std::string& name) { return name == "ina219" || name == "ina226" || name == "ina260"; }
}  // namespace

std::string HwmonMeter::detail() const {
  return chip_ + " at " + dir_ + (energy_counter_ ? " (energy1_input)" : " (power1_input sampled)");
}

double HwmonMeter::uncertainty_rel() const {
  double chip = chip_ == "ina219" ? 0.02 : 0.01;  // INA219: 12-bit ADC, 0.5 % gain; INA226/260: 16-bit, 0.1 %
  return chip + 0.01 /* shunt / wiring */ + (energy_counter_ ? 0.0 : 0.02 /* sampling */);
}

void HwmonMeter::start() {
  stop();
  const fs::path base = fs::path(root_) / "class" / "hwmon";
  std::error_code ec;
  if (!fs::is_directory(base, ec)) throw Error("hwmon: no " + base.string());
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(base, ec)) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  dir_.clear();
  for (const auto& d : dirs) {
    std::string name;
    if (!read_line(d / "name", &name) || !supported_chip(name)) continue;
    if (fs::exists(d / "energy1_input") || fs::exists(d / "power1_input")) {
      dir_ = d.string();
      chip_ = name;
      energy_counter_ = fs::exists(d / "energy1_input");
      break;
    }
  }
  if (dir_.empty()) throw Error("hwmon: no ina219/ina226/ina260 with power1_input or energy1_input under " + base.string());
  if (energy_counter_) {
    energy0_uj_ = read_u64(fs::path(dir_) / "energy1_input");
    return;
  }
  SamplingMeter::start();
}

double HwmonMeter::read_watts() { return static_cast<double>(read_u64(fs::path(dir_) / "power1_input")) * 1e-6; }

double HwmonMeter::joules() {
  if (energy_counter_) {
    uint64_t now = read_u64(fs::path(dir_) / "energy1_input");
    return now >= energy0_uj_ ? static_cast<double>(now - energy0_uj_) * 1e-6 : 0.0;
  }
  return SamplingMeter::joules();
}

}  // namespace tsm::client
