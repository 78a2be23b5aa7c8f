// Base of meters that read instantaneous power (watts) and integrate it on a background thread.
// Invariant: samples are integrated in time order under one mutex; joules() adds a fresh sample.
#pragma once
#include <atomic>
#include <mutex>
#include <thread>

#include "energy/energy_meter.h"
#include "energy/periodic_task.h"

namespace tsm::client {

class SamplingMeter : public EnergyMeter {
 public:
  explicit SamplingMeter(std::chrono::milliseconds period) : period_(period) {}
  ~SamplingMeter() override;
  void start() override;
  double joules() override;
  void stop() override;

 protected:
  /// One instantaneous power reading in watts; throws tsm::Error when the source fails.
  virtual double read_watts() = 0;

 private:
  void sample();
  std::chrono::milliseconds period_;
  std::chrono::steady_clock::time_point t0_;
  std::mutex mu_;
  PowerIntegrator integ_;
  PeriodicTask sampler_;
};

}  // namespace tsm::client
