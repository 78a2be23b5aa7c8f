// rapl: Intel/AMD RAPL package energy through powercap (<sysfs>/class/powercap/intel-rapl:N/energy_uj),
// summed over packages. Invariant: each counter wraps at max_energy_range_uj; a background poll
// (1 s) sees every wrap, so deltas stay correct however long a window is.
#pragma once
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "energy/energy_meter.h"
#include "energy/periodic_task.h"

namespace tsm::client {

/// Energy advanced by a wrapping counter going from `prev` to `cur` (both in [0, range]).
uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t range);

class RaplMeter : public EnergyMeter {
 public:
  explicit RaplMeter(std::string sysfs_root, std::chrono::milliseconds poll = std::chrono::seconds(1))
      : root_(std::move(sysfs_root)), poll_(poll) {}
  ~RaplMeter() override;
  std::string name() const override { return "rapl"; }
  std::string detail() const override;
  /// Package domains only (no DRAM, no board, PSU or fans); RAPL itself is a model on older CPUs.
  double uncertainty_rel() const override { return 0.05; }
  void start() override;
  double joules() override;
  void stop() override;

 private:
  struct Domain {
    std::string file;        ///< .../energy_uj
    uint64_t range_uj = 0;   ///< max_energy_range_uj
    uint64_t last_uj = 0;
  };
  void update();
  std::string root_;
  std::chrono::milliseconds poll_;
  std::vector<Domain> domains_;  ///< one per package
  uint64_t total_uj_ = 0;
  std::mutex mu_;
  PeriodicTask poller_;
};

}  // namespace tsm::client
