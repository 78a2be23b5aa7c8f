// A decoder-only transformer (GPT-2 / OPT / Llama, chosen by ModelConfig) with a KV cache.
// Invariant: forward() consumes tokens at positions cache.len .. cache.len + n - 1 and appends their
// keys and values; the cache never holds more than its capacity.
// Layout: activations are row-major (n, width); the cache of layer l is (capacity, kv_dim) for
// keys and for values, kv_dim = n_kv_head * head_dim with heads contiguous.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/embedding.h"
#include "model/linear.h"
#include "model/lm_head.h"
#include "model/model_config.h"

namespace tsm {

struct KvCache {
  int64_t n_layer = 0, capacity = 0, kv_dim = 0;
  int64_t len = 0;           ///< positions filled
  std::vector<float> k, v;   ///< each (n_layer, capacity, kv_dim)

  float* keys(int64_t layer) { return k.data() + layer * capacity * kv_dim; }
  float* values(int64_t layer) { return v.data() + layer * capacity * kv_dim; }
  void reset() { len = 0; }
  uint64_t bytes() const { return (k.size() + v.size()) * sizeof(float); }
};

/// LayerNorm (w, b) or RMSNorm (w only), each (width).
struct NormWeights {
  std::vector<float> w;  ///< (width)
  std::vector<float> b;  ///< (width) or empty (RMSNorm)
};

struct TransformerLayer {
  NormWeights attn_norm, mlp_norm;
  std::unique_ptr<LinearOp> qkv;      ///< fused (d_model -> q_dim + 2 kv_dim), or null when q/k/v are separate
  std::unique_ptr<LinearOp> q, k, v;  ///< d_model -> q_dim / kv_dim / kv_dim
  std::unique_ptr<LinearOp> o;        ///< q_dim -> d_model
  std::unique_ptr<LinearOp> up;       ///< d_model -> d_ff
  std::unique_ptr<LinearOp> gate;     ///< d_model -> d_ff (gated MLP only)
  std::unique_ptr<LinearOp> down;     ///< d_ff -> d_model
};

class Transformer {
 public:
  ModelConfig cfg;
  std::shared_ptr<const TokenEmbedding> embed;  ///< (vocab, embed_dim); may be shared with the head
  MatrixRM pos_embed;                       ///< (max_positions + position_offset, d_model); empty for RoPE
  std::unique_ptr<LinearOp> project_in;     ///< embed_dim -> d_model (OPT), or null
  std::vector<TransformerLayer> layers;     ///< n_layer
  NormWeights final_norm;                   ///< empty w when the config has no final norm
  std::unique_ptr<LinearOp> project_out;    ///< d_model -> embed_dim (OPT), or null
  std::unique_ptr<LmHead> head;             ///< (vocab, embed_dim)
  std::vector<float> rope_inv_freq;         ///< (head_dim / 2): theta^(-2i/head_dim)

  /// A cache for up to `capacity` positions (default: max_positions).
  KvCache new_cache(int64_t capacity = 0) const;
  /// Runs `ids` at positions cache.len.. and appends to the cache. logits: (n, vocab) when
  /// all_logits, else (1, vocab) for the last token only. Throws tsm::Error when the cache or the
  /// position table is too short, or an id is out of range.
  void forward(std::span<const int32_t> ids, KvCache& cache, float* logits, bool all_logits) const;
  /// Bytes of weights kept resident (embedding, layers, head; a shared table counted once is the caller's business).
  uint64_t resident_bytes() const;
};

/// Sets the threads used by matmuls and attention (OpenMP and Eigen). n <= 0 keeps the default.
void set_compute_threads(int n);

}  // namespace tsm
