// Test helper: runs the real tensorslm-server (TSM_BIN_DIR) on 127.0.0.1 with a data directory,
// reading the bound port from --port-file; stop() sends SIGTERM and waits. start() again on the
// same port brings it back with the same data.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace tsm::testing {

class ServerProcess {
 public:
  static std::string binary() { return std::string(TSM_BIN_DIR) + "/tensorslm-server"; }
  static bool available() { return ::access(binary().c_str(), X_OK) == 0; }

  explicit ServerProcess(std::string data_dir) : dir_(std::move(data_dir)) {}
  ~ServerProcess() { stop(); }

  /// Starts on `port` (0 = ephemeral); returns false when it did not come up within 30 s.
  bool start(int port = 0) {
    const std::string port_file = dir_ + "/port";
    std::filesystem::create_directories(dir_);
    std::filesystem::remove(port_file);
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string listen = "127.0.0.1:" + std::to_string(port), log = dir_ + "/server.log";
      FILE* f = std::freopen(log.c_str(), "a", stderr);
      (void)f;
      ::execl(binary().c_str(), "tensorslm-server", "--listen", listen.c_str(), "--data-dir", dir_.c_str(), "--port-file",
              port_file.c_str(), "--workers", "1", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 300; ++i) {
      std::ifstream f(port_file);
      int p = 0;
      if (f >> p && p > 0) {
        port_ = p;
        return true;
      }
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tsm::testing
