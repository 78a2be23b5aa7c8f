// Saten benchmarks (Google Benchmark; run with --benchmark_format=json):
//  - BM_Compress: compress a 768x3072 (GPT-2 MLP) and a 2048x8192 matrix; counters: seconds, ratio_f32,
//    rel_error, and the baselines at (nearest) equal bytes: svd, tt, prune, int8 (rel_error_<name>,
//    bytes_<name>).
//  - BM_ApplyDense / BM_ApplySaten: y = x W^T at batch 1 and 16; the saten one reports ratio_f32 and
//    speedup_vs_dense (dense time measured in the same process), so the break-even ratio can be read off.
// The matrices are synthetic weight-like: a rank-64 part + Gaussian noise + 0.5% outliers (fixed seed).
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <random>

#include "pipeline/baselines.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "methods/saten/saten_codec.h"
#include "model/linear.h"
#include "methods/saten/saten_linear.h"

using namespace tsm;

namespace {

const MatrixRM& weight(int64_t out, int64_t in) {
  static std::map<std::pair<int64_t, int64_t>, MatrixRM> cache;
  auto key = std::make_pair(out, in);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::mt19937 g(42);
  std::normal_distribution<float> n(0.f, 1.f);
  MatrixRM A(out, 64), B(64, in), W(out, in);
  for (int64_t i = 0; i < A.size(); ++i) A.data()[i] = n(g);
  for (int64_t i = 0; i < B.size(); ++i) B.data()[i] = n(g) / 8.f;
  W.noalias() = A * B;
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < W.size(); ++i) W.data()[i] += 0.5f * n(g) + (u(g) < 0.005f ? 6.f * n(g) : 0.f);
  return cache.emplace(key, std::move(W)).first->second;
}

struct Shape { int64_t out, in; };
const Shape kShapes[] = {{3072, 768}, {8192, 2048}};  // (out, in): GPT-2 c_fc (768 -> 3072) and a 2048 -> 8192 MLP

json saten_params(int cfg) {
  switch (cfg) {
    case 0: return json{{"ranks", 64}, {"sparsity", "unstructured"}, {"density", 0.02}};
    case 1: return json{{"ranks", 64}, {"sparsity", "2:4"}};
    default: return json{{"eps", 0.5}, {"sparsity", "unstructured"}, {"density", 0.01}};
  }
}
const char* kCfgName[] = {"r64_unstructured_0.02", "r64_2:4", "eps0.5_unstructured_0.01"};

void BM_Compress(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  const int cfg = int(state.range(1));
  const MatrixRM& W = weight(s.out, s.in);
  json p = saten_params(cfg);
  if (s.out * s.in > (int64_t(1) << 22)) p["refine_rounds"] = 1;  // keeps 2048x8192 within minutes on 2 cores
  v1::CompressedTensor t;
  double secs = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    t = compress_matrix(W, "w", DType::F32, "saten", p, {}, CompressOptions{false});
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  state.SetLabel(std::to_string(s.out) + "x" + std::to_string(s.in) + " " + kCfgName[cfg]);
  state.counters["seconds"] = secs;
  state.counters["ratio_f32"] = t.metrics().ratio_f32();
  state.counters["rel_error"] = t.metrics().rel_error();
  state.counters["bytes"] = double(t.metrics().stored_bytes());
  // Baselines at equal bytes: generic (svd, int8, ...) and saten's own (tt, prune-2:4, prune).
  std::vector<v1::Baseline> bl = compute_baselines(W, t.metrics().stored_bytes(), 4);
  for (auto& b : saten_baselines(W, resolve_saten_params(p, W.rows(), W.cols()), t.metrics().stored_bytes(), 4)) bl.push_back(b);
  for (const auto& b : bl) {
    state.counters["rel_error_" + b.method()] = b.metrics().rel_error();
    state.counters["bytes_" + b.method()] = double(b.metrics().stored_bytes());
  }
}

double time_dense(const MatrixRM& W, int64_t batch) {
  DenseLinear d{MatrixRM(W)};
  MatrixRM X = MatrixRM::Random(batch, W.cols()), Y(batch, W.rows());
  d.forward(X.data(), batch, Y.data());
  const int reps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) d.forward(X.data(), batch, Y.data());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

void BM_ApplyDense(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  const int64_t batch = state.range(1);
  DenseLinear d{MatrixRM(weight(s.out, s.in))};
  MatrixRM X = MatrixRM::Random(batch, s.in), Y(batch, s.out);
  for (auto _ : state) {
    d.forward(X.data(), batch, Y.data());
    benchmark::DoNotOptimize(Y.data());
  }
  state.SetLabel(std::to_string(s.out) + "x" + std::to_string(s.in) + " dense batch " + std::to_string(batch));
  state.SetItemsProcessed(state.iterations() * batch);
}

// Saten apply at a range of ranks (unstructured density 0.01, and none) to locate the break-even ratio.
void BM_ApplySaten(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  const int64_t batch = state.range(1), rank = state.range(2);
  const int sp = int(state.range(3));  // 0: none, 1: unstructured 1%, 2: 2:4
  const MatrixRM& W = weight(s.out, s.in);
  static std::map<std::tuple<int64_t, int64_t, int>, v1::CompressedTensor> cache;  // compress once per config
  auto key = std::make_tuple(s.out, rank, sp);
  if (!cache.count(key)) {
    json p{{"ranks", rank}, {"refine_rounds", 0}};
    p["sparsity"] = sp == 0 ? "none" : sp == 1 ? "unstructured" : "2:4";
    if (sp == 1) p["density"] = 0.01;
    cache[key] = compress_matrix(W, "w", DType::F32, "saten", p, {}, CompressOptions{false});
  }
  const auto& t = cache[key];
  auto op = make_compressed_linear(t);
  MatrixRM X = MatrixRM::Random(batch, s.in), Y(batch, s.out);
  for (auto _ : state) {
    op->forward(X.data(), batch, Y.data());
    benchmark::DoNotOptimize(Y.data());
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int reps = 20;
  for (int r = 0; r < reps; ++r) op->forward(X.data(), batch, Y.data());
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  state.SetLabel(std::to_string(s.out) + "x" + std::to_string(s.in) + " saten rank " + std::to_string(rank) + " " +
                 (sp == 0 ? "none" : sp == 1 ? "unstructured0.01" : "2:4") + " batch " + std::to_string(batch));
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["ratio_f32"] = t.metrics().ratio_f32();
  state.counters["rel_error"] = t.metrics().rel_error();
  state.counters["speedup_vs_dense"] = time_dense(W, batch) / per;
  state.counters["flops_ratio"] =
      static_cast<const SatenLinear*>(op.get())->op().flops_per_row() / double(s.out * s.in);
}

}  // namespace

BENCHMARK(BM_Compress)->Args({0, 0})->Args({0, 1})->Args({0, 2})->Args({1, 1})->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_ApplyDense)->ArgsProduct({{0, 1}, {1, 16}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ApplySaten)
    ->ArgsProduct({{0, 1}, {1, 16}, {8, 32, 128}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
