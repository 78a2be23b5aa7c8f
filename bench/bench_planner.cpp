// The planner on a GPT-2-small-shaped model with random weights (vocab 50257, d 768, context 1024,
// 12 layers: 124M parameters; TSM_BENCH_PLANNER_LAYERS=N for fewer layers), written once as an HF
// model directory under the temp dir, planned at ratio 4 on 2 threads: seconds per phase
// (calibrate, candidates, repair, build) as counters, and which sensitivity mode ran.
// Candidates: TSM_BENCH_PLANNER_METHODS (default the planner's defaults). Random weights say
// nothing about quality (see bench_quality for the trained fixtures); this measures time.
// Run: build/release/bin/bench_planner --benchmark_format=json
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "formats/safetensors.h"
#include "pipeline/planner.h"

using namespace tsm;
namespace fs = std::filesystem;

namespace {

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : def;
}

std::string make_model(int layers) {
  const int64_t V = 50257, d = 768, ctx = 1024, ff = 4 * d;
  const fs::path dir = fs::temp_directory_path() / ("tsm_bench_planner_gpt2_" + std::to_string(layers));
  if (fs::exists(dir / "model.safetensors")) return dir.string();
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << nlohmann::json{{"model_type", "gpt2"}, {"vocab_size", V}, {"n_embd", d}, {"n_layer", layers},
                                                       {"n_head", 12}, {"n_positions", ctx}, {"activation_function", "gelu_new"},
                                                       {"bos_token_id", 0}, {"eos_token_id", 0}, {"tie_word_embeddings", true}}
                                            .dump(2);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{{"transformer.wte.weight", {V, d}}, {"transformer.wpe.weight", {ctx, d}},
                                                                   {"transformer.ln_f.weight", {d}},   {"transformer.ln_f.bias", {d}}};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    for (const char* n : {"ln_1", "ln_2"}) shapes.push_back({p + n + ".weight", {d}}), shapes.push_back({p + n + ".bias", {d}});
    shapes.push_back({p + "attn.c_attn.weight", {d, 3 * d}});
    shapes.push_back({p + "attn.c_attn.bias", {3 * d}});
    shapes.push_back({p + "attn.c_proj.weight", {d, d}});
    shapes.push_back({p + "attn.c_proj.bias", {d}});
    shapes.push_back({p + "mlp.c_fc.weight", {d, ff}});
    shapes.push_back({p + "mlp.c_fc.bias", {ff}});
    shapes.push_back({p + "mlp.c_proj.weight", {ff, d}});
    shapes.push_back({p + "mlp.c_proj.bias", {d}});
  }
  std::mt19937 g(7);
  std::normal_distribution<float> n(0.f, 0.02f);
  std::vector<std::vector<float>> data;
  std::vector<Tensor> tensors;
  for (const auto& [name, shape] : shapes) {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    data.emplace_back(size_t(numel));
    const bool norm_w = name.find("ln_") != std::string::npos && name.ends_with(".weight");
    for (auto& x : data.back()) x = norm_w ? 1.f : n(g);
    Tensor t;
    t.name = name;
    t.shape = shape;
    t.bytes = std::as_bytes(std::span<const float>(data.back()));
    tensors.push_back(t);
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir.string();
}

void BM_PlanRatio4(benchmark::State& state) {
  const int layers = env_int("TSM_BENCH_PLANNER_LAYERS", 12);
  const HfModelDir model = HfModelDir::open(make_model(layers));
  PlannerOptions opt;
  opt.target = {PlanTarget::Kind::kRatio, 4.0};
  if (const char* m = std::getenv("TSM_BENCH_PLANNER_METHODS")) opt.candidates = parse_plan_candidates(m);
  CodecContext ctx;
  ctx.threads = 2;
  for (auto _ : state) {
    std::map<std::string, double> phase_s;
    std::string current;
    auto t0 = std::chrono::steady_clock::now();
    const auto start = t0;
    PlanProgress progress = [&](std::string_view phase, double) {
      if (phase == current) return;
      const auto now = std::chrono::steady_clock::now();
      if (!current.empty()) phase_s[current] += std::chrono::duration<double>(now - t0).count();
      current = std::string(phase);
      t0 = now;
    };
    const PlanOutcome o = plan_model(model, opt, ctx, "", progress);
    const auto end = std::chrono::steady_clock::now();
    phase_s[current] += std::chrono::duration<double>(end - t0).count();
    for (const auto& [p, s] : phase_s) state.counters[p + "_s"] = s;
    state.counters["total_s"] = std::chrono::duration<double>(end - start).count();
    state.counters["ratio"] = o.artifact.total().ratio_f32();
    state.counters["layers"] = layers;
    state.counters["proxy"] = o.report.sensitivity_mode == "proxy";
    state.counters["kl_verified"] = o.report.kl_verified;
  }
}
BENCHMARK(BM_PlanRatio4)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
