// A Hugging Face model directory: config.json, model.safetensors or model.safetensors.index.json
// with shards, optionally tokenizer.json. Tensors stay memory-mapped.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace tsm {

class HfModelDir {
 public:
  /// Opens `dir`. Throws tsm::Error naming the missing or malformed file.
  static HfModelDir open(const std::string& dir);

  const nlohmann::json& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  /// config["model_type"] ("gpt2", "opt", "llama", ...); empty when absent.
  std::string model_type() const;
  std::vector<std::string> tensor_names() const;
  const Tensor* find(std::string_view name) const;
  /// Throws tsm::Error naming the tensor and the model directory.
  const Tensor& at(std::string_view name) const;
  /// The token embedding's name by architecture (transformer.wte.weight, model.decoder.embed_tokens.weight,
  /// model.embed_tokens.weight), else the first tensor whose name ends in wte.weight/embed_tokens.weight.
  std::string embedding_name() const;
  /// Path of tokenizer.json when present.
  std::optional<std::string> tokenizer_path() const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const Tensor*, std::less<>> index_;  ///< name -> tensor inside one of shards_
};

/// What a path or an upload holds, detected from the first bytes: "npy", "safetensors", "tar" (also
/// a gzip, xz or zstd stream, which only a compressed tar may be), "json" or "" when unknown. 16 bytes are enough for npy/safetensors/json; tar needs 262 (ustar magic at 257).
std::string detect_format(std::span<const std::byte> head);

/// Loads one 2-D-able tensor from a .npy, a .safetensors or an HF model directory. `name` picks the
/// tensor (required when a file has several, except model dirs, where the embedding is the default);
/// a .npy tensor is named `name` or else the file's stem (w.npy -> "w").
Tensor load_tensor(const std::string& path, const std::string& name = "");

}  // namespace tsm
