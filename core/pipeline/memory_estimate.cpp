// Job memory estimates (see memory_estimate.h).
#include "pipeline/memory_estimate.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "methods/method_table.h"
#include "pipeline/planner.h"

namespace tsm {

namespace {

std::string mib(uint64_t b) {
  char buf[48];
  if (b >= (uint64_t(10) << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / double(uint64_t(1) << 30));
  else std::snprintf(buf, sizeof buf, "%" PRIu64 " MiB", (b + (uint64_t(1) << 20) - 1) >> 20);
  return buf;
}

uint64_t elements(const TensorMeta& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) n *= uint64_t(std::max<int64_t>(d, 0));
  return n;
}

uint64_t dense_f32_bytes(const std::vector<TensorMeta>& tensors) {
  uint64_t b = 0;
  for (const auto& t : tensors) b += 4 * elements(t);
  return b;
}

const TensorMeta* find_meta(const std::vector<TensorMeta>& tensors, const std::string& name) {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// Activations of one forward pass over a sequence of n tokens: the residual stream and the MLP's
// hidden units in a few buffers, the KV cache, and one (n, vocab) logits block.
uint64_t forward_bytes(const ModelConfig& c, int64_t n) {
  const uint64_t w = uint64_t(std::max({c.d_model, c.d_ff, c.q_dim() + 2 * c.kv_dim()}));
  return 4 * uint64_t(n) * (6 * w + uint64_t(c.vocab)) + 8 * uint64_t(c.n_layer) * uint64_t(n) * uint64_t(c.kv_dim());
}

// Input covariances of every planned linear layer (d_in^2 doubles each), as calibration collects them.
uint64_t covariance_bytes(const std::vector<TensorMeta>& tensors, const std::vector<std::string>& names, const ModelConfig& cfg) {
  uint64_t b = 0;
  for (const auto& n : names)
    if (const TensorMeta* t = find_meta(tensors, n); t && t->shape.size() == 2) {
      const uint64_t in = uint64_t(stored_in_out_weight(cfg, n) ? t->shape[0] : t->shape[1]);
      b += 8 * in * in;
    }
  return b;
}

}  // namespace

void MemoryEstimate::add(std::string what, uint64_t b) {
  if (b == 0) return;
  bytes += b;
  parts.emplace_back(std::move(what), b);
}

std::string MemoryEstimate::text() const {
  std::string s = mib(bytes) + " (";
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? " + " : "") + parts[i].first + " " + mib(parts[i].second);
  return s + ")";
}

uint64_t logits_bytes(const SequenceSpec& spec, int64_t vocab, int64_t context) {
  uint64_t tokens = 0;
  if (!spec.given.empty()) {
    for (const auto& s : spec.given) tokens += s.size();
  } else {
    const int64_t len = std::max<int64_t>(2, std::min<int64_t>(spec.length, context > 0 ? context : spec.length));
    const int64_t seqs = spec.sequences > 0 ? spec.sequences : (spec.min_tokens + len - 2) / (len - 1);
    tokens = uint64_t(seqs) * uint64_t(len);
  }
  return 4 * tokens * uint64_t(std::max<int64_t>(vocab, 0)) + 8 * tokens;  // logits + log-sum-exp
}

MemoryEstimate estimate_matrix_job(const Codec& codec, int64_t rows, int64_t cols, const json& resolved, bool baselines) {
  MemoryEstimate e;
  const uint64_t mn = uint64_t(rows) * uint64_t(cols), n = uint64_t(std::min(rows, cols));
  e.add("matrix f32", 4 * mn);
  e.add(std::string(codec.name()) + " encode", codec.working_set_bytes(rows, cols, resolved, false));
  e.add("decode and error metrics", 8 * mn);
  if (baselines) e.add("baselines", 12 * mn + 40 * n * n);
  return e;
}

MemoryEstimate estimate_model_job(const std::vector<TensorMeta>& tensors, const ModelPlan& plan, const ModelArtifactOptions& opt) {
  MemoryEstimate e;
  const uint64_t dense = dense_f32_bytes(tensors);
  e.add("dense weights f32", dense);
  // The largest planned tensor's encode (calibrated when the job calibrates), its metrics and baselines.
  uint64_t worst = 0;
  std::string worst_name;
  for (const auto& item : plan.tensors)
    if (const TensorMeta* t = find_meta(tensors, item.name); t && t->shape.size() == 2) {
      const Codec& c = find_codec(item.method);
      MemoryEstimate m = estimate_matrix_job(c, t->shape[0], t->shape[1], item.params, opt.baselines);
      const uint64_t cal = opt.calibrate ? c.working_set_bytes(t->shape[0], t->shape[1], item.params, true) : 0;
      const uint64_t b = m.bytes + (cal > m.parts[1].second ? cal - m.parts[1].second : 0);
      if (b > worst) worst = b, worst_name = item.name;
    }
  e.add("largest tensor's encode (" + worst_name + ")", worst);
  if (plan.cfg) {
    const ModelConfig& cfg = *plan.cfg;
    std::vector<std::string> names;
    for (const auto& item : plan.tensors) names.push_back(item.name);
    if (opt.calibrate) e.add("calibration covariances", covariance_bytes(tensors, names, cfg) + forward_bytes(cfg, opt.calib_set.length));
    if (opt.eval) {
      e.add("compressed model f32", dense);
      e.add("reference logits", logits_bytes(opt.eval_set, cfg.vocab, cfg.max_positions) + forward_bytes(cfg, opt.eval_set.length));
    }
  }
  return e;
}

MemoryEstimate estimate_plan_job(const std::vector<TensorMeta>& tensors, const ModelConfig& cfg, const PlannerOptions& opt) {
  MemoryEstimate e;
  const uint64_t dense = dense_f32_bytes(tensors);
  e.add("dense weights f32", dense);
  e.add("candidate model f32", dense);
  uint64_t worst = 0, largest = 0;
  std::vector<std::string> names;
  for (const auto& t : tensors) {
    if (t.shape.size() != 2) continue;
    names.push_back(t.name);
    uint64_t cand = 0, held = 0;  // the largest working set of one candidate; every candidate's encoding kept
    for (const auto& c : opt.candidates) {
      const Codec* codec = try_find_codec(c.method);
      if (!codec) continue;
      json r;
      try {
        r = codec->resolve(with_calibration(*codec, c.params, opt.calibrate), t.shape[0], t.shape[1]);
      } catch (const Error&) {
        continue;  // a candidate that does not fit this tensor is skipped by the planner too
      }
      cand = std::max(cand, codec->working_set_bytes(t.shape[0], t.shape[1], r, opt.calibrate));
      held += 4 * elements(t);  // an encoding and its decoded weights are at most f32-sized
    }
    if (cand + held > worst) worst = cand + held;
    largest = std::max(largest, 4 * elements(t));
  }
  e.add("largest tensor's candidates", worst + 12 * largest);
  if (opt.calibrate) e.add("calibration covariances", covariance_bytes(tensors, names, cfg) + forward_bytes(cfg, opt.calib_set.length));
  SequenceSpec sens = opt.calib_set;
  sens.given.clear();
  sens.sequences = std::max(1, opt.sensitivity_sequences);
  e.add("reference logits (sensitivity, repair, verification)",
        logits_bytes(sens, cfg.vocab, cfg.max_positions) + logits_bytes(opt.repair_set, cfg.vocab, cfg.max_positions) +
            logits_bytes(opt.verify_set, cfg.vocab, cfg.max_positions) + forward_bytes(cfg, opt.verify_set.length));
  return e;
}

}  // namespace tsm
