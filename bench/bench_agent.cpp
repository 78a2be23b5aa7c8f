// Agent overhead when idle between polls: runs the real tensorslm-agent (from this program's
// directory) against an in-process loopback server (tests/support/loopback_server.h) that answers every manifest poll with 304, and
// measures the agent's CPU time (utime + stime from /proc/<pid>/stat) over the wall time, and its
// RSS, without a model loaded. Targets: < 1 % of a core, < 20 MiB RSS.
// Counters: cpu_pct_of_core, rss_mib, polls (manifest requests answered). Poll interval 1 s (the
// shipped default is 300 s, so this is a worst case). Run: bench_agent --benchmark_format=json
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/loopback_server.h"

namespace {
namespace fs = std::filesystem;

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
  // Every manifest poll answered 304 (the idle case: the model did not change).
  tsm::testing::LoopbackServer srv([](const auto&) {
    return tsm::testing::Reply{304, "", {{"ETag", "\"" + std::string(64, 'a') + "\""}}};
  });
  const fs::path dir = fs::temp_directory_path() / ("tsm_bench_agent_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cfg = (dir / "agent.json").string();
  std::ofstream(cfg) << R"({"server": ")" << srv.url() << R"(", "device_id": "bench",
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
    state.counters["polls"] = srv.requests();
    state.counters["clean_exit"] = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_AgentIdle)->Arg(10)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
