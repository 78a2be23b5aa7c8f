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
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!cv_.wait_for(lk, period_, [this] { return stopping_; })) {
      lk.unlock();
      try {
        sample();
      } catch (...) {  // a failed reading leaves a gap that the trapezoid bridges
      }
      lk.lock();
    }
  });
}

double SamplingMeter::joules() {
  try {
    sample();
  } catch (...) {
  }
  std::lock_guard lk(mu_);
  return integ_.joules();
}

void SamplingMeter::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tsm::client
