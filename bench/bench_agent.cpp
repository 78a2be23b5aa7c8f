// Agent overhead when idle between polls: runs the real tensorslm-agent (from this program's
// directory) against an in-process loopback server that answers every manifest poll with 304, and
// measures the agent's CPU time (utime + stime from /proc/<pid>/stat) over the wall time, and its
// RSS, without a model loaded. Targets: < 1 % of a core, < 20 MiB RSS.
// Counters: cpu_pct_of_core, rss_mib, polls (manifest requests answered). Poll interval 1 s (the
// shipped default is 300 s, so this is a worst case). Run: bench_agent --benchmark_format=json
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace {
namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

/// Answers 304 to every request on 127.0.0.1 (the idle poll: manifest unchanged).
class NotModifiedServer {
 public:
  NotModifiedServer() : acc_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acc_.local_endpoint().port();
    th_ = std::thread([this] {
      while (!stop_) {
        net::ip::tcp::socket s(ioc_);
        beast::error_code ec;
        acc_.accept(s, ec);
        if (ec || stop_) continue;
        beast::flat_buffer b;
        http::request<http::string_body> req;
        http::read(s, b, req, ec);
        if (ec) continue;
        ++polls_;
        http::response<http::empty_body> res{http::status::not_modified, 11};
        res.set(http::field::etag, "\"" + std::string(64, 'a') + "\"");
        res.keep_alive(false);
        http::write(s, res, ec);
      }
    });
  }
  ~NotModifiedServer() {
    stop_ = true;
    net::io_context io;
    net::ip::tcp::socket s(io);
    beast::error_code ec;
    s.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
    th_.join();
  }
  unsigned short port() const { return port_; }
  int polls() const { return polls_; }

 private:
  net::io_context ioc_;
  net::ip::tcp::acceptor acc_;
  unsigned short port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> polls_{0};
  std::thread th_;
};

double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), {});
  std::istringstream in(all.substr(all.rfind(')') + 2));  // fields after "pid (comm) "
  std::string x;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 13; ++i) in >> x;  // state .. cmajflt
  in >> ut >> st;
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double rss_mib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

void BM_AgentIdle(benchmark::State& state) {
  const fs::path bin = fs::canonical("/proc/self/exe").parent_path() / "tensorslm-agent";
  if (!fs::exists(bin)) {
    state.SkipWithError("tensorslm-agent is not built next to this benchmark");
    return;
  }
  NotModifiedServer srv;
  const fs::path dir = fs::temp_directory_path() / ("tsm_bench_agent_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cfg = (dir / "agent.json").string();
  std::ofstream(cfg) << R"({"server": "http://127.0.0.1:)" << srv.port() << R"(", "device_id": "bench",
    "models": ["m"], "poll_interval_s": 1, "data_dir": ")" << (dir / "data").string() << R"(",
    "energy": {"source": "auto"}})";
  const double seconds = static_cast<double>(state.range(0));
  for (auto _ : state) {
    pid_t pid = ::fork();
    if (pid == 0) {
      FILE* f = std::freopen("/dev/null", "w", stderr);
      (void)f;
      ::execl(bin.c_str(), "tensorslm-agent", "--config", cfg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // start-up and first poll excluded
    const double c0 = cpu_seconds(pid);
    const auto t0 = std::chrono::steady_clock::now();
    double peak = 0;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
      peak = std::max(peak, rss_mib(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds(pid) - c0;
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    state.SetIterationTime(wall);
    state.counters["cpu_pct_of_core"] = 100.0 * cpu / wall;
    state.counters["rss_mib"] = peak;
    state.counters["polls"] = srv.polls();
    state.counters["clean_exit"] = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_AgentIdle)->Arg(10)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
