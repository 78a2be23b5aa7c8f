// tensorslm-server end-to-end benchmarks (in-process Service on an ephemeral loopback port):
//  - BM_Upload154MB: POST /v1/uploads of a 50257 x 768 f32 .npy (154 MB) streamed over loopback,
//    hashed (SHA-256) and validated (NaN/Inf scan) before the 201; bytes/s and peak RSS growth.
//  - BM_ServiceJobGpt2 vs BM_OfflineGpt2: the same tt-token job through the service (POST ?wait + GET
//    artifact) and offline (load + build_artifact + serialize + write, what the CLI does).
// Run: build/<preset>/bin/bench_server --benchmark_format=json
#include <benchmark/benchmark.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "pipeline/artifact_builder.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/npy.h"
#include "service.h"

using namespace tsm;
using namespace tsm::server;
namespace asio = boost::asio;

namespace {

long proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  return -1;
}

/// (50257, 768) f32 embedding-like matrix: low-rank structure plus noise.
const std::string& gpt2_npy() {
  static std::string bytes = [] {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0, 1);
    MatrixRM A(50257, 16), B(16, 768);
    for (int64_t i = 0; i < A.size(); ++i) A.data()[i] = nd(rng);
    for (int64_t i = 0; i < B.size(); ++i) B.data()[i] = nd(rng) * 0.1f;
    MatrixRM M = A * B;
    for (int64_t i = 0; i < M.size(); ++i) M.data()[i] += 0.02f * nd(rng);
    return npy_bytes(Tensor::from_matrix("wte", M));
  }();
  return bytes;
}

struct Reply {
  int status = 0;
  std::string body;
};

/// One HTTP/1.1 request with a Content-Length body written in 4 MiB chunks; reads the whole reply.
Reply request(uint16_t port, const std::string& method, const std::string& target, const std::string& body) {
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string head = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n";
  asio::write(s, asio::buffer(head));
  for (size_t off = 0; off < body.size(); off += 4 << 20)
    asio::write(s, asio::buffer(body.data() + off, std::min<size_t>(4 << 20, body.size() - off)));
  std::string all;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(all), ec);
  Reply r;
  if (all.size() > 12) r.status = std::stoi(all.substr(9, 3));
  auto p = all.find("\r\n\r\n");
  if (p != std::string::npos) r.body = all.substr(p + 4);
  return r;
}

struct Fixture {
  std::string dir;
  std::unique_ptr<Service> svc;
  uint16_t port = 0;
  explicit Fixture(bool fsync_uploads = true) {
    char tmpl[] = "/tmp/tsm-bench-server-XXXXXX";
    dir = ::mkdtemp(tmpl);
    Config c;
    c.port = 0;
    c.data_dir = dir;
    c.log_level = "warn";
    c.fsync_uploads = fsync_uploads;
    static bool logging = false;
    if (!logging) setup_logging(c), logging = true;
    svc = std::make_unique<Service>(c);
    port = svc->start();
  }
  ~Fixture() {
    svc->stop();
    std::filesystem::remove_all(dir);
  }
};

void BM_Upload154MB(benchmark::State& state) {
  const std::string& body = gpt2_npy();
  Fixture fx(state.range(0) != 0);
  double peak_growth_mib = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::ofstream("/proc/self/clear_refs") << "5";  // reset VmHWM
    long before = proc_status_kb("VmRSS:");
    state.ResumeTiming();
    Reply r = request(fx.port, "POST", "/v1/uploads?name=wte", body);
    if (r.status != 201) state.SkipWithError(("upload failed: " + r.body).c_str());
    state.PauseTiming();
    peak_growth_mib = std::max(peak_growth_mib, (proc_status_kb("VmHWM:") - before) / 1024.0);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_MB"] = body.size() / 1e6;
  state.counters["peak_rss_growth_MiB"] = peak_growth_mib;
}
// Arg: 1 = fsync before the 201 (default config, disk-bound), 0 = page cache only (network + hash + validate).
BENCHMARK(BM_Upload154MB)->Arg(1)->Arg(0)->ArgName("fsync")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

const char* kParams = R"({"shape": [8, 8, 12], "ranks": [4, 4]})";

void BM_ServiceJobGpt2(benchmark::State& state) {
  Fixture fx;
  Reply up = request(fx.port, "POST", "/v1/uploads?name=wte", gpt2_npy());
  auto upload = nlohmann::json::parse(up.body)["id"].get<std::string>();
  for (auto _ : state) {
    nlohmann::json job = {{"upload", upload}, {"method", "tt-token"}, {"params", nlohmann::json::parse(kParams)}};
    Reply r = request(fx.port, "POST", "/v1/jobs?wait=600", job.dump());
    auto j = nlohmann::json::parse(r.body);
    if (j.value("state", "") != "succeeded") {
      state.SkipWithError(("job failed: " + r.body).c_str());
      break;
    }
    Reply a = request(fx.port, "GET", j["result"]["artifact"]["url"].get<std::string>(), "");
    benchmark::DoNotOptimize(a.body.size());
    state.counters["compress_s"] = j["timings"]["compress_s"].get<double>();
    state.counters["run_s"] = j["timings"]["run_s"].get<double>();
  }
}
BENCHMARK(BM_ServiceJobGpt2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

void BM_OfflineGpt2(benchmark::State& state) {
  char tmpl[] = "/tmp/tsm-bench-offline-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string in = dir + "/wte.npy";
  std::ofstream(in, std::ios::binary) << gpt2_npy();
  for (auto _ : state) {
    Tensor t = read_npy(in);
    CodecContext ctx;
    ctx.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<Tensor> one{t};
    auto art = build_artifact(one, sha256_file(in), "tt-token", nlohmann::json::parse(kParams), ctx);
    write_artifact(dir + "/out.tsm", art);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_OfflineGpt2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
