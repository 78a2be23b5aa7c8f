// tt-token (TensorSLM) throughput on a GPT-2-sized embedding: a 50257 x 768 f32 matrix with a
// decaying spectrum, shapes 8x8x12 ranks (4,4) and 4x4x4x12 ranks (4,8,4).
//   BM_Compress      : whole-matrix encode on 2 threads                 counter tokens_per_s
//   BM_DecodeBatch   : decode_rows of random ids into a reused buffer    counter tokens_per_s
//   BM_DecodeAll     : decode_all into a reused (rows, cols) buffer      counter tokens_per_s
// Every compress run checks a sample of rows against the reference TT-SVD built from full SVDs
// (tt_svd, Eigen JacobiSVD) and fails the benchmark if any row differs by more than 1e-5 relative.
#include <benchmark/benchmark.h>

#include <Eigen/QR>
#include <memory>
#include <random>

#include "methods/tt_token/token_train_table.h"
#include "methods/tt_token/tt_token_codec.h"
#include "metrics/metrics.h"
#include "tt/tt_svd.h"

using namespace tsm;

namespace {

constexpr int64_t kRows = 50257, kCols = 768;

// W = G diag(s) Q^T with G gaussian (rows, cols), Q a random orthogonal (cols, cols), s_j = 0.99^j.
const MatrixRM& embedding() {
  static const MatrixRM W = [] {
    std::mt19937 g(2024);
    std::normal_distribution<float> d;
    MatrixRM G(kRows, kCols);
    for (int64_t i = 0; i < G.size(); ++i) G.data()[i] = d(g);
    Eigen::MatrixXf R(kCols, kCols);
    for (int64_t i = 0; i < R.size(); ++i) R.data()[i] = d(g);
    Eigen::HouseholderQR<Eigen::MatrixXf> qr(R);
    Eigen::MatrixXf Q = qr.householderQ();
    for (int64_t j = 0; j < kCols; ++j) G.col(j) *= 0.02f * std::pow(0.99f, float(j));
    MatrixRM W = G * Q.transpose();
    return W;
  }();
  return W;
}

struct Config {
  std::vector<int64_t> shape, ranks;
};
const Config kConfigs[] = {{{8, 8, 12}, {4, 4}}, {{4, 4, 4, 12}, {4, 8, 4}}};

json params(const Config& c) { return json{{"shape", c.shape}, {"ranks", c.ranks}, {"core_dtype", "f32"}}; }

// Encoded tensors, built once per config (the decode benchmarks reuse them).
const v1::CompressedTensor& encoded(int cfg) {
  static std::unique_ptr<v1::CompressedTensor> cache[2];
  if (!cache[cfg]) {
    CodecContext ctx;
    ctx.threads = 2;
    TtTokenCodec c;
    cache[cfg] = std::make_unique<v1::CompressedTensor>(c.encode(embedding(), c.resolve(params(kConfigs[cfg]), kRows, kCols), ctx));
  }
  return *cache[cfg];
}

// Max relative row difference between the codec and the reference TT-SVD (full SVDs) on a sample.
double max_ref_diff(const TokenTrainTable& tab, const Config& c, int64_t sample) {
  const MatrixRM& W = embedding();
  TtSvdOptions o;
  o.max_ranks = c.ranks;
  std::vector<float> row(kCols);
  double worst = 0;
  for (int64_t s = 0; s < sample; ++s) {
    const int64_t i = (s * 7919) % kRows;
    auto ref = tt_svd(std::span<const float>(W.row(i).data(), kCols), c.shape, o).full();
    tab.decode_row(i, row.data());
    double num = 0, den = 0;
    for (int64_t j = 0; j < kCols; ++j) {
      num += (double(row[j]) - ref[j]) * (double(row[j]) - ref[j]);
      den += double(ref[j]) * ref[j];
    }
    worst = std::max(worst, std::sqrt(num / den));
  }
  return worst;
}

void BM_Compress(benchmark::State& state) {
  const int cfg = static_cast<int>(state.range(0));
  const MatrixRM& W = embedding();
  TtTokenCodec c;
  const json p = c.resolve(params(kConfigs[cfg]), kRows, kCols);
  CodecContext ctx;
  ctx.threads = 2;
  v1::CompressedTensor t;
  for (auto _ : state) {
    t = c.encode(W, p, ctx);
    benchmark::DoNotOptimize(t);
  }
  state.counters["tokens_per_s"] = benchmark::Counter(double(kRows) * state.iterations(), benchmark::Counter::kIsRate);
  auto tab = TokenTrainTable::from_proto(t);
  MatrixRM D(kRows, kCols);
  tab.decode_all(D.data());
  const ErrorStats s = error_stats(W, D);
  const double ref = max_ref_diff(tab, kConfigs[cfg], 2000);
  state.counters["rel_error"] = s.rel_error;
  state.counters["ratio_f32"] = double(kRows * kCols * 4) / double(c.stored_bytes(t));
  state.counters["ref_max_rel_diff"] = ref;
  state.SetLabel(p.dump());
  if (!(ref <= 1e-5)) state.SkipWithError("reconstruction differs from the reference TT-SVD by more than 1e-5");
}

void BM_DecodeBatch(benchmark::State& state) {
  const int cfg = static_cast<int>(state.range(0));
  const int64_t batch = state.range(1);
  const TokenTrainTable tab = TokenTrainTable::from_proto(encoded(cfg));
  std::mt19937 g(7);
  std::vector<int32_t> ids(batch);
  for (auto& id : ids) id = static_cast<int32_t>(g() % kRows);
  std::vector<float> out(static_cast<size_t>(batch * kCols));  // (batch, cols), reused
  for (auto _ : state) {
    tab.decode_rows(ids, out.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(double(batch) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_DecodeAll(benchmark::State& state) {
  const int cfg = static_cast<int>(state.range(0));
  const TokenTrainTable tab = TokenTrainTable::from_proto(encoded(cfg));
  std::vector<float> out(static_cast<size_t>(kRows * kCols));  // (rows, cols), reused
  for (auto _ : state) {
    tab.decode_all(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(double(kRows) * state.iterations(), benchmark::Counter::kIsRate);
}

}  // namespace

// range(0): 0 = 8x8x12 ranks (4,4), 1 = 4x4x4x12 ranks (4,8,4)
BENCHMARK(BM_Compress)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_DecodeBatch)->Args({0, 512})->Args({0, 16384})->Args({1, 512})->Args({1, 16384})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_DecodeAll)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
