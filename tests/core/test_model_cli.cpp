// End-to-end tests of `tensorslm run` and `tensorslm eval` on the fixture models: the binary runs
// as a separate process; its generated ids are checked against the transformers reference, and a
// full-rank tt-token artifact made by `tensorslm compress` must evaluate to KL ~ 0 while a low-rank
// one gives KL > 0.
#include <gtest/gtest.h>

#include <set>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "support/cli_fixture.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace tsm;

namespace {

using Result = test::CliResult;
class ModelCli : public test::CliTest {};

std::string ids_arg(const json& ids) {
  std::string s;
  for (const auto& v : ids) s += (s.empty() ? "" : ",") + std::to_string(v.get<int>());
  return s;
}

TEST_F(ModelCli, RunGreedyMatchesTheReference) {
  for (const char* fx : {"gpt2-tiny", "opt-tiny", "llama-tiny"}) {
    json g = json::parse(read_file(fixture(std::string(fx) + "/reference.json")))["greedy"];
    json out = run_json("run " + fixture(fx) + " --ids " + ids_arg(g["prompt_ids"]) + " --max-new-tokens " +
                        std::to_string(g["generated_ids"].size()) + " --ignore-eos --threads 1 --json");
    EXPECT_EQ(out["generated_ids"], g["generated_ids"]) << fx;
    EXPECT_EQ(out["prompt_ids"], g["prompt_ids"]);
    EXPECT_TRUE(out["timings"].contains("decode_tokens_per_s"));
    EXPECT_FALSE(out.contains("text"));  // no tokenizer.json in the fixtures
  }
  // Seeded sampling is reproducible and stops at the length.
  std::string args = "run " + fixture("llama-tiny") + " --ids 1,5,9 --temperature 1 --top-k 40 --top-p 0.9 --seed 4 --max-new-tokens 12 --ignore-eos --json";
  json a = run_json(args), b = run_json(args);
  EXPECT_EQ(a["generated_ids"], b["generated_ids"]);
  EXPECT_EQ(a["generated_ids"].size(), 12u);
}

TEST_F(ModelCli, TtArtifactRunAndEval) {
  const std::string m = fixture("gpt2-tiny");
  ASSERT_EQ(run("compress " + m + " --method tt-token --shape 4,4,4 --ranks 4,4 --no-baselines -o " + path("full.tsm")).rc, 0) << read_file(path("stderr"));
  ASSERT_EQ(run("compress " + m + " --method tt-token --shape 4,4,4 --ranks 1,1 --no-baselines -o " + path("low.tsm")).rc, 0);
  json g = json::parse(read_file(fixture("gpt2-tiny/reference.json")))["greedy"];
  for (const char* head : {"materialize", "stream"}) {
    json out = run_json("run " + m + " --artifact " + path("full.tsm") + " --embedding tt --head " + head + " --ids " +
                        ids_arg(g["prompt_ids"]) + " --max-new-tokens 16 --ignore-eos --json");
    EXPECT_EQ(out["generated_ids"], g["generated_ids"]) << head;
    EXPECT_EQ(out["embedding"], "tt");
    EXPECT_EQ(out["head"], head);
  }
  json full = run_json("eval " + m + " --artifact " + path("full.tsm") + " --samples 2 --length 24 --json");
  EXPECT_LT(full["kl_mean"].get<double>(), 1e-8);
  EXPECT_EQ(full["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(full["tokens"].get<int>(), 2 * 23);
  json low = run_json("eval " + m + " --artifact " + path("low.tsm") + " --samples 2 --length 24 --json");
  EXPECT_GT(low["kl_mean"].get<double>(), 1e-4);
  // Token-sequence file: one sequence per line, each evaluated on its own (7 + 2 predicted tokens).
  write_file_atomic(path("ids.txt"), "5 6 7 8 9 10 11 12\n13,14,15\n");
  json f = run_json("eval " + m + " --artifact " + path("low.tsm") + " --ids " + path("ids.txt") + " --json");
  EXPECT_EQ(f["tokens"].get<int>(), 9);
  EXPECT_EQ(f["sequences"].get<int>(), 2);
  write_file_atomic(path("ids.json"), "[[5, 6, 7], [8, 9, 10, 11]]");
  EXPECT_EQ(run_json("eval " + m + " --artifact " + path("low.tsm") + " --ids " + path("ids.json") + " --json")["tokens"], 5);
  // The dense model alone: perplexity with its sample size; the default set is >= 2,048 predicted
  // tokens in sequences as long as the context allows (64 for this fixture).
  json d = run_json("eval " + m + " --json");
  EXPECT_GE(d["tokens"].get<int>(), 2048);
  EXPECT_GT(d["ppl_dense"].get<double>(), 1.0);
  EXPECT_EQ(d["tokens"].get<int>(), d["sequences"].get<int>() * 63);
}

// --compare: the same tensors in every reference representation on the same sequences, and a
// verdict by KL. The tt-token embedding at ranks 1,1 is far worse than int8 at a smaller size.
TEST_F(ModelCli, EvalCompareGivesAVerdictByKl) {
  const std::string m = fixture("gpt2-tiny");
  ASSERT_EQ(run("compress " + m + " --method tt-token --shape 4,4,4 --ranks 1,1 --no-baselines -o " + path("low.tsm")).rc, 0);
  json q = run_json("eval " + m + " --artifact " + path("low.tsm") + " --compare --sequences 4 --length 32 --json");
  ASSERT_TRUE(q["alternatives"].is_array());
  std::set<std::string> methods;
  for (const auto& a : q["alternatives"]) {
    methods.insert(a["method"].get<std::string>());
    EXPECT_GE(a["kl_mean"].get<double>(), 0.0);
    EXPECT_GT(a["stored_bytes"].get<int64_t>(), 0);
  }
  EXPECT_TRUE(methods.count("fp16") && methods.count("int8") && methods.count("q4_0")) << q.dump();
  EXPECT_EQ(q["tokens"].get<int>(), 4 * 31);
  const std::string v = q["verdict"].get<std::string>();
  EXPECT_NE(v.find("prefer"), std::string::npos) << v;
  Result text = run("eval " + m + " --artifact " + path("low.tsm") + " --compare --sequences 2 --length 16");
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("verdict: prefer"), std::string::npos) << text.out;
}

TEST_F(ModelCli, ErrorsAreOneLine) {
  auto one_line = [&](const std::string& args, const std::string& needle) {
    Result r = run(args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  one_line("run " + fixture("gpt2-tiny") + " --prompt hello", "--ids");
  one_line("run " + fixture("gpt2-tiny") + " --ids 1,2000", "2000");
  one_line("run " + fixture("gpt2-tiny") + " --ids 1,2 --embedding tt", "tt-token");
  one_line("run " + path("nothing") + " --ids 1", "does not exist");
}

}  // namespace
