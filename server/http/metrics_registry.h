// Prometheus text exposition (format 0.0.4) of the server's counters: requests by route pattern
// and status, a request latency histogram, plus gauges supplied by callbacks (queue depth, jobs by
// state, bytes stored). Invariant: labels are route patterns, never raw paths (bounded cardinality).
#pragma once
#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tsm::server {

class MetricsRegistry {
 public:
  static constexpr std::array<double, 13> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,    10};
  void observe_request(const std::string& route, int status, double seconds);
  /// `render` appends complete metric families (# HELP, # TYPE, samples) to the output.
  void add_source(std::function<void(std::string&)> render);
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;   // (route, status) -> count
  std::array<uint64_t, kBuckets.size() + 1> buckets_{};        // non-cumulative; last = +Inf
  double sum_seconds_ = 0;
  uint64_t count_ = 0;
  std::vector<std::function<void(std::string&)>> sources_;
};

}  // namespace tsm::server
