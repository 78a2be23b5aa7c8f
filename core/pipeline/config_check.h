// A model's config.json checked against its weights, before anything runs on them: the config
// parses for the runtime (known model_type and activation, sizes in range), every tensor the
// runtime reads exists with the shape the config implies, and the weights hold no layer beyond
// the declared count. The expected shapes live here only: the loader (model_loader.cpp) checks
// through find_shape_mismatch() too. Pure and cheap: reads tensor shapes, never tensor data.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/arch_table.h"
#include "model/model_config.h"
#include "pipeline/model_weights.h"

namespace tsm {

/// The config quantity a tensor dimension comes from (names the config.json field at fault).
enum class ShapeDim { kVocab, kDModel, kEmbedDim, kPositions, kQDim, kKvDim, kQkvDim, kFF };

struct ExpectedTensor {
  Role role;
  int64_t layer;                  ///< -1 for model-level tensors
  std::vector<int64_t> shape;     ///< in the architecture's stored layout (Conv1D: (in, out))
  std::vector<ShapeDim> dims;     ///< dims[i]: where shape[i] comes from
};

/// Every tensor load_transformer reads for `c`, with the shape config.json implies, in load order.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);

/// The name under which `weights` store `role` (layer `layer`): the table's name, or that name
/// without the architecture's optional prefix; "" when neither is present.
std::string stored_tensor_name(const ModelWeights& weights, const ArchSpec& spec, Role role, int64_t layer = -1);

struct ShapeMismatch {
  std::string tensor;                 ///< the stored name (the table's name when missing)
  std::vector<int64_t> found;         ///< empty when the tensor is missing
  std::vector<int64_t> expected;
  std::optional<ShapeDim> dim;        ///< quantity of the first differing dimension (none: missing or rank)
  int64_t layer = -1;
  /// "tensor 'x' in <origin> has shape [..], expected [..] from config.json" (or "has no tensor").
  std::string message(const ModelWeights& weights, const ModelConfig& c) const;
};

/// The first tensor (in expected_tensors order) that is missing or whose shape contradicts `c`.
/// A vector may be stored with extra dimensions of size 1 (as ModelWeights::vector accepts).
std::optional<ShapeMismatch> find_shape_mismatch(const ModelWeights& weights, const ModelConfig& c);

/// The config.json key that sets `d` for this architecture ("n_embd", "hidden_size", ...).
std::string config_field(const ModelConfig& c, const nlohmann::json& config, ShapeDim d);

/// Throws tsm::FormatError with details `field` (the config.json key at fault, when one is),
/// `file` ("config.json") and `tensor` (when a tensor shows the contradiction) if config.json does
/// not parse for the runtime or contradicts the weights; returns the parsed config otherwise.
ModelConfig check_model_config(const ModelWeights& weights);

}  // namespace tsm
