// Agent configuration parsing (the shipped configs/agent.json included), device facts from a
// sample Pi 5 tree, and the workload statistics helpers.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "lib/agent_config.h"
#include "lib/device_facts.h"
#include "lib/workload.h"

using namespace tsm::client;
namespace fs = std::filesystem;
const fs::path kData = fs::path(TSM_SOURCE_DIR) / "tests" / "client" / "data";

TEST(AgentConfig, ShippedConfigParsesWithComments) {
  auto c = parse_agent_config(tsm::read_file((fs::path(TSM_SOURCE_DIR) / "configs" / "agent.json").string()));
  EXPECT_EQ(c.http.server, "http://127.0.0.1:8080");
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "gpt2-tt");
  EXPECT_EQ(c.workload.prompts.size(), 2u);
  EXPECT_EQ(c.energy.source, "auto");
  EXPECT_EQ(c.http.io_timeout, std::chrono::milliseconds(30000));
}

TEST(AgentConfig, ModelsAndTags) {
  auto c = parse_agent_config(R"({"models": ["a", "b.c-d:prod"]})");
  EXPECT_EQ(c.models[1].name, "b.c-d");
  EXPECT_EQ(c.models[1].tag, "prod");
  EXPECT_THROW(parse_followed_model(""), tsm::ParamError);
  EXPECT_THROW(parse_followed_model("a:"), tsm::ParamError);
  EXPECT_THROW(parse_followed_model("a/b"), tsm::ParamError);
}

TEST(AgentConfig, RejectsTyposAndBadValues) {
  auto expect_field = [](const std::string& text, const std::string& field) {
    try {
      parse_agent_config(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const tsm::ParamError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  expect_field(R"({"poll_intervall_s": 5})", "poll_intervall_s");
  expect_field(R"({"workload": {"repetition": 5}})", "workload.repetition");
  expect_field(R"({"poll_interval_s": 0})", "poll_interval_s");
  expect_field(R"({"workload": {"token_ids": [[1, -2]]}})", "workload.token_ids");
  expect_field(R"({"energy": {"source": "joulemeter"}})", "energy.source");
  expect_field(R"({"runtime": {"head": "fast"}})", "runtime.head");
  expect_field(R"({"server": "localhost:8080"})", "server");
  expect_field(R"({"http": {"max_attempts": "3"}})", "http.max_attempts");
  EXPECT_THROW(parse_agent_config("{ \"models\": [ "), tsm::FormatError);
  EXPECT_THROW(parse_agent_config("[]"), tsm::ParamError);
}

TEST(DeviceFacts, ReadsAPi5Tree) {
  FactRoots r{(kData / "proc_pi5").string(), (kData / "etc_pi5").string()};
  auto f = read_device_facts("pi-lab-3", r);
  EXPECT_EQ(f.device_id(), "pi-lab-3");
  EXPECT_EQ(f.board(), "Raspberry Pi 5 Model B Rev 1.0");
  EXPECT_EQ(f.cpu(), "Cortex-A76");
  EXPECT_EQ(f.cores(), 2u);  // two processor entries in the sample
  EXPECT_EQ(f.mem_bytes(), 8245616ull * 1024);
  EXPECT_EQ(f.os(), "Debian GNU/Linux 12 (bookworm)");
  EXPECT_FALSE(f.arch().empty());
  EXPECT_EQ(f.agent_version(), TSM_VERSION);
  EXPECT_EQ(arm_core_name(0x41, 0xd08), "Cortex-A72");
  EXPECT_EQ(arm_core_name(0x51, 0xd08), "");
}

TEST(DeviceFacts, MissingTreeLeavesFactsEmpty) {
  FactRoots r{(kData / "nonexistent").string(), (kData / "nonexistent").string()};
  auto f = read_device_facts("x", r);
  EXPECT_EQ(f.board(), "");
  EXPECT_EQ(f.mem_bytes(), 0u);
  EXPECT_GT(f.cores(), 0u);  // falls back to the running machine
}

TEST(Workload, PercentilesInterpolateLikeNumpy) {
  std::vector<double> v{15, 20, 35, 40, 50};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 35);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 46);   // numpy.percentile([15,20,35,40,50], 90)
  EXPECT_DOUBLE_EQ(percentile(v, 99), 49.6);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 15);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 50);
  EXPECT_DOUBLE_EQ(percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0);
}

TEST(Workload, RssIsReadable) {
  EXPECT_GT(current_rss_bytes(), 0u);
  EXPECT_GE(peak_rss_bytes(), current_rss_bytes() / 2);
}
