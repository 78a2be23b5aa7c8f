// model: energy estimated from whole-system CPU utilisation u in [0, 1] (from <proc>/stat) with a
// linear board model P(u) = idle + slope * u. Built-in fits (PowerJoular's published linear fits):
// Raspberry Pi 5: 4.4032 + 3.4579 u W; Raspberry Pi 4B: 2.2857 + 4.5344 u W; other boards take a
// configured idle/max pair. Because P is linear in u, integrating over a window equals
// (idle + slope * mean u) * dt exactly, so two /proc/stat snapshots are enough (no sampling thread).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>

#include "energy/energy_meter.h"

namespace tsm::client {

struct CpuTimes {
  uint64_t busy = 0;   ///< jiffies not idle/iowait (user+nice+system+irq+softirq+steal)
  uint64_t total = 0;  ///< all jiffies
};

/// Parses the aggregate "cpu " line of /proc/stat. Throws tsm::FormatError when it is missing.
CpuTimes parse_proc_stat(const std::string& text);

struct BoardFit {
  std::string board;   ///< what it applies to, for the report
  double idle_w = 0;   ///< P(u=0)
  double slope_w = 0;  ///< P(1) - P(0)
  double uncertainty_rel = 0.25;
};

/// The built-in fit for a /proc/device-tree/model string, or a configured one; nullopt-like
/// (slope 0 and idle 0) when neither applies.
BoardFit board_fit(const std::string& dt_model, double cfg_idle_w, double cfg_max_w);

class ModelMeter : public EnergyMeter {
 public:
  ModelMeter(std::string proc_root, double cfg_idle_w, double cfg_max_w)
      : proc_(std::move(proc_root)), cfg_idle_(cfg_idle_w), cfg_max_(cfg_max_w) {}
  std::string name() const override { return "model"; }
  std::string detail() const override;
  double uncertainty_rel() const override { return fit_.uncertainty_rel; }
  void start() override;
  double joules() override;

  /// The same computation on given inputs (tests): a snapshot of /proc/stat text at time t_s.
  double joules_at(double t_s, const std::string& proc_stat_text);
  const BoardFit& fit() const { return fit_; }

 private:
  std::string proc_;
  double cfg_idle_, cfg_max_;
  BoardFit fit_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point t0_;
  bool have_last_ = false;
  double last_t_ = 0, joules_ = 0;
  CpuTimes last_;
};

}  // namespace tsm::client
