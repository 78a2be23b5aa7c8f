// Block quantization throughput per type (methods/block_quant): quantize and dequantize of a
// 4096 x 4096 f32 matrix (the k-quants: 1024 x 4096, their reference quantizer being 10-20x slower),
// one thread, bytes of f32 input (or output) per second. The target is >= 1 GB/s of f32
// input per core for q8_0 and q4_0.
//   build/release/bin/bench_block_quant --benchmark_format=json
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "methods/block_quant/block_formats.h"

using namespace tsm;

namespace {

constexpr int64_t kRows = 4096, kCols = 4096;

/// Rows timed for type t: all of them, or a quarter for the k-quants.
int64_t rows_of(BlockType t) { return block_format(t).values == 256 ? kRows / 4 : kRows; }
int64_t row_bytes_of(BlockType t) { return kCols / block_format(t).values * block_format(t).bytes; }

const std::vector<float>& matrix() {
  static const std::vector<float> m = [] {
    std::vector<float> v(size_t(kRows * kCols));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0, 0.02f);
    for (auto& x : v) x = nd(rng);
    return v;
  }();
  return m;
}

void BM_Quantize(benchmark::State& st) {
  const auto t = static_cast<BlockType>(st.range(0));
  const auto& m = matrix();
  const int64_t rows = rows_of(t), row_bytes = row_bytes_of(t);
  std::vector<uint8_t> out(size_t(rows * row_bytes));
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, m.data() + r * kCols, kCols, out.data() + r * row_bytes);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * rows * kCols * 4);
  st.SetLabel(std::string(block_format(t).name));
}

void BM_Dequantize(benchmark::State& st) {
  const auto t = static_cast<BlockType>(st.range(0));
  const auto& m = matrix();
  const int64_t rows = rows_of(t), row_bytes = row_bytes_of(t);
  std::vector<uint8_t> q(size_t(rows * row_bytes));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, m.data() + r * kCols, kCols, q.data() + r * row_bytes);
  std::vector<float> y(size_t(rows * kCols));
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r) dequantize_row(t, q.data() + r * row_bytes, kCols, y.data() + r * kCols);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * rows * kCols * 4);
  st.SetLabel(std::string(block_format(t).name));
}

void all_types(benchmark::internal::Benchmark* b) {
  for (BlockType t : {BlockType::kQ8_0, BlockType::kQ4_0, BlockType::kQ4_1, BlockType::kQ5_0, BlockType::kQ5_1, BlockType::kQ6_K,
                      BlockType::kQ5_K, BlockType::kQ4_K, BlockType::kQ3_K, BlockType::kQ2_K})
    b->Arg(static_cast<int64_t>(t));
}

}  // namespace

BENCHMARK(BM_Quantize)->Apply(all_types)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Dequantize)->Apply(all_types)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
