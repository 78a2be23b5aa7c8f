// Where a model's tensors come from: an HF model directory, a whole-model artifact (compressed
// tensors + passthrough tensors + config.json + tokenizer.json), or an HF directory whose tensors
// are overridden by an artifact (e.g. an embedding-only tt-token artifact). Lookup order for a
// name: the artifact's compressed tensors, its passthrough tensors, then the HF directory.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "artifact.pb.h"
#include "common/matrix.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

class ModelWeights {
 public:
  /// `model_path`: an HF model directory or a whole-model artifact file (.tsm). `artifact_path`
  /// (optional): an artifact whose tensors replace those of the same name in the model.
  /// Throws tsm::Error naming the path when neither holds a config.json. Artifact files are checked
  /// against their content hash unless `check` is kSkip (the caller verified this file already).
  static ModelWeights open(const std::string& model_path, const std::string& artifact_path = "",
                           ContentCheck check = ContentCheck::kVerify);
  /// The same from parts already in memory (either may be absent, not both).
  static ModelWeights from_parts(std::optional<HfModelDir> dir, std::shared_ptr<const v1::Artifact> artifact);

  const nlohmann::json& config() const { return config_; }
  /// tokenizer.json text (the artifact's, else the directory's), when there is one.
  std::optional<std::string> tokenizer_json() const;
  /// "model dir 'x'", "artifact", "model dir 'x' + artifact": for error messages.
  const std::string& origin() const { return origin_; }

  bool has(const std::string& name) const;
  /// The compressed representation of `name` in the artifact, or nullptr.
  const v1::CompressedTensor* compressed(const std::string& name) const;
  /// Shape of `name` (the dense shape for compressed tensors). Throws tsm::Error naming it when absent.
  std::vector<int64_t> shape(const std::string& name) const;
  /// `name` as an f32 matrix (rows, cols) (1-D: one row), decoding compressed tensors through the
  /// method table. Throws tsm::Error "model ... has no tensor 'x'" when absent.
  MatrixRM matrix(const std::string& name) const;
  /// A 1-D tensor as floats; throws when absent or when it has more than one dimension of size > 1.
  std::vector<float> vector(const std::string& name) const;
  std::shared_ptr<const v1::Artifact> artifact() const { return artifact_; }

 private:
  const v1::Array* passthrough(const std::string& name) const;
  [[noreturn]] void missing(const std::string& name) const;

  std::optional<HfModelDir> dir_;
  std::shared_ptr<const v1::Artifact> artifact_;
  nlohmann::json config_;
  std::string origin_;
};

}  // namespace tsm
