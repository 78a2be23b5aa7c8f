// GoogleTest fixture for tests that run the real `tensorslm` binary: a fresh temp directory per
// test (removed afterwards), the command run there through the shell with stdout and stderr captured.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/test_paths.h"
#include "common/atomic_file.h"

namespace tsm::test {

struct CliResult {
  int rc;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tsm_cli_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& f) const { return (dir_ / f).string(); }
  static std::string fixture(const std::string& f) { return std::string(TSM_FIXTURES_DIR) + "/" + f; }

  /// Runs `tensorslm ARGS` with the temp dir as working directory; captures stdout and stderr.
  CliResult run(const std::string& args) const {
    std::string cmd = "cd '" + dir_.string() + "' && '" + std::string(TSM_BIN_DIR) + "/tensorslm' " + args + " >'" +
                      path("stdout") + "' 2>'" + path("stderr") + "'";
    int st = std::system(cmd.c_str());
    return CliResult{WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_file(path("stdout")), read_file(path("stderr"))};
  }
  /// run() that must succeed and print one JSON object.
  nlohmann::json run_json(const std::string& args) const {
    CliResult r = run(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return nlohmann::json::parse(r.out);
  }
  /// One line "error: ..." on stderr, non-zero exit, and the message mentions `needle`.
  void expect_one_line_error(const std::string& args, const std::string& needle) const {
    CliResult r = run(args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << "\nstderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\nstderr: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
  }

  std::filesystem::path dir_;
};

}  // namespace tsm::test
