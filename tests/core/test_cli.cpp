// End-to-end tests of the offline `tensorslm` CLI (compress, inspect, decompress, export, methods)
// on a generated matrix: the binary runs as a separate process in a temp dir; what it reports is
// checked against what the decompressed file really holds.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "support/cli_fixture.h"
#include "common/sha256.h"
#include "formats/npy.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace tsm;

namespace {

using Result = test::CliResult;
class Cli : public test::CliTest {};

// Rows of unequal difficulty: a smooth low-rank part (as a decaying spectrum) plus per-row noise of varying size.
MatrixRM generated_matrix(int rows, int cols, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  MatrixRM U(rows, 8), V(8, cols);
  for (int i = 0; i < U.size(); ++i) U.data()[i] = n(g);
  for (int k = 0; k < 8; ++k)
    for (int j = 0; j < cols; ++j) V(k, j) = n(g) * std::pow(0.6f, static_cast<float>(k));
  MatrixRM W = U * V;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) W(i, j) += 0.02f * static_cast<float>(i % 7) * n(g);
  return W;
}

double rel_error(const MatrixRM& a, const MatrixRM& b) { return (a - b).cast<double>().norm() / a.cast<double>().norm(); }

}  // namespace

TEST_F(Cli, CompressInspectDecompressAgree) {
  MatrixRM W = generated_matrix(300, 96, 1);
  write_npy(path("w.npy"), Tensor::from_matrix("w", W));

  Result c = run("compress w.npy --method tt-token --shape 4,4,6 --ranks 3,3 -o w.tsm --json");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 1) << "--json prints one JSON object on one line";
  json j = json::parse(c.out);
  EXPECT_EQ(j["method"], "tt-token");
  EXPECT_EQ(j["params"]["shape"], json({4, 4, 6}));
  EXPECT_EQ(j["params"]["ranks"], json({3, 3}));
  EXPECT_EQ(j["shape"], json({300, 96}));
  for (const char* k : {"bytes", "ratio", "rel_error", "cos_mean", "cos_min", "cos_p01", "seconds", "sha256"}) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["ratio"].get<double>(), 1.0);
  double reported = j["rel_error"].get<double>();
  EXPECT_GT(reported, 0.0);
  EXPECT_LT(reported, 1.0);
  EXPECT_LE(j["cos_min"].get<double>(), j["cos_p01"].get<double>());
  EXPECT_LE(j["cos_p01"].get<double>(), j["cos_mean"].get<double>());
  std::set<std::string> baselines;
  for (const auto& b : j["baselines"]) baselines.insert(b["method"].get<std::string>());
  EXPECT_TRUE(baselines.count("fp16") && baselines.count("int8-row")) << j["baselines"].dump();
  EXPECT_EQ(j["sha256"].get<std::string>(), sha256_file(path("w.tsm")));

  // inspect --json reports the same numbers as compress did.
  Result i = run("inspect w.tsm --json");
  ASSERT_EQ(i.rc, 0) << i.err;
  json ij = json::parse(i.out);
  ASSERT_EQ(ij["tensors"].size(), 1u);
  EXPECT_EQ(ij["tensors"][0]["metrics"]["rel_error"], j["rel_error"]);
  EXPECT_EQ(ij["tensors"][0]["metrics"]["stored_bytes"], j["bytes"]);
  EXPECT_EQ(ij["total"]["stored_bytes"], j["bytes"]);
  EXPECT_EQ(ij["passthrough"]["count"], 0);
  EXPECT_EQ(ij["sha256"], j["sha256"]);

  // The readable table puts the baselines beside the result.
  Result t = run("inspect w.tsm");
  ASSERT_EQ(t.rc, 0) << t.err;
  for (const char* s : {"tt-token *", "fp16", "int8-row", "rel_error", "core_0", "total"}) EXPECT_NE(t.out.find(s), std::string::npos) << s << "\n" << t.out;

  // The decompressed matrix has exactly the reported error.
  Result d = run("decompress w.tsm -o back.npy");
  ASSERT_EQ(d.rc, 0) << d.err;
  MatrixRM B = read_npy(path("back.npy")).to_matrix();
  ASSERT_EQ(B.rows(), 300);
  ASSERT_EQ(B.cols(), 96);
  EXPECT_NEAR(rel_error(W, B), reported, 1e-5 * reported + 1e-7);

  Result ds = run("decompress w.tsm -o back.safetensors");
  ASSERT_EQ(ds.rc, 0) << ds.err;
  EXPECT_EQ(SafetensorsFile::open(path("back.safetensors")).at("w").to_matrix(), B);
}

TEST_F(Cli, EpsAndRatioModesKeepTheirPromises) {
  MatrixRM W = generated_matrix(200, 64, 2);
  write_npy(path("w.npy"), Tensor::from_matrix("w", W));
  Result e = run("compress w.npy --shape 4,4,4 --eps 0.05 -o e.tsm --json --no-baselines");
  ASSERT_EQ(e.rc, 0) << e.err;
  json ej = json::parse(e.out);
  EXPECT_LE(ej["rel_error"].get<double>(), 0.05 + 1e-6);  // per-row bound => whole-matrix bound
  ASSERT_EQ(run("decompress e.tsm -o e.npy").rc, 0);
  EXPECT_LE(rel_error(W, read_npy(path("e.npy")).to_matrix()), 0.05 + 1e-6);

  Result r = run("compress w.npy --shape 4,4,4 --ratio 3 -o r.tsm --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json rj = json::parse(r.out);
  EXPECT_GE(rj["ratio"].get<double>(), 3.0 - 1e-9);
  EXPECT_LE(rj["bytes"].get<uint64_t>(), 200u * 64 * 4 / 3);
}

TEST_F(Cli, ReadsSafetensorsAndModelDirectories) {
  std::vector<Tensor> ts{Tensor::from_matrix("a", generated_matrix(64, 32, 3)), Tensor::from_matrix("b", generated_matrix(40, 32, 4))};
  write_safetensors(path("two.safetensors"), ts);
  Result c = run("compress two.safetensors --tensor b --shape 4,8 --ranks 2 -o b.tsm --json");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(json::parse(c.out)["tensor"], "b");
  Result m = run("compress '" + std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny' --ranks 2,2 -o g.tsm --json");
  ASSERT_EQ(m.rc, 0) << m.err;
  json mj = json::parse(m.out);
  EXPECT_EQ(mj["tensor"], "transformer.wte.weight");
  EXPECT_EQ(mj["shape"], json({1000, 64}));
  // On random embeddings TT at 2x loses to fp16 at the same size; the readable output must say so.
  Result h = run("compress '" + std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny' --ratio 2 -o g2.tsm");
  ASSERT_EQ(h.rc, 0) << h.err;
  EXPECT_NE(h.out.find("note: fp16 at"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("int8-row"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("weight error is not model quality"), std::string::npos) << h.out;
  EXPECT_EQ(h.out.find("warning:"), std::string::npos) << h.out;  // 2x: not larger than fp16
  // Full ranks store more than the dense tensor: the output says so.
  Result big = run("compress '" + std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny' --shape 8,8 --ranks 8 --no-baselines -o big.tsm");
  ASSERT_EQ(big.rc, 0) << big.err;
  EXPECT_NE(big.out.find("warning:"), std::string::npos) << big.out;
  // Export: the cores as named tensors readable by any safetensors reader.
  Result x = run("export g.tsm -o g.safetensors");
  ASSERT_EQ(x.rc, 0) << x.err;
  SafetensorsFile f = SafetensorsFile::open(path("g.safetensors"));
  EXPECT_NE(f.find("transformer.wte.weight/core_0"), nullptr);
  EXPECT_EQ(json::parse(f.metadata().at("tensorslm.tensor.transformer.wte.weight"))["shape"], json({1000, 64}));
}

TEST_F(Cli, MethodsListsTheTable) {
  Result r = run("methods --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  bool found = false;
  for (const auto& m : j)
    if (m["name"] == "tt-token") {
      found = true;
      EXPECT_TRUE(m["params"].contains("properties"));
    }
  EXPECT_TRUE(found) << r.out;
  Result t = run("methods");
  EXPECT_EQ(t.rc, 0);
  EXPECT_NE(t.out.find("tt-token"), std::string::npos);
}

TEST_F(Cli, BadInputsGiveOneLineAndNonZeroExit) {
  write_npy(path("w.npy"), Tensor::from_matrix("w", generated_matrix(50, 24, 5)));
  expect_one_line_error("compress missing.npy -o x.tsm", "missing.npy");
  expect_one_line_error("compress w.npy --method nope -o x.tsm", "unknown method 'nope'");
  expect_one_line_error("compress w.npy --shape 5,5 -o x.tsm", "shape");
  expect_one_line_error("compress w.npy --shape 4,x -o x.tsm", "--shape");
  expect_one_line_error("compress w.npy --param oops -o x.tsm", "key=value");
  write_file_atomic(path("bad.npy"), std::string("\x93NUMPY\x01\x00\x10\x00{'descr': '>f4'", 24));
  expect_one_line_error("compress bad.npy -o x.tsm", "bad.npy");
  write_file_atomic(path("junk.tsm"), "definitely not an artifact");
  expect_one_line_error("inspect junk.tsm", "junk.tsm");
  expect_one_line_error("decompress junk.tsm -o y.npy", "junk.tsm");
  ASSERT_EQ(run("compress w.npy --shape 4,6 --ranks 2 -o w.tsm").rc, 0);
  expect_one_line_error("decompress w.tsm -o y.txt", ".npy or .safetensors");
  expect_one_line_error("decompress w.tsm -o y.npy --tensor nope", "no tensor 'nope'");
  std::string art = read_file(path("w.tsm"));
  write_file_atomic(path("cut.tsm"), art.substr(0, art.size() / 2));
  expect_one_line_error("inspect cut.tsm", "cut.tsm");
  EXPECT_FALSE(fs::exists(path("x.tsm"))) << "a failed compress leaves no output";
  expect_one_line_error("compress w.npy --ranks 2 --eps 0.1 -o z.tsm", "give only one");
}
