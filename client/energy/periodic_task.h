// A background thread that calls a function every `period` until stop(). It sleeps in slices of at
// most 20 ms and checks an atomic flag, holding no lock while it waits: with a condition variable's
// timed wait, the meters' sampling threads spun and starved their callers under qemu-aarch64.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace tsm::client {

class PeriodicTask {
 public:
  ~PeriodicTask() { stop(); }
  /// Starts the thread; `fn` must not throw (exceptions are swallowed: a missed reading is a gap).
  void start(std::chrono::milliseconds period, std::function<void()> fn) {
    stop();
    stop_ = false;
    thread_ = std::thread([this, period, fn = std::move(fn)] {
      const auto slice = std::min<std::chrono::milliseconds>(period, std::chrono::milliseconds(20));
      auto next = std::chrono::steady_clock::now() + period;
      while (!stop_.load()) {
        std::this_thread::sleep_for(slice);
        if (std::chrono::steady_clock::now() < next) continue;
        next += period;
        try {
          fn();
        } catch (...) {
        }
      }
    });
  }
  /// Joins the thread; safe to call more than once.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tsm::client
