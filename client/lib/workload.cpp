#include "lib/workload.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "model/generate.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_weights.h"
#include "model/tokenizer.h"

namespace tsm::client {

namespace {
uint64_t status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return std::stoull(line.substr(n)) ;
  return 0;
}
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
bool stopped(const std::atomic<bool>* stop) { return stop && stop->load(); }
}  // namespace

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

uint64_t current_rss_bytes() { return status_kb("VmRSS:") * 1024; }
uint64_t peak_rss_bytes() { return status_kb("VmHWM:") * 1024; }
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f.flush());
}

double measure_idle_watts(EnergyMeter* meter, double seconds, const std::atomic<bool>* stop) {
  if (!meter || seconds <= 0) return 0;
  const double j0 = meter->joules();
  const auto t0 = std::chrono::steady_clock::now();
  while (seconds_since(t0) < seconds && !stopped(stop)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double dt = seconds_since(t0);
  return dt > 0 ? (meter->joules() - j0) / dt : 0;
}

tensorslm::v1::RunSummary run_workload(const WorkloadInput& in, const WorkloadConfig& w, EnergyMeter* meter,
                                       double idle_watts, const std::atomic<bool>* stop) {
  tensorslm::v1::RunSummary s;
  s.set_variant(in.variant);
  if (w.threads > 0) set_compute_threads(w.threads);
  reset_peak_rss();

  // Cold start: open the weights, build the transformer and the tokenizer.
  const double cold_j0 = meter ? meter->joules() : 0;
  const auto cold_t0 = std::chrono::steady_clock::now();
  ModelWeights weights = in.base_model_dir.empty() ? ModelWeights::open(in.model_path, "", in.content_check)
                                                  : ModelWeights::open(in.base_model_dir, in.model_path, in.content_check);
  LoadOptions lo;
  lo.embedding = parse_embedding_mode(in.embedding);
  lo.head = parse_head_mode(in.head);
  std::unique_ptr<Transformer> net = load_transformer(weights, lo);
  std::vector<std::vector<int32_t>> prompts = w.token_ids;
  std::vector<std::string> texts = w.prompts;
  if (!w.prompt_file.empty()) {
    std::ifstream f(w.prompt_file);
    if (!f) throw Error("cannot read workload.prompt_file '" + w.prompt_file + "'");
    std::string line;
    while (std::getline(f, line))
      if (!line.empty()) texts.push_back(line);
  }
  if (!texts.empty()) {
    auto tj = weights.tokenizer_json();
    if (!tj) throw Error("model '" + in.model_path + "' has no tokenizer.json; give workload.token_ids instead of prompts");
    auto tok = load_tokenizer(*tj);
    for (const auto& t : texts) {
      auto ids = tok->encode_with_special_tokens(t);
      if (ids.empty()) throw Error("prompt '" + t + "' encodes to no tokens");
      prompts.push_back(std::move(ids));
    }
  }
  if (prompts.empty()) throw Error("the workload has no prompts (workload.prompts, prompt_file or token_ids)");
  s.set_cold_start_s(seconds_since(cold_t0));
  if (meter) s.set_cold_start_joules(meter->joules() - cold_j0);
  s.set_cold_start_rss_bytes(current_rss_bytes());

  GenerateOptions go;
  go.max_new_tokens = w.max_new_tokens;
  go.stop_at_eos = false;  // every query does the same amount of work
  for (int r = 0; r < w.warmup && !stopped(stop); ++r)
    for (const auto& p : prompts) {
      if (stopped(stop)) break;
      generate(*net, p, go);
    }

  std::vector<double> total_ms, ttft_ms;
  uint64_t tokens = 0;
  double busy_s = 0;
  // The energy window is bracketed by the two meter reads, so joules / window is the mean power.
  const auto t0 = std::chrono::steady_clock::now();
  const double j0 = meter ? meter->joules() : 0;
  for (int r = 0; r < w.repetitions && !stopped(stop); ++r)
    for (const auto& p : prompts) {
      if (stopped(stop)) break;
      const auto q0 = std::chrono::steady_clock::now();
      GenerateResult g = generate(*net, p, go);
      const double total = seconds_since(q0);
      auto* q = s.add_queries();
      q->set_ttft_ms(g.prompt_seconds * 1e3);
      q->set_total_ms(total * 1e3);
      q->set_tokens(static_cast<uint32_t>(g.generated.size()));
      total_ms.push_back(total * 1e3);
      ttft_ms.push_back(g.prompt_seconds * 1e3);
      tokens += g.generated.size();
      busy_s += total;
    }
  const double j1 = meter && !total_ms.empty() ? meter->joules() : 0;
  const double window = seconds_since(t0);
  s.set_p50_ms(percentile(total_ms, 50));
  s.set_p90_ms(percentile(total_ms, 90));
  s.set_p99_ms(percentile(total_ms, 99));
  s.set_ttft_p50_ms(percentile(ttft_ms, 50));
  s.set_tokens_per_s(busy_s > 0 ? static_cast<double>(tokens) / busy_s : 0);
  if (meter && !total_ms.empty()) {
    const double joules = j1 - j0;
    auto* e = s.mutable_energy();
    e->set_source(meter->name());
    e->set_uncertainty_rel(meter->uncertainty_rel());
    e->set_window_s(window);
    e->set_mean_watts(window > 0 ? joules / window : 0);
    e->set_joules_per_query(joules / static_cast<double>(total_ms.size()));
    e->set_idle_watts(idle_watts);
  }
  s.set_peak_rss_bytes(peak_rss_bytes());
  return s;
}

}  // namespace tsm::client
