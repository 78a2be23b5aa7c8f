// Tensor names of each architecture as data: one table per architecture maps a role (token
// embedding, layer-L query projection, ...) to the checkpoint name pattern ("{L}" = layer index).
// Invariant: a role absent from an architecture's table has no tensor in that architecture.
// Linear weights are stored (out, in) except where the table says kInOut (GPT-2's Conv1D).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace tsm {

enum class Role {
  kTokEmbed, kPosEmbed, kProjectIn, kProjectOut, kFinalNormW, kFinalNormB, kLmHead,
  // per layer
  kAttnNormW, kAttnNormB,
  kQkvW, kQkvB,            ///< fused q|k|v (gpt2 c_attn)
  kQW, kQB, kKW, kKB, kVW, kVB, kOW, kOB,
  kMlpNormW, kMlpNormB,
  kUpW, kUpB, kGateW, kGateB, kDownW, kDownB,
};

enum class WeightLayout { kOutIn, kInOut };

struct TensorSlot {
  Role role;
  const char* pattern;  ///< checkpoint name; "{L}" stands for the layer index
};

struct ArchSpec {
  Arch arch;
  WeightLayout linear_layout;      ///< how this architecture's checkpoints store linear weights
  const char* optional_prefix;     ///< a prefix some checkpoints omit (gpt2: "transformer."), or ""
  std::vector<TensorSlot> slots;
};

const ArchSpec& arch_spec(Arch a);
/// The checkpoint name of `role` (layer `layer` for per-layer roles), or nullopt when the
/// architecture has no such tensor.
std::optional<std::string> tensor_name(const ArchSpec& spec, Role role, int64_t layer = -1);

}  // namespace tsm
