#include "http/metrics_registry.h"

#include <cstdio>

namespace tsm::server {
namespace {

std::string escape_label(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o.push_back('\\');
    if (c == '\n') { o += "\\n"; continue; }
    o.push_back(c);
  }
  return o;
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

}  // namespace

void MetricsRegistry::observe_request(const std::string& route, int status, double seconds) {
  std::lock_guard lk(mu_);
  ++requests_[{route, status}];
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  ++buckets_[i];
  sum_seconds_ += seconds;
  ++count_;
}

void MetricsRegistry::add_source(std::function<void(std::string&)> render) {
  std::lock_guard lk(mu_);
  sources_.push_back(std::move(render));
}

std::string MetricsRegistry::render() const {
  std::string o;
  std::vector<std::function<void(std::string&)>> sources;
  {
    std::lock_guard lk(mu_);
    o += "# HELP tensorslm_http_requests_total HTTP requests by route pattern and status.\n";
    o += "# TYPE tensorslm_http_requests_total counter\n";
    for (const auto& [k, v] : requests_)
      o += "tensorslm_http_requests_total{route=\"" + escape_label(k.first) + "\",status=\"" +
           std::to_string(k.second) + "\"} " + std::to_string(v) + "\n";
    o += "# HELP tensorslm_http_request_duration_seconds Time from request header to response written.\n";
    o += "# TYPE tensorslm_http_request_duration_seconds histogram\n";
    uint64_t cum = 0;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      cum += buckets_[i];
      o += "tensorslm_http_request_duration_seconds_bucket{le=\"" + num(kBuckets[i]) + "\"} " + std::to_string(cum) + "\n";
    }
    cum += buckets_.back();
    o += "tensorslm_http_request_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
    o += "tensorslm_http_request_duration_seconds_sum " + num(sum_seconds_) + "\n";
    o += "tensorslm_http_request_duration_seconds_count " + std::to_string(count_) + "\n";
    sources = sources_;
  }
  for (const auto& s : sources) s(o);
  return o;
}

}  // namespace tsm::server
