// The model runtime against Hugging Face transformers: the three fixture models (gpt2, opt, llama)
// must give the reference logits within 1e-4 and the same greedy ids; the KV cache must not change
// the logits; corrupted configs and missing tensors give errors that name the field or tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "model/generate.h"
#include "model/model_config.h"
#include "pipeline/model_loader.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace tsm;

namespace {

std::string fixture(const std::string& name) { return std::string(TSM_FIXTURES_DIR) + "/" + name; }

json read_json(const std::string& path) { return json::parse(read_file(path)); }

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

class ModelReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelReference, LogitsMatchTransformers) {
  const std::string dir = fixture(GetParam());
  auto net = load_transformer(ModelWeights::open(dir));
  json ref = read_json(dir + "/reference.json");
  auto ids = ids_of(ref["input_ids"]);
  MatrixRM expected = read_npy(dir + "/reference_logits.npy").to_matrix();
  ASSERT_EQ(expected.rows(), int64_t(ids.size()));
  ASSERT_EQ(expected.cols(), net->cfg.vocab);

  KvCache cache = net->new_cache();
  MatrixRM logits(ids.size(), net->cfg.vocab);
  net->forward(ids, cache, logits.data(), true);
  const double max_diff = (logits - expected).cwiseAbs().maxCoeff();
  std::printf("%s: max |logits - reference| = %.3g (max |reference| = %.3g)\n", GetParam().c_str(), max_diff,
              double(expected.cwiseAbs().maxCoeff()));
  EXPECT_LT(max_diff, 1e-4);
}

TEST_P(ModelReference, GreedyIdsMatchTransformers) {
  const std::string dir = fixture(GetParam());
  auto net = load_transformer(ModelWeights::open(dir));
  json g = read_json(dir + "/reference.json")["greedy"];
  auto prompt = ids_of(g["prompt_ids"]);
  auto expected = ids_of(g["generated_ids"]);
  GenerateOptions opt;
  opt.max_new_tokens = int(expected.size());
  opt.stop_at_eos = false;  // the reference runs a fixed number of steps
  auto r = generate(*net, prompt, opt);
  EXPECT_EQ(r.generated, expected);
}

TEST_P(ModelReference, KvCacheIncrementalEqualsFullSequence) {
  const std::string dir = fixture(GetParam());
  auto net = load_transformer(ModelWeights::open(dir));
  auto ids = ids_of(read_json(dir + "/reference.json")["input_ids"]);
  const int64_t n = int64_t(ids.size()), V = net->cfg.vocab;
  MatrixRM full(n, V);
  KvCache c1 = net->new_cache();
  net->forward(ids, c1, full.data(), true);

  // Token by token.
  MatrixRM step(n, V);
  KvCache c2 = net->new_cache();
  for (int64_t i = 0; i < n; ++i) net->forward(std::span<const int32_t>(&ids[i], 1), c2, step.row(i).data(), false);
  EXPECT_LT((step - full).cwiseAbs().maxCoeff(), 1e-4);

  // A chunk of 7 then the rest, last-row logits only.
  KvCache c3 = net->new_cache();
  std::vector<float> first(7 * V), last(V);
  net->forward(std::span<const int32_t>(ids.data(), 7), c3, first.data(), true);
  net->forward(std::span<const int32_t>(ids.data() + 7, n - 7), c3, last.data(), false);
  EXPECT_EQ(c3.len, n);
  double d = 0;
  for (int64_t j = 0; j < V; ++j) d = std::max(d, double(std::abs(last[j] - full(n - 1, j))));
  EXPECT_LT(d, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelReference, ::testing::Values("gpt2-tiny", "opt-tiny", "llama-tiny"));

// A copy of a fixture directory whose config.json / tensors a test may change.
struct TempModel {
  fs::path dir;
  explicit TempModel(const std::string& name) {
    dir = fs::temp_directory_path() / ("tsm_model_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(dir);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixture(name) + "/" + f, dir / f);
    fs::permissions(dir / "config.json", fs::perms::owner_write, fs::perm_options::add);
  }
  ~TempModel() { fs::remove_all(dir); }
  static int& counter() { static int c = 0; return c; }
  json config() const { return read_json((dir / "config.json").string()); }
  void write_config(const json& j) const {
    fs::remove(dir / "config.json");
    write_file_atomic((dir / "config.json").string(), j.dump());
  }
  void drop_tensor(const std::string& name) const {
    auto f = SafetensorsFile::open((dir / "model.safetensors").string());
    std::vector<Tensor> keep;
    for (const auto& t : f.tensors())
      if (t.name != name) keep.push_back(t);
    std::string bytes = safetensors_bytes(keep);
    fs::remove(dir / "model.safetensors");
    write_file_atomic((dir / "model.safetensors").string(), bytes);
  }
};

std::string load_error(const std::string& dir) {
  try {
    load_transformer(ModelWeights::open(dir));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelErrors, CorruptedConfigNamesTheField) {
  struct Case {
    const char* fixture;
    const char* field;
    json value;  // null: remove the field
  };
  const Case cases[] = {
      {"gpt2-tiny", "n_embd", nullptr},
      {"gpt2-tiny", "n_head", "four"},
      {"gpt2-tiny", "n_head", 5},  // does not divide 64
      {"gpt2-tiny", "activation_function", "mish"},
      {"gpt2-tiny", "model_type", "bert"},
      {"opt-tiny", "ffn_dim", -3},
      {"opt-tiny", "do_layer_norm_before", "yes"},
      {"llama-tiny", "num_key_value_heads", 3},
      {"llama-tiny", "rms_norm_eps", "small"},
      {"llama-tiny", "vocab_size", 0},
      {"gpt2-tiny", "n_embd", int64_t(1) << 40},  // sizes past 2^31 - 1 (their products overflowed int64)
      {"llama-tiny", "intermediate_size", int64_t(1) << 31},
  };
  for (const auto& c : cases) {
    TempModel m(c.fixture);
    json cfg = m.config();
    if (c.value.is_null()) cfg.erase(c.field);
    else cfg[c.field] = c.value;
    m.write_config(cfg);
    std::string err = load_error(m.dir.string());
    EXPECT_NE(err.find(c.field), std::string::npos) << c.fixture << " " << c.field << ": " << err;
  }
  // Sizes each in range whose parameter count does not fit int64: refused, not wrapped (UB).
  {
    ModelConfig big = parse_model_config(json::parse(read_file(fixture("gpt2-tiny") + "/config.json")));
    big.vocab = big.d_model = big.embed_dim = big.d_ff = (int64_t(1) << 31) - 1;
    big.n_layer = (int64_t(1) << 31) - 1;
    EXPECT_THROW(big.param_count(), FormatError);
  }
  // Not JSON at all.
  TempModel m("gpt2-tiny");
  fs::remove(m.dir / "config.json");
  write_file_atomic((m.dir / "config.json").string(), "{\"model_type\": \"gpt2\", ");
  EXPECT_NE(load_error(m.dir.string()).find("config.json"), std::string::npos);
}

TEST(ModelErrors, MissingTensorIsNamed) {
  for (auto [fx, name] : {std::pair{"gpt2-tiny", "transformer.h.1.mlp.c_fc.weight"},
                          std::pair{"opt-tiny", "model.decoder.layers.0.self_attn.k_proj.bias"},
                          std::pair{"llama-tiny", "lm_head.weight"},
                          std::pair{"llama-tiny", "model.norm.weight"}}) {
    TempModel m(fx);
    m.drop_tensor(name);
    std::string err = load_error(m.dir.string());
    EXPECT_NE(err.find(name), std::string::npos) << err;
  }
}

TEST(ModelErrors, ShapeMismatchIsNamed) {
  TempModel m("gpt2-tiny");
  json cfg = m.config();
  cfg["n_inner"] = 128;  // checkpoint has 256
  m.write_config(cfg);
  std::string err = load_error(m.dir.string());
  EXPECT_NE(err.find("transformer.h.0.mlp.c_fc.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("[64,128]"), std::string::npos) << err;
}

TEST(ModelErrors, SequenceLongerThanContext) {
  auto net = load_transformer(ModelWeights::open(fixture("gpt2-tiny")));
  KvCache cache = net->new_cache(100);
  std::vector<int32_t> ids(65, 1);
  std::vector<float> logits(net->cfg.vocab);
  EXPECT_THROW(net->forward(ids, cache, logits.data(), false), Error);
  std::vector<int32_t> bad{5, 1000};
  KvCache c2 = net->new_cache();
  EXPECT_THROW(net->forward(bad, c2, logits.data(), false), Error);
}

}  // namespace
