// Issue 16: what a tar upload may extract (total bytes, member bytes, member count, compression
// ratio, as the archive streams) and a model's config.json checked against its weights at upload.
// The pure check (core/pipeline/config_check) runs on fixture copies with edited configs; the
// server tests post real tars to a real server and assert the problem+json and that nothing of a
// refused upload remains (tmp/, blobs/, models/, the uploads table).
#include <sqlite3.h>

#include "support/test_paths.h"
#include "common/error.h"
#include "config/config.h"
#include "pipeline/config_check.h"
#include "pipeline/model_loader.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

std::string fixture(const std::string& name) { return std::string(TSM_FIXTURES_DIR) + "/" + name; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

/// A copy of fixture `name` (config.json and model.safetensors) under `dir`, with `edit` applied to
/// its config (a null value removes the key).
std::string model_copy(const std::string& dir, const std::string& name, const json& edit) {
  fs::create_directories(dir);
  fs::copy_file(fixture(name) + "/model.safetensors", dir + "/model.safetensors", fs::copy_options::overwrite_existing);
  json cfg = read_json(fixture(name) + "/config.json");
  for (auto it = edit.begin(); it != edit.end(); ++it) {
    if (it->is_null()) cfg.erase(it.key());
    else cfg[it.key()] = *it;
  }
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  return dir;
}

/// The `field` detail of check_model_config's error on the model in `dir` ("ok" when it passes).
std::string refused_field(const std::string& dir, std::string* message = nullptr) {
  try {
    check_model_config(ModelWeights::from_parts(HfModelDir::open(dir), nullptr));
  } catch (const FormatError& e) {
    if (message) *message = e.what();
    for (const auto& [k, v] : e.details())
      if (k == "field") return std::get<std::string>(v);
    return "(no field)";
  }
  return "ok";
}

}  // namespace

TEST(ConfigCheck, FixturesPass) {
  for (const char* m : {"gpt2-tiny", "opt-tiny", "llama-tiny", "gpt2-man", "llama-man"}) {
    ModelConfig c = check_model_config(ModelWeights::open(fixture(m)));
    EXPECT_GT(c.n_layer, 0) << m;
    EXPECT_FALSE(find_shape_mismatch(ModelWeights::open(fixture(m)), c)) << m;
  }
}

TEST(ConfigCheck, EachContradictionNamesItsField) {
  TempDir tmp;
  int n = 0;
  auto field = [&](const std::string& model, const json& edit, std::string* msg = nullptr) {
    return refused_field(model_copy(tmp.path + "/m" + std::to_string(n++), model, edit), msg);
  };
  std::string msg;
  // gpt2-tiny: vocab 1000, n_embd 64, 2 layers, 4 heads, n_positions 64, tied head.
  EXPECT_EQ(field("gpt2-tiny", {{"n_layer", 3}}, &msg), "n_layer");
  EXPECT_NE(msg.find("declares 3 layers, but the weights hold 2"), std::string::npos) << msg;
  EXPECT_EQ(field("gpt2-tiny", {{"n_layer", 1}}, &msg), "n_layer");  // a layer the config does not declare
  EXPECT_NE(msg.find("declares 1 layers, but the weights hold 2"), std::string::npos) << msg;
  EXPECT_EQ(field("gpt2-tiny", {{"vocab_size", 10}}, &msg), "vocab_size");
  EXPECT_NE(msg.find("'transformer.wte.weight', which has shape [1000,64]"), std::string::npos) << msg;
  EXPECT_EQ(field("gpt2-tiny", {{"n_embd", 32}}), "n_embd");
  EXPECT_EQ(field("gpt2-tiny", {{"n_positions", 32}}), "n_positions");
  EXPECT_EQ(field("gpt2-tiny", {{"n_inner", 100}}), "n_inner");
  EXPECT_EQ(field("gpt2-tiny", {{"activation_function", "swishy"}}, &msg), "activation_function");
  EXPECT_NE(msg.find("swishy"), std::string::npos) << msg;
  EXPECT_EQ(field("gpt2-tiny", {{"model_type", "bert"}}), "model_type");
  EXPECT_EQ(field("gpt2-tiny", {{"model_type", nullptr}}), "model_type");
  EXPECT_EQ(field("gpt2-tiny", {{"tie_word_embeddings", false}}), "tie_word_embeddings");  // no lm_head stored
  // opt-tiny and llama-tiny: the fields of their own config schema.
  const json opt = read_json(fixture("opt-tiny") + "/config.json");
  EXPECT_EQ(field("opt-tiny", {{"ffn_dim", opt["ffn_dim"].get<int>() + 8}}), "ffn_dim");
  EXPECT_EQ(field("opt-tiny", {{"hidden_size", opt["hidden_size"].get<int>() * 2}}), "hidden_size");
  EXPECT_EQ(field("opt-tiny", {{"num_hidden_layers", opt["num_hidden_layers"].get<int>() + 1}}), "num_hidden_layers");
  const json llama = read_json(fixture("llama-tiny") + "/config.json");
  EXPECT_EQ(field("llama-tiny", {{"intermediate_size", llama["intermediate_size"].get<int>() * 2}}), "intermediate_size");
  EXPECT_EQ(field("llama-tiny", {{"num_key_value_heads", llama["num_attention_heads"]}}), "num_key_value_heads");
  EXPECT_EQ(field("llama-tiny", {{"hidden_act", "gelu_fancy"}}), "hidden_act");
  EXPECT_EQ(field("llama-tiny", {{"vocab_size", llama["vocab_size"].get<int>() + 1}}), "vocab_size");
}

// The loader checks through the same function: it refuses what the upload check refuses, with the
// tensor and both shapes, and loads what the check passes.
TEST(ConfigCheck, LoaderAgreesWithTheCheck) {
  TempDir tmp;
  const std::string dir = model_copy(tmp.path + "/m", "gpt2-tiny", {{"vocab_size", 10}});
  try {
    load_transformer(ModelWeights::open(dir));
    FAIL() << "loaded a model whose config contradicts its weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [1000,64], expected [10,64]"), std::string::npos) << e.what();
  }
  const std::string three = model_copy(tmp.path + "/l3", "gpt2-tiny", {{"n_layer", 3}});
  EXPECT_THROW(load_transformer(ModelWeights::open(three)), Error);
  EXPECT_NO_THROW(load_transformer(ModelWeights::open(model_copy(tmp.path + "/ok", "gpt2-tiny", json::object()))));
}

TEST(UploadLimitsConfig, KeysEnvironmentAndRefusals) {
  TempDir tmp;
  const std::string f = tmp.path + "/c.json";
  std::ofstream(f) << "{\"upload_max_bytes\": 4096, \"tar_max_members\": 7, \"tar_max_ratio\": 12.5, "
                      "\"tar_max_member_bytes\": 2048, \"metrics_public\": true}";
  server::Config c = server::load_config_file(f);
  EXPECT_EQ(c.tar_max_members, 7);
  EXPECT_DOUBLE_EQ(c.tar_max_ratio, 12.5);
  EXPECT_TRUE(c.metrics_public);
  EXPECT_EQ(c.effective_tar_max_extracted_bytes(), 8192u);  // 0 = twice upload_max_bytes
  EXPECT_EQ(c.effective_tar_max_member_bytes(), 2048u);
  c.validate();
  ::setenv("TENSORSLM_TAR_MAX_EXTRACTED_BYTES", "123456", 1);
  ::setenv("TENSORSLM_METRICS_PUBLIC", "0", 1);
  server::apply_env(c);
  EXPECT_EQ(c.effective_tar_max_extracted_bytes(), 123456u);
  EXPECT_FALSE(c.metrics_public);
  ::setenv("TENSORSLM_TAR_MAX_RATIO", "lots", 1);
  EXPECT_THROW(server::apply_env(c), Error);
  ::unsetenv("TENSORSLM_TAR_MAX_RATIO");
  ::unsetenv("TENSORSLM_TAR_MAX_EXTRACTED_BYTES");
  ::unsetenv("TENSORSLM_METRICS_PUBLIC");
  c.tar_max_ratio = 0.5;
  EXPECT_THROW(c.validate(), Error);
  c.tar_max_ratio = 200;
  c.tar_max_members = 0;
  EXPECT_THROW(c.validate(), Error);
  c.tar_max_members = 10;
  EXPECT_NO_THROW(c.validate());
  std::ofstream(f) << "{\"tar_max_members\": \"many\"}";
  EXPECT_THROW(server::load_config_file(f), Error);
}

namespace {

/// Builds tars with Python's tarfile: make_tar(out, "w" | "w:gz", {"NAME=file:PATH" | "NAME=zeros:N" |
/// "NAME=random:N" | "NAME=text:STRING", ...}). Zeros stream (a 64 MiB member costs no memory).
const char* kMakeTar = R"PY(
import os, sys, tarfile
class Zeros:
    def __init__(self, n): self.left = n
    def read(self, k=-1):
        k = self.left if k < 0 else min(k, self.left)
        self.left -= k
        return bytes(k)
out, mode = sys.argv[1], sys.argv[2]
kw = {"compresslevel": 6} if mode.endswith("gz") else {}
with tarfile.open(out, mode, **kw) as t:
    for spec in sys.argv[3:]:
        name, rest = spec.split("=", 1)
        kind, arg = rest.split(":", 1)
        info = tarfile.TarInfo(name)
        if kind == "file":
            info.size = os.path.getsize(arg)
            with open(arg, "rb") as f: t.addfile(info, f)
        elif kind == "zeros":
            info.size = int(arg); t.addfile(info, Zeros(info.size))
        elif kind == "random":
            import io; d = os.urandom(int(arg)); info.size = len(d); t.addfile(info, io.BytesIO(d))
        else:
            import io; d = arg.encode(); info.size = len(d); t.addfile(info, io.BytesIO(d))
)PY";

class UploadChecks : public ::testing::Test {
 protected:
  void SetUp() override { write_bytes(tmp_.path + "/make_tar.py", kMakeTar); }

  std::string make_tar(const std::string& name, const std::string& mode, const std::vector<std::string>& entries) {
    std::string out = tmp_.path + "/" + name, cmd = "python3 " + tmp_.path + "/make_tar.py " + out + " " + mode;
    for (const auto& e : entries) cmd += " '" + e + "'";
    int rc = 0;
    sh(cmd, &rc);
    EXPECT_EQ(rc, 0) << cmd;
    std::ifstream in(out, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  /// The gpt2-tiny fixture's two model files under m/ (plus `more` entries).
  std::vector<std::string> model_entries(const std::string& config_path = "", std::vector<std::string> more = {}) {
    std::vector<std::string> e = {"m/config.json=file:" + (config_path.empty() ? fixture("gpt2-tiny") + "/config.json" : config_path),
                                  "m/model.safetensors=file:" + fixture("gpt2-tiny") + "/model.safetensors"};
    e.insert(e.end(), more.begin(), more.end());
    return e;
  }
  void start(std::vector<std::pair<std::string, std::string>> env = {}, std::vector<std::string> args = {}) {
    srv_ = std::make_unique<ServerProcess>(tmp_.path + "/data", std::move(env), std::move(args));
  }
  std::string dir() const { return srv_->data_dir(); }
  uint16_t port() const { return srv_->port(); }

  /// 413/422 problem+json, and nothing of the upload left on disk or in the database.
  json expect_refused(const std::string& body, int status, const std::string& needle) {
    auto r = POST(port(), "/v1/uploads?name=m", body, {{"Content-Type", "application/x-tar"}});
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json") << r.body;
    json j = json::object();
    if (r.header("content-type") == "application/problem+json") {
      j = r.js();
      EXPECT_EQ(j["status"], status);
      EXPECT_NE(j["detail"].get<std::string>().find(needle), std::string::npos) << r.body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(count_files(dir() + "/tmp"), 0);
    EXPECT_EQ(count_files(dir() + "/blobs"), 0);
    EXPECT_TRUE(!fs::exists(dir() + "/models") || fs::is_empty(dir() + "/models"));
    EXPECT_EQ(count_rows(dir() + "/tensorslm.db", "uploads"), 0);
    return j;
  }
  uint64_t metric(const std::string& name) {
    std::string m = GET(port(), "/metrics").body;
    auto at = m.find("\n" + name + " ");
    if (at == std::string::npos) {
      ADD_FAILURE() << "no metric " << name << " in\n" << m;
      return 0;
    }
    return std::stoull(m.substr(at + name.size() + 2));
  }

  TempDir tmp_;
  std::unique_ptr<ServerProcess> srv_;
};

}  // namespace

// The issue's bomb, scaled down: a fixture model plus 64 MiB of zeros in a ~140 KB .tar.gz was
// accepted and extracted in full. Now the ratio check stops it while it streams, long before the
// 64 MiB are written, and nothing of it remains.
TEST_F(UploadChecks, CompressionBombStopsEarlyAndLeavesNothing) {
  start();
  std::string bomb = make_tar("bomb.tar.gz", "w:gz", model_entries("", {"m/zeros.bin=zeros:67108864"}));
  ASSERT_LT(bomb.size(), 2u << 20);
  json j = expect_refused(bomb, 413, "expands more than 200 times");
  EXPECT_EQ(j.value("limit", ""), "tar_max_ratio");
  EXPECT_EQ(j.value("entry", ""), "m/zeros.bin");
  EXPECT_LT(j.value("extracted_bytes", uint64_t(0)), 32u << 20) << "extraction did not stop early";
  // The same model without the zeros, compressed, is accepted, and its extracted bytes are counted.
  EXPECT_EQ(metric("tensorslm_model_dir_bytes"), 0u);
  auto r = POST(port(), "/v1/uploads?name=m", make_tar("ok.tar.gz", "w:gz", model_entries()), {{"Content-Type", "application/gzip"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_GE(metric("tensorslm_model_dir_bytes"), fs::file_size(fixture("gpt2-tiny") + "/model.safetensors"));
  EXPECT_EQ(metric("tensorslm_model_dirs"), 1u);
  ASSERT_EQ(http_request(port(), http::verb::delete_, "/v1/uploads/" + r.js()["id"].get<std::string>()).status, 204);
  EXPECT_EQ(metric("tensorslm_model_dir_bytes"), 0u);
}

TEST_F(UploadChecks, MemberCountMemberSizeAndTotalBytes) {
  start({{"TENSORSLM_TAR_MAX_EXTRACTED_BYTES", "2000000"}},
        {"--tar-max-members", "4", "--tar-max-member-bytes", "1048576"});
  std::vector<std::string> many = model_entries("", {"m/a.txt=text:a", "m/b.txt=text:b", "m/c.txt=text:c"});
  json j = expect_refused(make_tar("many.tar", "w", many), 413, "more than 4 entries");
  EXPECT_EQ(j.value("limit", ""), "tar_max_members");
  EXPECT_EQ(j.value("max", 0), 4);
  j = expect_refused(make_tar("big.tar", "w", model_entries("", {"m/big.bin=random:1200000"})), 413, "m/big.bin");
  EXPECT_EQ(j.value("limit", ""), "tar_max_member_bytes");
  j = expect_refused(make_tar("total.tar", "w", model_entries("", {"m/x.bin=random:900000", "m/y.bin=random:900000"})), 413,
                     "bytes one upload may extract");
  EXPECT_EQ(j.value("limit", ""), "tar_max_extracted_bytes");
  EXPECT_LE(j.value("extracted_bytes", uint64_t(0)), 2000000u);
  // A sparse member (a few bytes in the archive, 1 GiB of holes once written) is refused as such.
  const std::string sp = tmp_.path + "/sparse/m";
  fs::create_directories(sp);
  fs::copy_file(fixture("gpt2-tiny") + "/config.json", sp + "/config.json");
  int rc = 0;
  sh("truncate -s 1G " + sp + "/holes.bin && printf x >> " + sp + "/holes.bin && tar -C " + tmp_.path +
         "/sparse -S -cf " + tmp_.path + "/sparse.tar m",
     &rc);
  ASSERT_EQ(rc, 0);
  std::ifstream sparse_in(tmp_.path + "/sparse.tar", std::ios::binary);
  j = expect_refused(std::string((std::istreambuf_iterator<char>(sparse_in)), {}), 422, "sparse file");
  EXPECT_EQ(j.value("entry", ""), "m/holes.bin");
  // Within every bound: accepted (4 entries, 0.7 MB).
  auto r = POST(port(), "/v1/uploads?name=m", make_tar("ok.tar", "w", model_entries("", {"m/a.txt=text:a", "m/b.txt=text:b"})));
  EXPECT_EQ(r.status, 201) << r.body;
}

// Issue 16, item 6: a config.json that contradicts its weights was accepted at upload (and
// whole-model jobs then "succeeded" without their quality section). Now a 422 names the field.
TEST_F(UploadChecks, ConfigThatContradictsTheWeightsIsRefused) {
  start();
  json base = read_json(fixture("gpt2-tiny") + "/config.json");
  int n = 0;
  auto with = [&](const json& edit) {
    json c = base;
    for (auto it = edit.begin(); it != edit.end(); ++it) c[it.key()] = *it;
    std::string p = tmp_.path + "/config" + std::to_string(n++) + ".json";
    std::ofstream(p) << c.dump();
    return make_tar("c" + std::to_string(n) + ".tar", "w", model_entries(p));
  };
  struct Case {
    json edit;
    std::string field, needle;
  } cases[] = {
      {{{"n_layer", 3}}, "n_layer", "declares 3 layers, but the weights hold 2"},
      {{{"vocab_size", 10}}, "vocab_size", "[1000,64]"},
      {{{"n_embd", 32}}, "n_embd", "transformer.wte.weight"},
      {{{"activation_function", "swishy"}}, "activation_function", "swishy"},
      {{{"model_type", "bert"}}, "model_type", "bert"},
  };
  for (const Case& c : cases) {
    json j = expect_refused(with(c.edit), 422, c.needle);
    EXPECT_EQ(j.value("field", ""), c.field) << j.dump();
    EXPECT_EQ(j.value("file", ""), "config.json") << j.dump();
  }
  auto r = POST(port(), "/v1/uploads?name=m", with(json::object()));
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(GET(port(), "/healthz").status, 200);
}
