// Energy meters behind one interface: a meter is a cumulative joule counter that starts at 0 on
// start(); a measurement window is the difference of two joules() readings. Every meter names its
// source and states its relative uncertainty, which goes into the DeviceReport next to the figures.
// Sources: rapl (powercap energy_uj), hwmon (INA219/INA226/INA260), pi5-pmic (vcgencmd), model (CPU use).
#pragma once
#include <chrono>
#include <memory>
#include <string>

namespace tsm::client {

class EnergyMeter {
 public:
  virtual ~EnergyMeter() = default;
  /// rapl | hwmon | pi5-pmic | model
  virtual std::string name() const = 0;
  /// What exactly is measured (files, chip, board coefficients), for logs and reports.
  virtual std::string detail() const = 0;
  /// Relative uncertainty of energies from this meter (0.05 = 5 %).
  virtual double uncertainty_rel() const = 0;
  /// Opens the source, takes the first reading, starts sampling if it samples. Throws tsm::Error
  /// with the reason when the source is not usable on this machine.
  virtual void start() = 0;
  /// Joules since start(); non-decreasing. Takes a fresh reading so window ends are exact.
  virtual double joules() = 0;
  /// Stops a sampling thread (also done by the destructor).
  virtual void stop() {}
};

struct EnergyConfig {
  std::string source = "auto";      ///< auto | rapl | hwmon | pi5-pmic | model | none
  std::string sysfs_root = "/sys";  ///< tests point these at sample trees
  std::string proc_root = "/proc";
  std::string vcgencmd = "vcgencmd pmic_read_adc";  ///< command whose output pi5-pmic parses
  double model_idle_w = 0;          ///< model meter on boards without a built-in fit: P(u=0)
  double model_max_w = 0;           ///< ... and P(u=1); both 0 = no fit for unknown boards
  std::chrono::milliseconds sample_period{200};  ///< sampling meters (hwmon power1_input, pi5-pmic)
};

/// Builds and start()s the configured meter. "auto" tries hwmon, rapl, pi5-pmic, model in that
/// order (most direct first) and keeps the first that starts; `why` (if given) receives one line per
/// source tried. Returns nullptr for "none" or when auto finds nothing; throws tsm::Error when a
/// named source does not work.
std::unique_ptr<EnergyMeter> make_energy_meter(const EnergyConfig& cfg, std::string* why = nullptr);

/// Power integrated over time by the trapezoidal rule; samples must come in time order.
class PowerIntegrator {
 public:
  void add(double t_s, double watts);
  double joules() const { return joules_; }
  size_t samples() const { return n_; }

 private:
  double joules_ = 0, last_t_ = 0, last_w_ = 0;
  size_t n_ = 0;
};

}  // namespace tsm::client
