// pi5-pmic: Raspberry Pi 5 board power from the PMIC's ADCs (`vcgencmd pmic_read_adc`), the sum of
// rail voltage x current over every rail that has both readings, sampled on a thread. The rails sit
// behind the PMIC, so conversion losses and USB loads are not seen (stated in the uncertainty).
#pragma once
#include <atomic>
#include <string>

#include "energy/sampling_meter.h"

namespace tsm::client {

struct PmicReading {
  double watts = 0;  ///< sum over paired rails of V x I
  int rails = 0;     ///< rails with both a volt and a current line
};

/// Parses `vcgencmd pmic_read_adc` output (lines like "  VDD_CORE_A current(7)=2.5A" and
/// "  VDD_CORE_V volt(15)=0.8V"). Throws tsm::FormatError when no rail pairs up.
PmicReading parse_pmic_adc(const std::string& text);

class PmicMeter : public SamplingMeter {
 public:
  explicit PmicMeter(std::string command, std::chrono::milliseconds period = std::chrono::milliseconds(250))
      : SamplingMeter(period), command_(std::move(command)) {}
  std::string name() const override { return "pi5-pmic"; }
  std::string detail() const override;
  /// ADC accuracy (~2 %), sampling, and the PMIC's conversion losses that the rails do not include.
  double uncertainty_rel() const override { return 0.15; }

 protected:
  double read_watts() override;

 private:
  std::string command_;
  std::atomic<int> rails_{0};  ///< written by each reading (the sampler thread and joules() callers)
};

}  // namespace tsm::client
