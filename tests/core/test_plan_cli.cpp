// `tensorslm plan` as a user runs it: a ratio target writes the artifact and a report whose spec
// `compress-model --spec` rebuilds byte for byte; an unreachable --max-kl is one line and exit 1
// with no artifact; bad arguments are one-line errors.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/atomic_file.h"
#include "support/cli_fixture.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace tsm;

namespace {

class PlanCli : public test::CliTest {};

// Short sets and few candidates: a plan of gpt2-man in a few seconds.
const std::string kSmall =
    " --methods fp16,q8_0,q4_0 --no-calibrate --sensitivity-sequences 2 --calib-sequences 2 --calib-length 65"
    " --repair-sequences 4 --repair-length 65 --eval-sequences 4 --eval-length 65";

}  // namespace

TEST_F(PlanCli, PlanWritesArtifactAndReportAndTheSpecRebuildsIt) {
  const json r = run_json("plan " + fixture("gpt2-man") + " --target-ratio 4" + kSmall + " -o p.tsm --plan-out p.json --json");
  EXPECT_TRUE(r["target_met"].get<bool>());
  EXPECT_LE(r["bytes"].get<uint64_t>(), r["dense_f32_bytes"].get<uint64_t>() / 4);
  EXPECT_GE(r["frontier"].size(), 4u);
  EXPECT_FALSE(r["spec"]["entries"].empty());
  EXPECT_TRUE(r["quality"].contains("kl_mean"));
  ASSERT_TRUE(fs::exists(path("p.tsm")));
  const json report = json::parse(read_file(path("p.json")));
  EXPECT_EQ(report["spec"], r["spec"]);
  const json again = run_json("compress-model " + fixture("gpt2-man") +
                              " --spec p.json --eval --no-baselines --eval-sequences 4 --eval-length 65 -o q.tsm --json");
  EXPECT_EQ(again["sha256"], r["sha256"]);
  // The text view: the frontier table, the plan per group, the verdict line.
  const auto t = run("plan " + fixture("gpt2-man") + " --target-ratio 4" + kSmall + " -o t.tsm");
  EXPECT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("frontier"), std::string::npos);
  EXPECT_NE(t.out.find("plan:"), std::string::npos);
  EXPECT_NE(t.out.find("verdict"), std::string::npos);
}

TEST_F(PlanCli, UnreachableAndBadArgumentsAreOneLineErrors) {
  expect_one_line_error("plan " + fixture("gpt2-man") + " --max-kl 1e-9" + kSmall + " -o far.tsm", "out of reach");
  EXPECT_FALSE(fs::exists(path("far.tsm")));
  expect_one_line_error("plan " + fixture("gpt2-man") + " --target-ratio 4 --max-kl 1 -o x.tsm", "exactly one");
  expect_one_line_error("plan " + fixture("gpt2-man") + " --target-ratio 0.5 -o x.tsm", "target_ratio");
  expect_one_line_error("plan " + fixture("gpt2-man") + " --target-ratio 4 --methods q4_0,bogus -o x.tsm", "bogus");
  write_file_atomic(path("bad.json"), "{\"entries\": 3}");
  expect_one_line_error("compress-model " + fixture("gpt2-man") + " --spec bad.json -o x.tsm", "entries");
  write_file_atomic(path("notjson.json"), "{not json");
  expect_one_line_error("compress-model " + fixture("gpt2-man") + " --spec notjson.json -o x.tsm", "not JSON");
  EXPECT_FALSE(fs::exists(path("x.tsm")));
}
