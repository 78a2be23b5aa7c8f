// Fuzz target: a Hugging Face config.json, as an upload's model directory is checked
// (core/model/model_config parse_model_config; core/pipeline/config_check check_model_config
// against real weights). The input is the config.json text; it is checked against the weights of
// the tiny fixture of its model_type (opt-tiny, llama-tiny, else gpt2-tiny), through HfModelDir::open
// of a scratch directory holding this config.json and a link to the fixture's model.safetensors.
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/error.h"
#include "formats/hf_model_dir.h"
#include "fuzz_util.h"
#include "model/model_config.h"
#include "pipeline/config_check.h"
#include "pipeline/model_weights.h"

namespace fs = std::filesystem;

namespace {

/// scratch/<fixture>/ with model.safetensors linked to the fixture's.
const std::string& model_dir(const std::string& fixture) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(fixture);
  if (it != dirs.end()) return it->second;
  std::string d = tsm::fuzz::scratch_dir("hf_config") + "/" + fixture;
  fs::create_directories(d);
  fs::create_symlink(std::string(TSM_FIXTURES_DIR) + "/" + fixture + "/model.safetensors", d + "/model.safetensors");
  return dirs.emplace(fixture, d).first->second;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  const auto text = fuzz::text(data, size);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);  // HfModelDir turns a parse error into a FormatError
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    ModelConfig c = parse_model_config(j);
    if (c.vocab <= 0 || c.d_model <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_kv_head <= 0 || c.head_dim <= 0 ||
        c.d_ff <= 0 || c.n_head % c.n_kv_head != 0)
      fuzz::finding("hf_config: parse_model_config returned a config that breaks its invariant");
    (void)expected_tensors(c);
    (void)c.param_count();
  } catch (const Error&) {
  }
  std::string fixture = "gpt2-tiny";
  if (j.is_object() && j.contains("model_type") && j["model_type"].is_string()) {
    const auto& t = j["model_type"].get_ref<const std::string&>();
    if (t == "opt") fixture = "opt-tiny";
    else if (t == "llama") fixture = "llama-tiny";
  }
  const std::string& dir = model_dir(fixture);
  fuzz::write_file(dir + "/config.json", text);
  try {
    auto m = HfModelDir::open(dir);
    (void)check_model_config(ModelWeights::from_parts(std::move(m), nullptr));
  } catch (const Error&) {
  }
  return 0;
}
