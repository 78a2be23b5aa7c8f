// End-to-end tests of artifact integrity and determinism through the `tensorslm` binary: compress
// gives byte-identical files twice and whatever --threads (compress-model whatever the OpenMP thread
// count); inspect reports verified / unverified (text and JSON); a corrupted or truncated artifact
// is one "error:" line and exit 1 from inspect, decompress, export, eval and run; run hashes a file
// once per file identity (the cache in $XDG_CACHE_HOME) and again after the file changes; ModelWeights
// skips the check only when its caller verified the file.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"
#include "pipeline/model_weights.h"
#include "support/cli_fixture.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace tsm;

namespace {

using test::CliResult;

class IntegrityCli : public test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ::setenv("XDG_CACHE_HOME", path("cache").c_str(), 1);  // the run cache of this test only
  }
  void TearDown() override {
    ::unsetenv("XDG_CACHE_HOME");
    CliTest::TearDown();
  }
  /// A tt-token artifact of the gpt2-tiny embedding (the model `run` and `eval` take it with).
  std::string tt_artifact(const std::string& name, int threads = 1) {
    const std::string out = path(name);
    CliResult r = run("compress " + fixture("gpt2-tiny") + " --method tt-token --shape 4,4,4 --ranks 2,2 --threads " +
                      std::to_string(threads) + " -o " + out);
    EXPECT_EQ(r.rc, 0) << r.err;
    return out;
  }
  /// XORs one byte of `file` in place (same inode, same size).
  static void flip(const std::string& file, size_t at) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char ch = 0;
    f.get(ch);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(ch ^ 0x5a));
  }
  std::string run_args(const std::string& art) const {
    return "run " + fixture("gpt2-tiny") + " --artifact " + art + " --ids 1,2,3 --max-new-tokens 2 --threads 1 --json";
  }
};

TEST_F(IntegrityCli, CompressGivesIdenticalFilesTwiceAndWhateverTheThreadCount) {
  const std::string a = read_file(tt_artifact("a.tsm", 1)), b = read_file(tt_artifact("b.tsm", 2)),
                    c = read_file(tt_artifact("c.tsm", 2));
  EXPECT_EQ(a, b) << "--threads 1 and --threads 2 differ";
  EXPECT_EQ(b, c) << "two runs differ";
  // Whole models with quality measured (every reference representation too): the same bytes with 1
  // or 2 OpenMP threads.
  for (const char* method : {"int8", "q4_0"}) {
    std::string img[2];
    for (int t = 0; t < 2; ++t) {
      const std::string out = path(std::string(method) + std::to_string(t) + ".tsm");
      ::setenv("OMP_NUM_THREADS", t ? "2" : "1", 1);
      CliResult r = run("compress-model " + fixture("gpt2-tiny") + " --tensors mlp --method " + method +
                        " --eval --eval-tokens 32 --eval-length 16 -o " + out);
      ::unsetenv("OMP_NUM_THREADS");
      ASSERT_EQ(r.rc, 0) << r.err;
      img[t] = read_file(out);
    }
    EXPECT_EQ(img[0], img[1]) << method << ": 1 and 2 OpenMP threads differ";
  }
}

TEST_F(IntegrityCli, InspectReportsVerifiedAndUnverified) {
  const std::string art = tt_artifact("emb.tsm");
  CliResult r = run("inspect " + art);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("integrity    verified (content sha256 "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(" at unix "), std::string::npos) << "creation time is not in the artifact any more";
  json j = run_json("inspect " + art + " --json");
  EXPECT_EQ(j["integrity"]["state"], "verified");
  EXPECT_EQ(j["integrity"]["content_sha256"].get<std::string>().size(), 64u);
  EXPECT_FALSE(j.contains("created_unix"));

  // The same artifact as a writer before content hashes wrote it: still readable, reported unverified.
  const std::string old = path("old.tsm");
  write_file_atomic(old, read_artifact(art).SerializeAsString());
  r = run("inspect " + old);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("integrity    unverified"), std::string::npos) << r.out;
  j = run_json("inspect " + old + " --json");
  EXPECT_EQ(j["integrity"]["state"], "unverified");
  EXPECT_FALSE(j["integrity"].contains("content_sha256"));
  EXPECT_EQ(run("decompress " + old + " -o " + path("old.npy")).rc, 0);
  json ran = run_json(run_args(old));
  EXPECT_EQ(ran["artifacts"][0]["integrity"], "unverified");
}

TEST_F(IntegrityCli, CorruptedOrTruncatedArtifactsAreOneLineErrors) {
  const std::string art = tt_artifact("emb.tsm");
  const std::string bad = path("bad.tsm"), cut = path("cut.tsm");
  fs::copy_file(art, bad);
  const auto n = fs::file_size(bad);
  flip(bad, n / 2);  // two bytes in the middle: array data
  flip(bad, n / 2 + 17);
  const std::string img = read_file(art);
  write_file_atomic(cut, img.substr(0, img.size() - 100));
  for (const std::string& cmd : {"inspect " + bad, "inspect " + bad + " --json", "decompress " + bad + " -o " + path("x.npy"),
                                 "export " + bad + " -o " + path("x.safetensors"),
                                 "eval " + fixture("gpt2-tiny") + " --artifact " + bad + " --samples 1 --length 8",
                                 run_args(bad)}) {
    SCOPED_TRACE(cmd);
    expect_one_line_error(cmd, "content hash mismatch");
  }
  expect_one_line_error("inspect " + cut, "truncated");
  expect_one_line_error(run_args(cut), "truncated");
  EXPECT_FALSE(fs::exists(path("x.npy")));
}

// ModelWeights::open checks the content hash unless its caller says it did (the agent, once after
// each download): a corrupted file is refused by default and loads only with ContentCheck::kSkip.
TEST_F(IntegrityCli, ModelWeightsSkipsTheHashOnlyWhenTheCallerVerified) {
  const std::string art = tt_artifact("emb.tsm");
  const std::string bad = path("bad.tsm");
  fs::copy_file(art, bad);
  flip(bad, fs::file_size(bad) / 2);  // array data: still a well-formed artifact
  try {
    ModelWeights::open(fixture("gpt2-tiny"), bad);
    ADD_FAILURE() << "a corrupted artifact was opened with the default check";
  } catch (const tsm::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("content hash mismatch"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ModelWeights::open(fixture("gpt2-tiny"), bad, ContentCheck::kSkip));
  EXPECT_NO_THROW(ModelWeights::open(fixture("gpt2-tiny"), art));
}

// `run` hashes once per file identity; the second load of the unchanged file skips the hash, a
// changed file (same inode and size, new ctime) is hashed again and its corruption found.
TEST_F(IntegrityCli, RunHashesOncePerFileIdentity) {
  const std::string art = tt_artifact("emb.tsm");
  // A file changed within the last 2 s is never recorded (a write in the same timestamp tick could
  // follow unseen), so let this one age first.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  json first = run_json(run_args(art));
  ASSERT_EQ(first["artifacts"].size(), 1u) << first.dump();
  EXPECT_EQ(first["artifacts"][0]["integrity"], "verified");
  EXPECT_EQ(first["artifacts"][0]["cached"], false);
  EXPECT_TRUE(fs::exists(path("cache/tensorslm/verified-artifacts")));
  json second = run_json(run_args(art));
  EXPECT_EQ(second["artifacts"][0]["integrity"], "verified");
  EXPECT_EQ(second["artifacts"][0]["cached"], true);
  EXPECT_EQ(second["generated_ids"], first["generated_ids"]);
  // eval always hashes (it takes no cache); it agrees the file is fine.
  EXPECT_EQ(run("eval " + fixture("gpt2-tiny") + " --artifact " + art + " --samples 1 --length 8").rc, 0);

  flip(art, fs::file_size(art) / 2);
  expect_one_line_error(run_args(art), "content hash mismatch");
}

}  // namespace
