// The hyper-parameters of a decoder-only transformer, parsed from a Hugging Face config.json with
// HF semantics for model_type gpt2 (also Cerebras-GPT), opt and llama.
// Invariant after parse: every size > 0, n_head % n_kv_head == 0, head_dim * n_head == q_dim.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsm {

enum class Arch { kGpt2, kOpt, kLlama };
enum class Activation { kGeluTanh, kGeluErf, kRelu, kSilu };

struct ModelConfig {
  Arch arch = Arch::kGpt2;
  std::string model_type;        ///< as in config.json
  int64_t vocab = 0;             ///< rows of the token embedding and of the LM head
  int64_t d_model = 0;           ///< residual stream width (hidden_size / n_embd)
  int64_t embed_dim = 0;         ///< token embedding width: OPT word_embed_proj_dim, else d_model
  int64_t n_layer = 0;
  int64_t n_head = 0;            ///< query heads
  int64_t n_kv_head = 0;         ///< key/value heads (GQA: n_head % n_kv_head == 0)
  int64_t head_dim = 0;
  int64_t d_ff = 0;              ///< MLP hidden width
  int64_t max_positions = 0;     ///< longest sequence (position table rows minus the offset)
  int64_t position_offset = 0;   ///< OPT's learned positions start at row 2
  float norm_eps = 1e-5f;
  Activation activation = Activation::kGeluTanh;
  bool pre_norm = true;          ///< LayerNorm before each block (OPT do_layer_norm_before)
  bool final_norm = true;        ///< a norm after the last block
  bool gated_mlp = false;        ///< SwiGLU (llama): down(act(gate(x)) * up(x))
  bool rms_norm = false;         ///< RMSNorm without bias (llama) instead of LayerNorm
  bool learned_positions = false;///< position table (gpt2, opt) instead of RoPE (llama)
  bool attn_bias = true;         ///< q/k/v/o carry biases
  bool mlp_bias = true;          ///< MLP linears carry biases
  bool tied_head = true;         ///< LM head shares the token embedding
  bool scale_attn_by_layer = false; ///< gpt2 scale_attn_by_inverse_layer_idx
  float rope_theta = 10000.0f;
  std::vector<int32_t> eos_ids;  ///< stop tokens (may be empty)
  int32_t bos_id = -1;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_kv_head * head_dim; }
  /// Parameters of the dense model (weights and biases, head counted once when tied). Throws
  /// tsm::FormatError when that count does not fit int64.
  int64_t param_count() const;
};

/// Parses config.json. Throws tsm::FormatError naming the field (and what was found) when it is
/// missing, of the wrong type, out of range, or when model_type is not gpt2/opt/llama.
ModelConfig parse_model_config(const nlohmann::json& cfg);
const char* arch_name(Arch a);

}  // namespace tsm
