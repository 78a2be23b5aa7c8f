// Sampling (see sampler.h).
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace tsm {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingOptions& opt) : opt_(opt), rng_(opt.seed) {
  if (!(opt.temperature >= 0) || !std::isfinite(opt.temperature)) throw ParamError("temperature", "must be >= 0");
  if (opt.top_k < 0) throw ParamError("top_k", "must be >= 0");
  if (!(opt.top_p > 0 && opt.top_p <= 1)) throw ParamError("top_p", "must be in (0, 1]");
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (opt_.temperature == 0.0f) return argmax(logits);
  const int64_t V = int64_t(logits.size());
  if ((opt_.top_k <= 0 || opt_.top_k >= V) && opt_.top_p >= 1.0f) {
    // Plain temperature sampling: inverse CDF in id order, O(V), no sort.
    const float mx = *std::max_element(logits.begin(), logits.end());
    probs_.resize(size_t(V));
    double total = 0;
    for (int64_t i = 0; i < V; ++i) total += (probs_[size_t(i)] = std::exp((logits[size_t(i)] - mx) / opt_.temperature));
    double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
    int32_t last = 0;
    for (int64_t i = 0; i < V; ++i) {
      if (probs_[size_t(i)] <= 0) continue;
      last = int32_t(i);
      u -= probs_[size_t(i)];
      if (u < 0) return last;
    }
    return last;
  }
  order_.resize(size_t(V));
  std::iota(order_.begin(), order_.end(), 0);
  // Candidates sorted by logit, descending (only the first k when top_k is set).
  const int64_t k = opt_.top_k > 0 ? std::min<int64_t>(opt_.top_k, V) : V;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), by_logit);
  probs_.resize(size_t(k));
  const float mx = logits[order_[0]];
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += (probs_[i] = std::exp((logits[order_[i]] - mx) / opt_.temperature));
  // Nucleus: the smallest prefix whose probability reaches top_p.
  int64_t keep = k;
  if (opt_.top_p < 1.0f) {
    double acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      acc += probs_[i] / sum;
      if (acc >= opt_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs_[i];
  double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    u -= probs_[i];
    if (u < 0) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace tsm
