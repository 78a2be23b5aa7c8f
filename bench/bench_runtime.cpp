// The model runtime on a GPT-2-small-shaped model (vocab 50257, d 768, 12 layers, 12 heads,
// context 1024: 124M parameters) with random weights made in memory, on 2 threads (--threads N
// changes it). Variants: dense embedding + tied dense head; tt-token embedding (8x8x12, ranks 4,4,
// random cores) with the head materialized once at load; the same with the head streamed from the
// cores. Reports prompt tokens/s, generated tokens/s (ms per token), the embedding + head bytes and
// the process's peak RSS (getrusage; run one variant per process, e.g. --benchmark_filter=stream,
// for a peak RSS that belongs to that variant alone).
// Weight-type variants (fp16, int8, q8_0, q4_0, q4_1, q5_1, q4_k): every linear layer and the tied head
// compressed by that method and run by its operator on the stored form (the method table's make_linear;
// the embedding lookup stays a dense f32 table, as llama.cpp keeps token_embd apart from output).
// Extra counters: weight_bytes (resident bytes of the layers + head, what one generated token reads),
// bytes_per_token_est (that plus the KV cache read per step) and achieved_gb_per_s (that over the
// wall time per token), to compare with BM_MemoryBandwidth (a 2-thread read of 1 GiB: the machine's limit).
//   bench_runtime --benchmark_format=json [--threads 2]
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>

#include "formats/array_pack.h"
#include "methods/method_table.h"
#include "methods/tt_token/tt_embedding.h"
#include "model/generate.h"
#include "model/transformer.h"

using namespace tsm;

namespace {

int g_threads = 2;

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;
}

// Uniform(-a, a) fill from a fast generator: 124M values in well under a second.
void fill_random(float* x, size_t n, float a, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = a * (float((s >> 40) & 0xFFFFFF) / float(0x800000) - 1.0f);
  }
}

MatrixRM random_matrix(int64_t r, int64_t c, float a, uint64_t seed) {
  MatrixRM m(r, c);
  fill_random(m.data(), size_t(m.size()), a, seed);
  return m;
}

/// The method of a weight-type variant ("" for f32 and the tt variants).
std::string g_method;

/// W (out, in) as the operator of method `m` (its codec's encode, then the method table's make_linear).
std::unique_ptr<LinearOp> compressed_op(const std::string& m, const MatrixRM& W) {
  const Codec& c = find_codec(m);
  CodecContext ctx;
  ctx.threads = g_threads;
  auto op = make_compressed_linear(c.encode(W, c.resolve(json::object(), W.rows(), W.cols()), ctx));
  if (!op) throw Error(m + " has no LinearOp in the method table");
  return op;
}

std::unique_ptr<LinearOp> random_linear(int64_t in, int64_t out, uint64_t seed) {
  std::vector<float> b(out);
  fill_random(b.data(), b.size(), 0.02f, seed + 7);
  if (!g_method.empty()) return with_bias(compressed_op(g_method, random_matrix(out, in, 0.05f, seed)), std::move(b));
  return std::make_unique<DenseLinear>(random_matrix(out, in, 0.05f, seed), std::move(b));
}

ModelConfig gpt2_small() {
  ModelConfig c;
  c.arch = Arch::kGpt2;
  c.model_type = "gpt2";
  c.vocab = 50257;
  c.d_model = c.embed_dim = 768;
  c.n_layer = 12;
  c.n_head = c.n_kv_head = 12;
  c.head_dim = 64;
  c.d_ff = 3072;
  c.max_positions = 1024;
  c.learned_positions = true;
  return c;
}

// The transformer body (positions, layers, final norm) with random weights; embed/head set per variant.
std::unique_ptr<Transformer> random_body() {
  auto net = std::make_unique<Transformer>();
  net->cfg = gpt2_small();
  const auto& c = net->cfg;
  net->pos_embed = random_matrix(c.max_positions, c.d_model, 0.02f, 1);
  net->layers.resize(size_t(c.n_layer));
  auto norm = [&](uint64_t seed) {
    NormWeights n;
    n.w.assign(size_t(c.d_model), 1.0f);
    n.b.resize(size_t(c.d_model));
    fill_random(n.b.data(), n.b.size(), 0.02f, seed);
    return n;
  };
  for (int64_t l = 0; l < c.n_layer; ++l) {
    auto& L = net->layers[l];
    const uint64_t s = 100 + 10 * uint64_t(l);
    L.attn_norm = norm(s);
    L.mlp_norm = norm(s + 1);
    L.qkv = random_linear(c.d_model, 3 * c.d_model, s + 2);
    L.o = random_linear(c.d_model, c.d_model, s + 3);
    L.up = random_linear(c.d_model, c.d_ff, s + 4);
    L.down = random_linear(c.d_ff, c.d_model, s + 5);
  }
  net->final_norm = norm(99);
  return net;
}

// A tt-token tensor with random f32 cores: modes 8x8x12, ranks 1,4,4,1 (the stored layout of
// codec/tt_token_codec.h), so no dense (vocab, d) matrix is ever allocated for the tt variants.
v1::CompressedTensor random_tt_embedding(int64_t V) {
  const std::vector<int64_t> modes{8, 8, 12}, ranks{1, 4, 4, 1};
  v1::CompressedTensor t;
  t.set_name("transformer.wte.weight");
  t.set_method("tt-token");
  t.add_shape(uint64_t(V));
  t.add_shape(768);
  t.set_params_json(R"({"shape":[8,8,12],"ranks":[4,4],"core_dtype":"f32"})");
  *t.add_arrays() = make_array<int64_t>("modes", std::vector<int64_t>{3}, std::span<const int64_t>(modes));
  *t.add_arrays() = make_array<int64_t>("ranks", std::vector<int64_t>{4}, std::span<const int64_t>(ranks));
  for (int k = 0; k < 3; ++k) {
    std::vector<int64_t> shape{V, ranks[k], modes[k], ranks[k + 1]};
    std::vector<float> core(size_t(V * ranks[k] * modes[k] * ranks[k + 1]));
    fill_random(core.data(), core.size(), 0.5f, 1000 + k);
    *t.add_arrays() = make_array<float>("core_" + std::to_string(k), shape, std::span<const float>(core));
  }
  return t;
}

enum Variant { kDense = 0, kTtMaterialize = 1, kTtStream = 2, kF16, kInt8, kQ8_0, kQ4_0, kQ4_1, kQ5_1, kQ4_K, kVariants };
const char* kVariantName[] = {"dense", "tt_materialize", "tt_stream", "fp16", "int8", "q8_0", "q4_0", "q4_1", "q5_1", "q4_k"};

// One model per variant, built on first use (so a filtered run holds only what it measures).
Transformer& model(Variant v) {
  static std::unique_ptr<Transformer> nets[kVariants];
  if (nets[v]) return *nets[v];
  set_compute_threads(g_threads);
  g_method = v >= kF16 ? kVariantName[v] : "";
  auto net = random_body();
  const int64_t V = net->cfg.vocab;
  if (v >= kF16) {  // dense lookup table; the tied head as the method's operator over the same rows
    auto table = std::make_shared<const MatrixRM>(random_matrix(V, 768, 0.1f, 5));
    net->embed = std::make_unique<DenseEmbedding>(table);
    net->head = std::make_unique<LinearHead>(compressed_op(g_method, *table));
  } else if (v == kDense) {
    auto table = std::make_shared<const MatrixRM>(random_matrix(V, 768, 0.1f, 5));
    net->embed = std::make_unique<DenseEmbedding>(table);
    net->head = std::make_unique<MatrixHead>(table, "dense");
  } else {
    auto tt = make_tt_embedding(random_tt_embedding(V));
    net->embed = tt;
    if (v == kTtStream) {
      net->head = std::make_unique<StreamHead>(tt, 256);
    } else {
      auto m = std::make_shared<MatrixRM>(V, 768);
      tt->decode_range(0, V, m->data());
      net->head = std::make_unique<MatrixHead>(std::move(m), "materialize");
    }
  }
  nets[v] = std::move(net);
  return *nets[v];
}

std::vector<int32_t> prompt_ids(int n) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[i] = int32_t((i * 7919 + 13) % 50257);
  return ids;
}

void add_counters(benchmark::State& st, const Transformer& net, Variant v) {
  st.counters["embedding_bytes"] = double(net.embed->resident_bytes());
  st.counters["head_bytes"] = double(net.head->resident_bytes());
  // Weights held once (the dense tied head shares the embedding table; the stream head shares the cores).
  uint64_t unique = net.resident_bytes();
  if (std::string(net.head->kind()) == "dense") unique -= net.head->resident_bytes();
  if (std::string(net.head->kind()) == "stream") unique -= net.embed->resident_bytes();
  st.counters["weight_bytes"] = double(unique);
  // What a generated token reads: every layer's weights and the head (the embedding: one row).
  uint64_t per_token = net.head->resident_bytes();
  for (const auto& L : net.layers)
    for (const auto* op : {L.qkv.get(), L.q.get(), L.k.get(), L.v.get(), L.o.get(), L.up.get(), L.gate.get(), L.down.get()})
      if (op) per_token += op->resident_bytes();
  st.counters["layer_head_bytes"] = double(per_token);
  st.counters["peak_rss_bytes"] = double(peak_rss_bytes());
  st.counters["threads"] = g_threads;
  st.SetLabel(kVariantName[v]);
}

// Prompt processing: 128 tokens in one forward pass (logits of the last one).
void BM_Prompt(benchmark::State& st) {
  Transformer& net = model(Variant(st.range(0)));
  const auto ids = prompt_ids(128);
  std::vector<float> logits(static_cast<size_t>(net.cfg.vocab));
  KvCache cache = net.new_cache(256);
  for (auto _ : st) {
    cache.reset();
    net.forward(ids, cache, logits.data(), false);
    benchmark::DoNotOptimize(logits.data());
  }
  st.counters["prompt_tokens_per_s"] = benchmark::Counter(double(st.iterations() * ids.size()), benchmark::Counter::kIsRate);
  add_counters(st, net, Variant(st.range(0)));
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Generation: after a 16-token prompt, 32 tokens one at a time through the KV cache (greedy), the
// loop of generate() written out so that wall time and process CPU time of the decode steps are
// both measured (CPU time is the steadier figure on a shared machine; run with
// OMP_WAIT_POLICY=passive so that waiting threads do not spin).
void BM_Generate(benchmark::State& st) {
  Transformer& net = model(Variant(st.range(0)));
  const auto prompt = prompt_ids(16);
  constexpr int kSteps = 32;
  std::vector<float> logits(static_cast<size_t>(net.cfg.vocab));
  double wall = 0, cpu = 0;
  int64_t tokens = 0;
  for (auto _ : st) {
    KvCache cache = net.new_cache(64);
    net.forward(prompt, cache, logits.data(), false);
    int32_t next = argmax(logits);
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    for (int i = 0; i < kSteps; ++i) {
      net.forward(std::span<const int32_t>(&next, 1), cache, logits.data(), false);
      next = argmax(logits);
    }
    cpu += cpu_seconds() - c0;
    wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    tokens += kSteps;
  }
  st.counters["generated_tokens_per_s"] = double(tokens) / wall;
  st.counters["ms_per_token"] = 1e3 * wall / double(tokens);
  // Bytes moved per token (estimate): layers + head weights, plus the K and V rows read by attention
  // (on average 16 + kSteps / 2 positions, f32).
  uint64_t per_token = net.head->resident_bytes();
  for (const auto& L : net.layers)
    for (const auto* op : {L.qkv.get(), L.q.get(), L.k.get(), L.v.get(), L.o.get(), L.up.get(), L.gate.get(), L.down.get()})
      if (op) per_token += op->resident_bytes();
  per_token += uint64_t(net.cfg.n_layer) * 2 * uint64_t(16 + kSteps / 2) * uint64_t(net.cfg.kv_dim()) * sizeof(float);
  st.counters["bytes_per_token_est"] = double(per_token);
  st.counters["achieved_gb_per_s"] = double(per_token) * double(tokens) / wall / 1e9;
  st.counters["cpu_ms_per_token"] = 1e3 * cpu / double(tokens);
  add_counters(st, net, Variant(st.range(0)));
}

// The embedding lookup alone (one token), to show what the tt contraction costs per step.
void BM_EmbeddingLookup(benchmark::State& st) {
  Transformer& net = model(Variant(st.range(0)));
  std::vector<float> out(768);
  int32_t id = 0;
  for (auto _ : st) {
    id = (id + 7919) % 50257;
    net.embed->lookup(std::span<const int32_t>(&id, 1), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  add_counters(st, net, Variant(st.range(0)));
}

// The machine's memory bandwidth as the token loop sees it: g_threads threads summing a 1 GiB f32
// buffer (far above the caches), split as the linear layers split their rows (OpenMP, static).
void BM_MemoryBandwidth(benchmark::State& st) {
  set_compute_threads(g_threads);
  const int64_t n = int64_t(1) << 28;  // 1 GiB of f32
  std::vector<float> buf(static_cast<size_t>(n));
  fill_random(buf.data(), buf.size(), 1.0f, 3);
  constexpr int64_t kChunk = int64_t(1) << 16;
  double seconds = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t c = 0; c < n / kChunk; ++c) {
      float s[16] = {};
      const float* p = buf.data() + c * kChunk;
      for (int64_t j = 0; j < kChunk; j += 16)
        for (int k = 0; k < 16; ++k) s[k] += p[j + k];
      for (float v : s) total += v;
    }
    benchmark::DoNotOptimize(total);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  st.counters["gb_per_s"] = double(n) * sizeof(float) * double(st.iterations()) / seconds / 1e9;
  st.counters["threads"] = g_threads;
}

}  // namespace

BENCHMARK(BM_MemoryBandwidth)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_EmbeddingLookup)->ArgName("variant")->Arg(kDense)->Arg(kTtMaterialize);
BENCHMARK(BM_Prompt)->ArgName("variant")->Arg(kDense)->Arg(kTtMaterialize)->Arg(kTtStream)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Generate)->ArgName("variant")->Arg(kDense)->Arg(kTtMaterialize)->Arg(kTtStream)->Unit(benchmark::kMillisecond)->MinTime(1.0)->Repetitions(2);
// Weight types run on the stored form: ms per token, resident and moved bytes. variant: 3 fp16, 4 int8,
// 5 q8_0, 6 q4_0, 7 q4_1, 8 q5_1, 9 q4_k (e.g. --benchmark_filter=GenerateWeightType/variant:5).
BENCHMARK(BM_Prompt)->Name("BM_PromptWeightType")->ArgName("variant")->DenseRange(kF16, kQ4_K)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Generate)->Name("BM_GenerateWeightType")->ArgName("variant")->DenseRange(kF16, kQ4_K)->Unit(benchmark::kMillisecond)->MinTime(1.0)->Repetitions(2);

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--threads") == 0) {
      g_threads = std::max(1, std::atoi(argv[i + 1]));
      std::memmove(argv + i, argv + i + 2, sizeof(char*) * size_t(argc - i - 2));
      argc -= 2;
      break;
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
