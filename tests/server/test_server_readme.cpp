// The README's "Service walkthrough" curl block, executed verbatim (bash -euo pipefail) against a
// fresh server on an ephemeral port, so the documentation cannot rot.
#include "support/test_paths.h"
#include "server_harness.h"

using namespace tsm::test;

TEST(ServerReadme, WalkthroughRuns) {
  std::ifstream in(std::string(TSM_SOURCE_DIR) + "/README.md");
  std::string readme((std::istreambuf_iterator<char>(in)), {});
  auto sec = readme.find("## Service walkthrough");
  ASSERT_NE(sec, std::string::npos) << "README.md lacks the 'Service walkthrough' section";
  auto open = readme.find("```sh\n", sec);
  ASSERT_NE(open, std::string::npos);
  open += 6;
  auto close = readme.find("\n```", open);
  ASSERT_NE(close, std::string::npos);
  std::string block = readme.substr(open, close - open + 1);

  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  write_bytes(tmp.path + "/walkthrough.sh", block);
  int rc = 0;
  std::string out = sh("cd " + tmp.path + " && TSM=" + srv.url() + " bash -euo pipefail walkthrough.sh 2>&1", &rc);
  ASSERT_EQ(rc, 0) << out << "\nserver log:\n" << srv.log();
  EXPECT_NE(out.find("succeeded ratio"), std::string::npos) << out;
  EXPECT_NE(out.find("\"tag\":\"v1\""), std::string::npos) << out;
  EXPECT_NE(out.find("\n304\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\"status\":422"), std::string::npos) << out;
  EXPECT_NE(out.find("params.ranks"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(tmp.path + "/emb.tsm"));
  EXPECT_GT(fs::file_size(tmp.path + "/emb.safetensors"), 0u);
}
