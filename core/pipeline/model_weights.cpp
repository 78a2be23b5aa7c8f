// ModelWeights (see model_weights.h).
#include "pipeline/model_weights.h"

#include <filesystem>

#include "formats/array_pack.h"
#include "pipeline/compress.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"

namespace tsm {

ModelWeights ModelWeights::open(const std::string& model_path, const std::string& artifact_path, ContentCheck check) {
  std::optional<HfModelDir> dir;
  std::shared_ptr<const v1::Artifact> art;
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) {
    dir = HfModelDir::open(model_path);
  } else if (std::filesystem::exists(model_path, ec)) {
    if (!artifact_path.empty())
      throw Error("'" + model_path + "' is an artifact file; --artifact combines an artifact with a model directory");
    art = std::make_shared<v1::Artifact>(read_artifact(model_path, check));
  } else {
    throw Error("model '" + model_path + "' does not exist (expected an HF model directory or a .tsm artifact)");
  }
  if (!artifact_path.empty()) art = std::make_shared<v1::Artifact>(read_artifact(artifact_path, check));
  ModelWeights w = from_parts(std::move(dir), std::move(art));
  if (w.dir_ && w.artifact_) w.origin_ = "model dir '" + model_path + "' + artifact '" + artifact_path + "'";
  else if (w.dir_) w.origin_ = "model dir '" + model_path + "'";
  else w.origin_ = "artifact '" + model_path + "'";
  return w;
}

ModelWeights ModelWeights::from_parts(std::optional<HfModelDir> dir, std::shared_ptr<const v1::Artifact> artifact) {
  if (!dir && !artifact) throw Error("a model needs an HF model directory or an artifact");
  ModelWeights w;
  w.dir_ = std::move(dir);
  w.artifact_ = std::move(artifact);
  if (w.artifact_ && !w.artifact_->config_json().empty()) {
    try {
      w.config_ = nlohmann::json::parse(w.artifact_->config_json());
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(std::string("artifact's config_json is not valid JSON: ") + e.what());
    }
  } else if (w.dir_) {
    w.config_ = w.dir_->config();
  } else {
    throw Error("the artifact carries no config_json, so it is not a whole model; pass the model directory "
                "and give the artifact with --artifact");
  }
  w.origin_ = w.dir_ ? "model dir '" + w.dir_->dir() + "'" : "artifact";
  if (w.dir_ && w.artifact_) w.origin_ += " + artifact";
  return w;
}

std::optional<std::string> ModelWeights::tokenizer_json() const {
  if (artifact_ && !artifact_->tokenizer_json().empty()) return artifact_->tokenizer_json();
  if (dir_) {
    if (auto p = dir_->tokenizer_path()) return read_file(*p, size_t(256) << 20);
  }
  return std::nullopt;
}

const v1::CompressedTensor* ModelWeights::compressed(const std::string& name) const {
  if (!artifact_) return nullptr;
  for (const auto& t : artifact_->tensors())
    if (t.name() == name) return &t;
  return nullptr;
}

const v1::Array* ModelWeights::passthrough(const std::string& name) const {
  if (!artifact_) return nullptr;
  for (const auto& a : artifact_->passthrough())
    if (a.name() == name) return &a;
  return nullptr;
}

bool ModelWeights::has(const std::string& name) const {
  return compressed(name) || passthrough(name) || (dir_ && dir_->find(name));
}

void ModelWeights::missing(const std::string& name) const {
  throw Error(origin_ + " has no tensor '" + name + "'");
}

std::vector<int64_t> ModelWeights::shape(const std::string& name) const {
  if (const auto* c = compressed(name)) return std::vector<int64_t>(c->shape().begin(), c->shape().end());
  if (const auto* a = passthrough(name)) return array_shape(*a);
  if (dir_)
    if (const Tensor* t = dir_->find(name)) return t->shape;
  missing(name);
}

MatrixRM ModelWeights::matrix(const std::string& name) const {
  try {
    if (const auto* c = compressed(name)) return decode_tensor(*c);
    if (const auto* a = passthrough(name)) {
      check_array(*a);
      std::vector<float> v = unpack_f32(*a);
      auto s = array_shape(*a);
      int64_t rows = s.size() >= 2 ? s[0] : 1;
      int64_t cols = rows ? int64_t(v.size()) / rows : 0;
      return Eigen::Map<MatrixRM>(v.data(), rows, cols);
    }
    if (dir_)
      if (const Tensor* t = dir_->find(name)) return t->to_matrix();
  } catch (const Error& e) {
    throw Error("tensor '" + name + "' in " + origin_ + ": " + e.what());
  }
  missing(name);
}

std::vector<float> ModelWeights::vector(const std::string& name) const {
  auto s = shape(name);
  int64_t big = 0;
  for (int64_t d : s) big += d > 1;
  if (big > 1) throw Error("tensor '" + name + "' in " + origin_ + " should be a vector, has shape " + shape_str(s));
  MatrixRM m = matrix(name);
  return std::vector<float>(m.data(), m.data() + m.size());
}

}  // namespace tsm
