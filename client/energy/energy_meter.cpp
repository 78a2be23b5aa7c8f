#include "energy/energy_meter.h"

#include "common/error.h"
#include "energy/hwmon_meter.h"
#include "energy/model_meter.h"
#include "energy/pmic_meter.h"
#include "energy/rapl_meter.h"

namespace tsm::client {

namespace {
std::unique_ptr<EnergyMeter> build(const std::string& source, const EnergyConfig& c) {
  if (source == "rapl") return std::make_unique<RaplMeter>(c.sysfs_root);
  if (source == "hwmon") return std::make_unique<HwmonMeter>(c.sysfs_root, c.sample_period);
  if (source == "pi5-pmic") return std::make_unique<PmicMeter>(c.vcgencmd, c.sample_period);
  if (source == "model") return std::make_unique<ModelMeter>(c.proc_root, c.model_idle_w, c.model_max_w);
  throw ParamError("energy.source", "'" + source + "' is not one of auto, rapl, hwmon, pi5-pmic, model, none");
}
}  // namespace

std::unique_ptr<EnergyMeter> make_energy_meter(const EnergyConfig& cfg, std::string* why) {
  if (cfg.source == "none") {
    if (why) *why = "energy: none (disabled in the configuration)";
    return nullptr;
  }
  if (cfg.source != "auto") {
    auto m = build(cfg.source, cfg);
    m->start();
    if (why) *why = "energy: " + m->name() + ": " + m->detail();
    return m;
  }
  std::string log;
  for (const char* s : {"hwmon", "rapl", "pi5-pmic", "model"}) {
    auto m = build(s, cfg);
    try {
      m->start();
      log += std::string("energy: auto picked ") + s + ": " + m->detail();
      if (why) *why = log;
      return m;
    } catch (const std::exception& e) {
      log += std::string("energy: auto skipped ") + s + ": " + e.what() + "\n";
    }
  }
  if (why) *why = log + "energy: auto found no usable source; energy figures are left out";
  return nullptr;
}

}  // namespace tsm::client
