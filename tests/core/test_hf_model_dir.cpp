// Tests for core/formats/hf_model_dir: the fixture model folders (GPT-2, OPT, Llama), a sharded folder
// built here from the GPT-2 fixture, broken folders, detect_format and load_tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/hf_model_dir.h"
#include "formats/npy.h"

namespace fs = std::filesystem;
using namespace tsm;

namespace {

const std::string kFix = TSM_FIXTURES_DIR;

std::span<const std::byte> as_bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("tsm_hf_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& f) const { return (path_ / f).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// Splits the GPT-2 fixture into two shards plus an index, as save_pretrained(max_shard_size=...) does.
void write_sharded_gpt2(const TempDir& d) {
  SafetensorsFile src = SafetensorsFile::open(kFix + "/gpt2-tiny/model.safetensors");
  std::vector<Tensor> a, b;
  nlohmann::json wm = nlohmann::json::object();
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    const Tensor& t = src.tensors()[i];
    bool first = i < src.tensors().size() / 2;
    (first ? a : b).push_back(t);
    wm[t.name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(d / "model-00001-of-00002.safetensors", a, {{"format", "pt"}});
  write_safetensors(d / "model-00002-of-00002.safetensors", b, {{"format", "pt"}});
  write_file_atomic(d / "model.safetensors.index.json", nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", wm}}.dump(1));
  fs::copy_file(kFix + "/gpt2-tiny/config.json", d / "config.json");
}

}  // namespace

TEST(HfModelDir, FindsEmbeddingByArchitecture) {
  struct Case {
    const char* dir;
    const char* type;
    const char* emb;
  } cases[] = {{"gpt2-tiny", "gpt2", "transformer.wte.weight"},
               {"opt-tiny", "opt", "model.decoder.embed_tokens.weight"},
               {"llama-tiny", "llama", "model.embed_tokens.weight"}};
  for (const auto& c : cases) {
    HfModelDir m = HfModelDir::open(kFix + "/" + c.dir);
    EXPECT_EQ(m.model_type(), c.type);
    EXPECT_EQ(m.embedding_name(), c.emb);
    const Tensor& e = m.at(m.embedding_name());
    EXPECT_EQ(e.shape, (std::vector<int64_t>{m.config()["vocab_size"].get<int64_t>(), 64}));
    EXPECT_FALSE(m.tokenizer_path().has_value());
    SafetensorsFile f = SafetensorsFile::open(kFix + "/" + c.dir + "/model.safetensors");
    EXPECT_EQ(m.tensor_names().size(), f.tensors().size());
  }
  HfModelDir m = HfModelDir::open(kFix + "/gpt2-tiny");
  expect_error([&] { m.at("transformer.nope"); }, "no tensor 'transformer.nope' in model directory");
}

TEST(HfModelDir, ShardedDirectoryMatchesTheSingleFile) {
  TempDir d;
  write_sharded_gpt2(d);
  HfModelDir single = HfModelDir::open(kFix + "/gpt2-tiny");
  HfModelDir sharded = HfModelDir::open(d.str());
  EXPECT_EQ(sharded.tensor_names(), single.tensor_names());
  for (const auto& name : single.tensor_names()) {
    const Tensor& x = single.at(name);
    const Tensor& y = sharded.at(name);
    EXPECT_EQ(x.shape, y.shape);
    ASSERT_EQ(x.bytes.size(), y.bytes.size());
    EXPECT_EQ(0, std::memcmp(x.bytes.data(), y.bytes.data(), x.bytes.size())) << name;
  }
  EXPECT_EQ(sharded.embedding_name(), "transformer.wte.weight");
  // The tensor outlives the directory object: its owner keeps the shard mapped.
  Tensor wte = load_tensor(d.str());
  EXPECT_EQ(wte.to_matrix(), single.at("transformer.wte.weight").to_matrix());
}

TEST(HfModelDir, BrokenShardIndexesAreRejected) {
  auto with_index = [](const std::string& index_json) {
    TempDir d;
    write_sharded_gpt2(d);
    write_file_atomic(d / "model.safetensors.index.json", index_json);
    HfModelDir::open(d.str());
  };
  expect_error([&] { with_index(R"({"weight_map": {"transformer.wte.weight": "model-00009-of-00009.safetensors"}})"); }, "is missing");
  expect_error([&] { with_index(R"({"weight_map": {"transformer.wte.weight": "model-00001-of-00002.safetensors"}})"); }, "does not hold it");
  expect_error([&] { with_index(R"({"weight_map": {"transformer.wte.weight": "../../etc/passwd"}})"); }, "not a plain file name");
  expect_error([&] { with_index(R"({"weight_map": {"transformer.wte.weight": 3}})"); }, "not a file name");
  expect_error([&] { with_index(R"({"metadata": {}})"); }, "weight_map");
  expect_error([&] { with_index(R"({"weight_map": )"); }, "not valid JSON");
}

TEST(HfModelDir, BrokenDirectoriesAreRejected) {
  {
    TempDir d;
    expect_error([&] { HfModelDir::open(d.str()); }, "has no config.json");
    write_file_atomic(d / "config.json", "{\"model_type\": \"gpt2\"");
    expect_error([&] { HfModelDir::open(d.str()); }, "not valid JSON");
    write_file_atomic(d / "config.json", "[1]");
    expect_error([&] { HfModelDir::open(d.str()); }, "not a JSON object");
    write_file_atomic(d / "config.json", "{\"model_type\": \"gpt2\"}");
    expect_error([&] { HfModelDir::open(d.str()); }, "neither model.safetensors nor");
    write_file_atomic(d / "pytorch_model.bin", "PK");
    expect_error([&] { HfModelDir::open(d.str()); }, "only pytorch_model.bin");
    write_file_atomic(d / "model.safetensors", std::string(8, '\xff'));
    expect_error([&] { HfModelDir::open(d.str()); }, "model.safetensors");
  }
  expect_error([&] { HfModelDir::open(kFix + "/does-not-exist"); }, "is not a directory");
}

TEST(HfModelDir, EmbeddingFallbackByNameAndTokenizer) {
  TempDir d;
  write_file_atomic(d / "config.json", R"({"model_type": "something-new"})");
  std::vector<Tensor> ts{Tensor::from_matrix("backbone.embed_tokens.weight", MatrixRM::Ones(10, 4)),
                         Tensor::from_matrix("backbone.norm.weight", MatrixRM::Ones(1, 4))};
  write_safetensors(d / "model.safetensors", ts);
  write_file_atomic(d / "tokenizer.json", "{}");
  HfModelDir m = HfModelDir::open(d.str());
  EXPECT_EQ(m.embedding_name(), "backbone.embed_tokens.weight");
  EXPECT_EQ(m.tokenizer_path().value(), d / "tokenizer.json");
  std::vector<Tensor> none{Tensor::from_matrix("a.weight", MatrixRM::Ones(2, 2))};
  write_safetensors(d / "model.safetensors", none);
  expect_error([&] { HfModelDir::open(d.str()).embedding_name(); }, "no token embedding found");
}

TEST(DetectFormat, ByMagicBytes) {
  std::string npy = npy_bytes(Tensor::from_matrix("x", MatrixRM::Ones(2, 2)));
  EXPECT_EQ(detect_format(as_bytes(npy.substr(0, 16))), "npy");
  std::vector<Tensor> ts{Tensor::from_matrix("x", MatrixRM::Ones(2, 2))};
  std::string st = safetensors_bytes(ts);
  EXPECT_EQ(detect_format(as_bytes(st.substr(0, 16))), "safetensors");
  EXPECT_EQ(detect_format(as_bytes("  \n[1.0, 2.0]")), "json");
  EXPECT_EQ(detect_format(as_bytes("{\"a\": {\"b\": 1}}")), "json");  // '{' then 7 bytes then '{': huge length, not safetensors
  std::string tar(512, '\0');
  std::memcpy(tar.data(), "model/config.json", 17);
  std::memcpy(tar.data() + 257, "ustar\0" "00", 8);
  EXPECT_EQ(detect_format(as_bytes(tar)), "tar");
  EXPECT_EQ(detect_format(as_bytes(std::string("\x1F\x8B\x08\x00\x00\x00", 6))), "tar");  // .tar.gz
  EXPECT_EQ(detect_format(as_bytes(std::string("\xFD" "7zXZ\x00\x00", 7))), "tar");          // .tar.xz
  EXPECT_EQ(detect_format(as_bytes(std::string("\x28\xB5\x2F\xFD\x00", 5))), "tar");        // .tar.zst
  EXPECT_EQ(detect_format(as_bytes(std::string("\x1F\x8B", 2))), "");                       // too short to tell
  EXPECT_EQ(detect_format(as_bytes("PK\x03\x04 zip file")), "");
  EXPECT_EQ(detect_format(as_bytes("")), "");
}

TEST(LoadTensor, FromEveryInputKind) {
  TempDir d;
  MatrixRM m = MatrixRM::Random(6, 4);
  write_npy(d / "m.npy", Tensor::from_matrix("m", m));
  EXPECT_EQ(load_tensor(d / "m.npy").to_matrix(), m);
  std::vector<Tensor> one{Tensor::from_matrix("only", m)};
  write_safetensors(d / "one.safetensors", one);
  EXPECT_EQ(load_tensor(d / "one.safetensors").name, "only");
  std::vector<Tensor> two{Tensor::from_matrix("a", m), Tensor::from_matrix("b", 2 * m)};
  write_safetensors(d / "two.safetensors", two);
  EXPECT_EQ(load_tensor(d / "two.safetensors", "b").to_matrix(), 2 * m);
  expect_error([&] { load_tensor(d / "two.safetensors"); }, "holds 2 tensors; pick one with --tensor (a, b)");
  expect_error([&] { load_tensor(d / "two.safetensors", "c"); }, "no tensor 'c'");
  EXPECT_EQ(load_tensor(kFix + "/opt-tiny").name, "model.decoder.embed_tokens.weight");
  EXPECT_EQ(load_tensor(kFix + "/opt-tiny", "model.decoder.embed_positions.weight").shape, (std::vector<int64_t>{66, 64}));
  write_file_atomic(d / "junk.bin", "this is not a tensor file at all");
  expect_error([&] { load_tensor(d / "junk.bin"); }, "neither .npy, .safetensors nor a model directory");
  write_file_atomic(d / "bad.npy", std::string("\x93NUMPY\x01\x00", 8));
  expect_error([&] { load_tensor(d / "bad.npy"); }, "bad.npy");
  expect_error([&] { load_tensor(d / "missing.npy"); }, "cannot open");
}
