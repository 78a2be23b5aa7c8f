// Test helper: a real tensorslm-server (TSM_BIN_DIR) as a child process on 127.0.0.1, with a data
// directory, environment overrides (TENSORSLM_*) and extra flags. The bound port is read from
// --port-file; the server's stdout/stderr go to <data_dir>/../server-<n>.log (n counts starts).
// stop() sends SIGTERM and waits; start() again (same port or a new one) brings it back with the
// same data. Shared by the server and the client integration tests.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/test_paths.h"

namespace tsm::testing {

class ServerProcess {
 public:
  static std::string binary() { return std::string(TSM_BIN_DIR) + "/tensorslm-server"; }
  static bool available() { return ::access(binary().c_str(), X_OK) == 0; }

  explicit ServerProcess(std::string data_dir, std::vector<std::pair<std::string, std::string>> env = {},
                         std::vector<std::string> extra_args = {})
      : data_dir_(std::move(data_dir)), env_(std::move(env)), args_(std::move(extra_args)) {}
  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  /// Starts on `port` (0 = ephemeral). False when the server exited or did not write its port
  /// within 10 s (log() tells why).
  bool start(int port = 0) {
    const std::string port_file = data_dir_ + "/port";
    std::filesystem::create_directories(data_dir_);
    std::filesystem::remove(port_file);
    log_ = data_dir_ + "/../server-" + std::to_string(++starts_) + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {
      for (auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
      if (FILE* f = std::fopen(log_.c_str(), "w")) {
        ::dup2(fileno(f), 2);
        ::dup2(fileno(f), 1);
      }
      std::vector<std::string> a = {binary(), "--data-dir", data_dir_, "--port-file", port_file};
      if (default_listen_) a.insert(a.begin() + 1, {"--listen", "127.0.0.1:" + std::to_string(port)});
      a.insert(a.end(), args_.begin(), args_.end());
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::_Exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      std::ifstream in(port_file);
      int p = 0;
      if (in >> p && p > 0) {
        port_ = static_cast<uint16_t>(p);
        return true;
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        rc_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  /// SIGTERM and wait (graceful); returns the exit status (0 when not running).
  int stop() {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return rc_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  /// Leaves out the default --listen 127.0.0.1:<port>: the flags, or a --config file, say where it listens.
  void listen_from_args() { default_listen_ = false; }
  /// The exit status of the latest stop(), or of a start() that failed because the server exited (-1 before).
  int exit_code() const { return rc_; }
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& data_dir() const { return data_dir_; }
  /// The server's output of the latest start.
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string data_dir_, log_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int starts_ = 0;
  int rc_ = -1;
  bool default_listen_ = true;
};

}  // namespace tsm::testing
