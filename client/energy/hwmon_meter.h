// hwmon: an INA219/INA226/INA260 power monitor through Linux hwmon (<sysfs>/class/hwmon/hwmonN).
// Uses energy1_input (microjoules, cumulative) when the driver has it, else samples power1_input
// (microwatts) on a thread and integrates. Invariant: the first matching chip (by hwmonN order) is used.
#pragma once
#include <string>

#include "energy/sampling_meter.h"

namespace tsm::client {

class HwmonMeter : public SamplingMeter {
 public:
  explicit HwmonMeter(std::string sysfs_root, std::chrono::milliseconds period = std::chrono::milliseconds(200))
      : SamplingMeter(period), root_(std::move(sysfs_root)) {}
  std::string name() const override { return "hwmon"; }
  std::string detail() const override;
  /// Chip gain error + shunt tolerance (~1-2 %), plus aliasing when power is sampled.
  double uncertainty_rel() const override;
  void start() override;
  double joules() override;

 protected:
  double read_watts() override;

 private:
  std::string root_, dir_, chip_;
  bool energy_counter_ = false;
  uint64_t energy0_uj_ = 0;
};

}  // namespace tsm::client
