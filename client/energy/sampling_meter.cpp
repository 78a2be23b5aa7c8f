#include "energy/sampling_meter.h"

namespace tsm::client {

void PowerIntegrator::add(double t_s, double watts) {
  if (n_ > 0 && t_s > last_t_) joules_ += 0.5 * (watts + last_w_) * (t_s - last_t_);
  if (n_ == 0 || t_s >= last_t_) {
    last_t_ = t_s;
    last_w_ = watts;
  }
  ++n_;
}

SamplingMeter::~SamplingMeter() { stop(); }

void SamplingMeter::sample() {
  double w = read_watts();
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  std::lock_guard lk(mu_);
  integ_.add(t, w);
}

void SamplingMeter::start() {
  stop();
  t0_ = std::chrono::steady_clock::now();
  integ_ = PowerIntegrator{};
  sample();  // throws when the source does not work: start() reports it
  sampler_.start(period_, [this] { sample(); });
}

double SamplingMeter::joules() {
  try {
    sample();
  } catch (...) {
  }
  std::lock_guard lk(mu_);
  return integ_.joules();
}

void SamplingMeter::stop() { sampler_.stop(); }

}  // namespace tsm::client
