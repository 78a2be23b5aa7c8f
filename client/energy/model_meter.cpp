#include "energy/model_meter.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include "common/error.h"

namespace tsm::client {

namespace {
/// Reads a procfs/sysfs file by streaming (their stat() size is 0 or a page, not the content size).
std::string read_pseudo_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read '" + path + "'");
  return std::string(std::istreambuf_iterator<char>(f), {});
}
}  // namespace

CpuTimes parse_proc_stat(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu ", 0) != 0) continue;
    std::istringstream f(line.substr(4));
    uint64_t v[8] = {0};  // user nice system idle iowait irq softirq steal (guest is inside user)
    int n = 0;
    while (n < 8 && (f >> v[n])) ++n;
    if (n < 4) throw FormatError("/proc/stat 'cpu' line has " + std::to_string(n) + " fields, need at least 4");
    CpuTimes t;
    for (int i = 0; i < n; ++i) t.total += v[i];
    t.busy = t.total - v[3] - v[4];
    return t;
  }
  throw FormatError("/proc/stat has no aggregate 'cpu ' line");
}

BoardFit board_fit(const std::string& dt_model, double cfg_idle_w, double cfg_max_w) {
  if (dt_model.find("Raspberry Pi 5") != std::string::npos) return {"Raspberry Pi 5", 4.4032, 3.4579, 0.15};
  if (dt_model.find("Raspberry Pi 4 Model B") != std::string::npos) return {"Raspberry Pi 4B", 2.2857, 4.5344, 0.15};
  if (cfg_max_w > cfg_idle_w && cfg_idle_w >= 0)
    return {"configured", cfg_idle_w, cfg_max_w - cfg_idle_w, 0.25};
  return {"", 0, 0, 0};
}

std::string ModelMeter::detail() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: P = %.4f + %.4f u W (u = CPU utilisation from %s/stat)", fit_.board.c_str(),
                fit_.idle_w, fit_.slope_w, proc_.c_str());
  return buf;
}

void ModelMeter::start() {
  std::string dt;
  try {
    dt = read_pseudo_file(proc_ + "/device-tree/model");
    while (!dt.empty() && (dt.back() == '\0' || dt.back() == '\n')) dt.pop_back();
  } catch (const Error&) {
  }
  fit_ = board_fit(dt, cfg_idle_, cfg_max_);
  if (fit_.board.empty())
    throw Error("model: board '" + (dt.empty() ? std::string("unknown") : dt) +
                "' has no built-in fit; set energy.model_idle_w and energy.model_max_w");
  std::lock_guard lk(mu_);
  t0_ = std::chrono::steady_clock::now();
  have_last_ = false;
  joules_ = 0;
  last_ = parse_proc_stat(read_pseudo_file(proc_ + "/stat"));
  last_t_ = 0;
  have_last_ = true;
}

double ModelMeter::joules_at(double t_s, const std::string& text) {
  CpuTimes now = parse_proc_stat(text);
  if (have_last_ && t_s > last_t_ && now.total >= last_.total && now.busy >= last_.busy) {
    const uint64_t dtot = now.total - last_.total;
    const double u = dtot ? static_cast<double>(now.busy - last_.busy) / static_cast<double>(dtot) : 0.0;
    joules_ += (fit_.idle_w + fit_.slope_w * u) * (t_s - last_t_);
  }
  last_ = now;
  last_t_ = t_s;
  have_last_ = true;
  return joules_;
}

double ModelMeter::joules() {
  std::string text = read_pseudo_file(proc_ + "/stat");
  std::lock_guard lk(mu_);
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  return joules_at(t, text);
}

}  // namespace tsm::client
