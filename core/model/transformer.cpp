// The forward pass (see transformer.h). Read top to bottom: embed, then per layer
// norm -> attention -> residual -> norm -> MLP -> residual, then final norm and head.
#include "model/transformer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace tsm {

void set_compute_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}

namespace {

// out (n, w) = norm(x (n, w)); LayerNorm when b is present, else RMSNorm (HF LlamaRMSNorm).
void apply_norm(const NormWeights& nw, const float* x, int64_t n, int64_t w, float eps, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * w;
    float* oi = out + i * w;
    if (!nw.b.empty()) {
      double mean = 0, var = 0;
      for (int64_t j = 0; j < w; ++j) mean += xi[j];
      mean /= double(w);
      for (int64_t j = 0; j < w; ++j) var += (xi[j] - mean) * (xi[j] - mean);
      var /= double(w);  // biased, as torch.nn.LayerNorm
      const float inv = float(1.0 / std::sqrt(var + eps)), m = float(mean);
      for (int64_t j = 0; j < w; ++j) oi[j] = (xi[j] - m) * inv * nw.w[j] + nw.b[j];
    } else {
      double ss = 0;
      for (int64_t j = 0; j < w; ++j) ss += double(xi[j]) * xi[j];
      const float inv = float(1.0 / std::sqrt(ss / double(w) + eps));
      for (int64_t j = 0; j < w; ++j) oi[j] = nw.w[j] * (xi[j] * inv);
    }
  }
}

void apply_activation(Activation a, float* x, int64_t count) {
  switch (a) {
    case Activation::kGeluTanh:  // HF NewGELUActivation
      for (int64_t i = 0; i < count; ++i) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
      break;
    case Activation::kGeluErf:
      for (int64_t i = 0; i < count; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
      break;
    case Activation::kRelu:
      for (int64_t i = 0; i < count; ++i) x[i] = std::max(0.0f, x[i]);
      break;
    case Activation::kSilu:
      for (int64_t i = 0; i < count; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
  }
}

// Rotary embedding as HF Llama (rotate_half): pairs (j, j + head_dim/2) of each head rotate by
// pos * inv_freq[j]. x: (n, heads * head_dim).
void apply_rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, const std::vector<float>& inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < half; ++j) {
      const float angle = float(pos0 + i) * inv_freq[j];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* xh = x + i * heads * head_dim + h * head_dim;
        const float a = xh[j], b = xh[j + half];
        xh[j] = a * c - b * s;
        xh[j + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

KvCache Transformer::new_cache(int64_t capacity) const {
  KvCache c;
  c.n_layer = cfg.n_layer;
  c.capacity = capacity > 0 ? capacity : cfg.max_positions;
  c.kv_dim = cfg.kv_dim();
  c.k.assign(size_t(c.n_layer * c.capacity * c.kv_dim), 0.0f);
  c.v.assign(c.k.size(), 0.0f);
  return c;
}

uint64_t Transformer::resident_bytes() const {
  uint64_t b = embed->resident_bytes() + uint64_t(pos_embed.size()) * 4;
  auto op = [](const std::unique_ptr<LinearOp>& p) { return p ? p->resident_bytes() : 0; };
  b += op(project_in) + op(project_out);
  for (const auto& L : layers)
    b += op(L.qkv) + op(L.q) + op(L.k) + op(L.v) + op(L.o) + op(L.up) + op(L.gate) + op(L.down) +
         4 * (L.attn_norm.w.size() + L.attn_norm.b.size() + L.mlp_norm.w.size() + L.mlp_norm.b.size());
  return b + head->resident_bytes();
}

void Transformer::forward(std::span<const int32_t> ids, KvCache& cache, float* logits, bool all_logits) const {
  const int64_t n = int64_t(ids.size());
  if (n == 0) throw Error("forward: no tokens");
  const int64_t p0 = cache.len;
  if (p0 + n > cache.capacity)
    throw Error("sequence of " + std::to_string(p0 + n) + " tokens exceeds the KV cache capacity " + std::to_string(cache.capacity));
  if (cfg.learned_positions && p0 + n > cfg.max_positions)
    throw Error("sequence of " + std::to_string(p0 + n) + " tokens exceeds the model's " + std::to_string(cfg.max_positions) + " positions");
  const int64_t d = cfg.d_model, E = cfg.embed_dim, hd = cfg.head_dim;
  const int64_t qd = cfg.q_dim(), kvd = cfg.kv_dim(), H = cfg.n_head, group = cfg.n_head / cfg.n_kv_head;

  // Activations, all row-major.
  std::vector<float> x(n * d);                 // (n, d) residual stream
  std::vector<float> h(n * d);                 // (n, d) normed input of a block
  std::vector<float> q(n * qd);                // (n, q_dim)
  std::vector<float> kbuf(n * kvd), vbuf(n * kvd);  // (n, kv_dim) each
  std::vector<float> att(n * qd);              // (n, q_dim) attention output
  std::vector<float> tmp(n * std::max(d, E));  // (n, d) block output / (n, E) embeddings
  std::vector<float> ff(n * cfg.d_ff), ff2(cfg.gated_mlp ? n * cfg.d_ff : 0);  // (n, d_ff)

  // 1. Token embeddings (+ OPT project_in) plus learned positions.
  if (project_in) {
    embed->lookup(ids, tmp.data());
    project_in->forward(tmp.data(), n, x.data());
  } else {
    embed->lookup(ids, x.data());
  }
  if (cfg.learned_positions)
    for (int64_t i = 0; i < n; ++i) {
      const float* pe = pos_embed.row(cfg.position_offset + p0 + i).data();
      for (int64_t j = 0; j < d; ++j) x[i * d + j] += pe[j];
    }

  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const TransformerLayer& L = layers[l];
    // 2. Attention block.
    const float* in = x.data();
    if (cfg.pre_norm) {
      apply_norm(L.attn_norm, x.data(), n, d, cfg.norm_eps, h.data());
      in = h.data();
    }
    if (L.qkv) {
      std::vector<float> fused(n * (qd + 2 * kvd));  // (n, q_dim + 2 kv_dim): q | k | v
      L.qkv->forward(in, n, fused.data());
      for (int64_t i = 0; i < n; ++i) {
        const float* f = fused.data() + i * (qd + 2 * kvd);
        std::copy(f, f + qd, q.data() + i * qd);
        std::copy(f + qd, f + qd + kvd, kbuf.data() + i * kvd);
        std::copy(f + qd + kvd, f + qd + 2 * kvd, vbuf.data() + i * kvd);
      }
    } else {
      L.q->forward(in, n, q.data());
      L.k->forward(in, n, kbuf.data());
      L.v->forward(in, n, vbuf.data());
    }
    if (!rope_inv_freq.empty()) {
      apply_rope(q.data(), n, H, hd, p0, rope_inv_freq);
      apply_rope(kbuf.data(), n, cfg.n_kv_head, hd, p0, rope_inv_freq);
    }
    float* K = cache.keys(l);    // (capacity, kv_dim)
    float* Vc = cache.values(l);  // (capacity, kv_dim)
    std::copy(kbuf.begin(), kbuf.end(), K + p0 * kvd);
    std::copy(vbuf.begin(), vbuf.end(), Vc + p0 * kvd);

    float scale = 1.0f / std::sqrt(float(hd));
    if (cfg.scale_attn_by_layer) scale /= float(l + 1);
    // Causal attention: query i (position p0 + i) sees positions 0 .. p0 + i. One task per head.
#pragma omp parallel for schedule(static) if (H > 1 && (p0 + n) * n > 64)
    for (int64_t hh = 0; hh < H; ++hh) {
      const int64_t g = hh / group;  // kv head of this query head
      std::vector<float> s(p0 + n);  // (positions) scores, then probabilities
      for (int64_t i = 0; i < n; ++i) {
        const float* qi = q.data() + i * qd + hh * hd;
        const int64_t T = p0 + i + 1;
        float mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          const float* kj = K + j * kvd + g * hd;
          float dot = 0;
          for (int64_t e = 0; e < hd; ++e) dot += qi[e] * kj[e];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < T; ++j) sum += (s[j] = std::exp(s[j] - mx));
        float* oi = att.data() + i * qd + hh * hd;
        std::fill(oi, oi + hd, 0.0f);
        for (int64_t j = 0; j < T; ++j) {
          const float p = s[j] / sum;
          const float* vj = Vc + j * kvd + g * hd;
          for (int64_t e = 0; e < hd; ++e) oi[e] += p * vj[e];
        }
      }
    }
    L.o->forward(att.data(), n, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];
    if (!cfg.pre_norm) apply_norm(L.attn_norm, x.data(), n, d, cfg.norm_eps, x.data());

    // 3. MLP block: down(act(up(x))) or, gated, down(act(gate(x)) * up(x)).
    in = x.data();
    if (cfg.pre_norm) {
      apply_norm(L.mlp_norm, x.data(), n, d, cfg.norm_eps, h.data());
      in = h.data();
    }
    if (cfg.gated_mlp) {
      L.gate->forward(in, n, ff.data());
      L.up->forward(in, n, ff2.data());
      apply_activation(cfg.activation, ff.data(), n * cfg.d_ff);
      for (int64_t i = 0; i < n * cfg.d_ff; ++i) ff[i] *= ff2[i];
    } else {
      L.up->forward(in, n, ff.data());
      apply_activation(cfg.activation, ff.data(), n * cfg.d_ff);
    }
    L.down->forward(ff.data(), n, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];
    if (!cfg.pre_norm) apply_norm(L.mlp_norm, x.data(), n, d, cfg.norm_eps, x.data());
  }
  cache.len = p0 + n;

  // 4. Final norm, OPT project_out, head (only the rows asked for).
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  const float* last = x.data() + first * d;
  if (!final_norm.w.empty()) {
    apply_norm(final_norm, last, rows, d, cfg.norm_eps, h.data());
    last = h.data();
  }
  if (project_out) {
    project_out->forward(last, rows, tmp.data());
    last = tmp.data();
  }
  head->logits(last, rows, logits);
}

}  // namespace tsm
