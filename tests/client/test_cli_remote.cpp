// The `tensorslm` remote commands against the real server on loopback: upload a model directory
// (sent as tar), submit --wait --publish, jobs, models, download (sha256-verified), reports,
// cancel of a finished job, and server/token resolution from the environment. Every command with --json.
#include <gtest/gtest.h>
#include <stdio.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/sha256.h"
#include "support/server_process.h"

using json = nlohmann::json;
using tsm::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

struct CmdResult {
  int rc;
  std::string out;
};

CmdResult run(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(TSM_BIN_DIR) + "/tensorslm " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

json run_json(const std::string& args, const std::string& env = "") {
  CmdResult r = run(args + " --json", env);
  EXPECT_EQ(r.rc, 0) << args << "\n" << r.out;
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << args << ": not JSON: " << r.out;
    return json::object();
  }
}

}  // namespace

TEST(CliRemote, UploadSubmitModelsDownloadReports) {
  if (!ServerProcess::available()) GTEST_SKIP() << "tensorslm-server is not built";
  auto work = fs::temp_directory_path() / ("tsm_cli_remote_" + std::to_string(::getpid()));
  fs::remove_all(work);
  ServerProcess srv((work / "server").string());
  ASSERT_TRUE(srv.start());
  const std::string S = " --server " + srv.url();

  json up = run_json("upload " + std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny" + S);
  ASSERT_TRUE(up.contains("id")) << up.dump();
  EXPECT_EQ(up["format"], "tar");
  const std::string upload = up["id"];

  json job = run_json("submit --upload " + upload +
                      " --method tt-token --tensor transformer.wte.weight --param shape=[4,4,4] --param eps=0.2"
                      " --publish tiny-tt:v1 --wait 120" + S);
  ASSERT_EQ(job.value("state", ""), "succeeded") << job.dump(2);
  const std::string id = job["id"];

  json one = run_json("jobs " + id + S);
  EXPECT_EQ(one["id"], id);
  json list = run_json("jobs" + S);
  EXPECT_NE(list.dump().find(id), std::string::npos);

  // Server from the environment instead of --server.
  json models = run_json("models", "TENSORSLM_SERVER=" + srv.url());
  ASSERT_EQ(models["models"].size(), 1u) << models.dump(2);
  EXPECT_EQ(models["models"][0]["name"], "tiny-tt");
  const std::string sha = models["models"][0]["latest"]["sha256"];

  const std::string out = (work / "a.tsm").string();
  json dl = run_json("download " + sha + " -o " + out + S);
  EXPECT_EQ(dl["sha256"], sha);
  EXPECT_EQ(dl["verified"], true);
  EXPECT_EQ(tsm::sha256_file(out), sha);

  json reps = run_json("reports --model tiny-tt" + S);
  EXPECT_EQ(reps["reports"].size(), 0u);

  // Failures are one line on stderr and exit 1: unknown artifact, job that cannot be cancelled
  // any more or does not exist, an unreachable server.
  CmdResult bad = run("download " + std::string(64, '0') + " -o " + (work / "x").string() + S);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("error: "), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(work / "x"));
  EXPECT_EQ(run("cancel j_doesnotexist" + S).rc, 1);
  CmdResult down = run("models --server http://127.0.0.1:1");
  EXPECT_EQ(down.rc, 1);
  EXPECT_NE(down.out.find("cannot connect"), std::string::npos) << down.out;
  CmdResult bad_param = run("submit --upload " + upload + " --method tt-token --param noequals" + S);
  EXPECT_EQ(bad_param.rc, 1);
  // --calibrate reaches the server, which refuses it for a method without calibration at POST.
  CmdResult bad_cal = run("submit --upload " + upload + " --method tt-token --whole-model --calibrate --adam-steps 3" + S);
  EXPECT_EQ(bad_cal.rc, 1);
  EXPECT_NE(bad_cal.out.find("only, not"), std::string::npos) << bad_cal.out;
  srv.stop();
  fs::remove_all(work);
}
