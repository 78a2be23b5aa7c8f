// config.json -> ModelConfig (see model_config.h). HF defaults are applied where HF applies them.
#include "model/model_config.h"

#include <cmath>

#include "common/error.h"

namespace tsm {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& why) {
  throw FormatError("config.json: field '" + field + "' " + why);
}

const json* get(const json& c, const char* key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return nullptr;
  return &*it;
}

// Sizes are at most 2^31 - 1 (every real model's are far below), so that a product of two fits int64.
constexpr int64_t kMaxSize = (int64_t(1) << 31) - 1;

int64_t req_int(const json& c, const char* key, int64_t lo = 1, int64_t hi = kMaxSize) {
  const json* v = get(c, key);
  if (!v) bad(key, "is missing");
  if (!v->is_number_integer()) bad(key, "must be an integer, found " + v->dump());
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], found " + v->dump());
  return x;
}

int64_t opt_int(const json& c, const char* key, int64_t dflt, int64_t lo = 1, int64_t hi = kMaxSize) {
  return get(c, key) ? req_int(c, key, lo, hi) : dflt;
}

double opt_num(const json& c, const char* key, double dflt, double lo, double hi) {
  const json* v = get(c, key);
  if (!v) return dflt;
  if (!v->is_number()) bad(key, "must be a number, found " + v->dump());
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], found " + v->dump());
  return x;
}

bool opt_bool(const json& c, const char* key, bool dflt) {
  const json* v = get(c, key);
  if (!v) return dflt;
  if (!v->is_boolean()) bad(key, "must be true or false, found " + v->dump());
  return v->get<bool>();
}

Activation parse_activation(const json& c, const char* key, const char* dflt) {
  const json* v = get(c, key);
  std::string s = dflt;
  if (v) {
    if (!v->is_string()) bad(key, "must be a string, found " + v->dump());
    s = v->get<std::string>();
  }
  if (s == "gelu_new" || s == "gelu_pytorch_tanh" || s == "gelu_fast") return Activation::kGeluTanh;
  if (s == "gelu") return Activation::kGeluErf;
  if (s == "relu") return Activation::kRelu;
  if (s == "silu" || s == "swish") return Activation::kSilu;
  bad(key, "names an unsupported activation '" + s + "' (supported: gelu_new, gelu_pytorch_tanh, gelu, relu, silu)");
}

std::vector<int32_t> parse_ids(const json& c, const char* key) {
  const json* v = get(c, key);
  std::vector<int32_t> out;
  if (!v) return out;
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      bad(key, "must be a token id or a list of token ids, found " + v->dump());
    out.push_back(int32_t(x.get<int64_t>()));
  };
  if (v->is_array())
    for (const auto& x : *v) one(x);
  else
    one(*v);
  return out;
}

void parse_gpt2(const json& c, ModelConfig& m) {
  m.vocab = req_int(c, "vocab_size");
  m.d_model = req_int(c, "n_embd");
  m.n_layer = req_int(c, "n_layer");
  m.n_head = req_int(c, "n_head");
  m.n_kv_head = m.n_head;
  if (m.d_model % m.n_head) bad("n_head", "must divide n_embd (" + std::to_string(m.d_model) + ")");
  m.head_dim = m.d_model / m.n_head;
  m.d_ff = opt_int(c, "n_inner", 4 * m.d_model);
  m.max_positions = req_int(c, "n_positions");
  m.norm_eps = float(opt_num(c, "layer_norm_epsilon", 1e-5, 0, 1));
  m.activation = parse_activation(c, "activation_function", "gelu_new");
  m.learned_positions = true;
  m.scale_attn_by_layer = opt_bool(c, "scale_attn_by_inverse_layer_idx", false);
  if (!opt_bool(c, "scale_attn_weights", true)) bad("scale_attn_weights", "false is not supported");
}

void parse_opt(const json& c, ModelConfig& m) {
  m.vocab = req_int(c, "vocab_size");
  m.d_model = req_int(c, "hidden_size");
  m.n_layer = req_int(c, "num_hidden_layers");
  m.n_head = req_int(c, "num_attention_heads");
  m.n_kv_head = m.n_head;
  if (m.d_model % m.n_head) bad("num_attention_heads", "must divide hidden_size (" + std::to_string(m.d_model) + ")");
  m.head_dim = m.d_model / m.n_head;
  m.d_ff = req_int(c, "ffn_dim");
  m.max_positions = req_int(c, "max_position_embeddings");
  m.position_offset = 2;
  m.embed_dim = opt_int(c, "word_embed_proj_dim", m.d_model);
  m.activation = parse_activation(c, "activation_function", "relu");
  m.pre_norm = opt_bool(c, "do_layer_norm_before", true);
  m.final_norm = m.pre_norm && !opt_bool(c, "_remove_final_layer_norm", false);
  m.attn_bias = m.mlp_bias = opt_bool(c, "enable_bias", true);
  if (!opt_bool(c, "layer_norm_elementwise_affine", true))
    bad("layer_norm_elementwise_affine", "false is not supported");
  m.learned_positions = true;
}

void parse_llama(const json& c, ModelConfig& m) {
  m.vocab = req_int(c, "vocab_size");
  m.d_model = req_int(c, "hidden_size");
  m.n_layer = req_int(c, "num_hidden_layers");
  m.n_head = req_int(c, "num_attention_heads");
  m.n_kv_head = opt_int(c, "num_key_value_heads", m.n_head);
  if (m.n_head % m.n_kv_head) bad("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(m.n_head) + ")");
  if (!get(c, "head_dim") && m.d_model % m.n_head)
    bad("num_attention_heads", "must divide hidden_size when head_dim is absent");
  m.head_dim = opt_int(c, "head_dim", m.d_model / m.n_head);
  if (m.head_dim % 2) bad("head_dim", "must be even for rotary embeddings");
  m.d_ff = req_int(c, "intermediate_size");
  m.max_positions = opt_int(c, "max_position_embeddings", 2048);
  m.norm_eps = float(opt_num(c, "rms_norm_eps", 1e-6, 0, 1));
  m.activation = parse_activation(c, "hidden_act", "silu");
  m.rms_norm = true;
  m.gated_mlp = true;
  m.attn_bias = opt_bool(c, "attention_bias", false);
  m.mlp_bias = opt_bool(c, "mlp_bias", false);
  // rope_theta: top level (transformers < 5) or inside rope_parameters / rope_scaling (newer).
  double theta = opt_num(c, "rope_theta", 10000.0, 1.0, 1e12);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const json* rp = get(c, key);
    if (!rp) continue;
    if (!rp->is_object()) bad(key, "must be an object, found " + rp->dump());
    theta = opt_num(*rp, "rope_theta", theta, 1.0, 1e12);
    std::string type = "default";
    if (const json* t = get(*rp, "rope_type"); t && t->is_string()) type = t->get<std::string>();
    else if (const json* t2 = get(*rp, "type"); t2 && t2->is_string()) type = t2->get<std::string>();
    if (type != "default")
      bad(std::string(key) + ".rope_type", "'" + type + "' is not supported (only default RoPE)");
  }
  m.rope_theta = float(theta);
}

}  // namespace

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kGpt2: return "gpt2";
    case Arch::kOpt: return "opt";
    case Arch::kLlama: return "llama";
  }
  return "?";
}

int64_t ModelConfig::param_count() const {
  // Checked: sizes of 2^31 each multiply past int64 (fuzzing found one); such a config is refused.
  const auto mul = [](int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) throw FormatError("config.json: the model it describes has more than 2^63 parameters");
    return r;
  };
  const auto add = [](int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) throw FormatError("config.json: the model it describes has more than 2^63 parameters");
    return r;
  };
  int64_t p = add(mul(vocab, embed_dim), learned_positions ? mul(add(max_positions, position_offset), d_model) : 0);
  if (embed_dim != d_model) p = add(p, mul(2, mul(embed_dim, d_model)));
  const int64_t norm = rms_norm ? d_model : mul(2, d_model);
  int64_t layer = add(add(mul(2, norm), mul(d_model, add(q_dim(), mul(2, kv_dim())))), mul(q_dim(), d_model));
  if (attn_bias) layer = add(layer, add(add(q_dim(), mul(2, kv_dim())), d_model));
  layer = add(layer, mul(gated_mlp ? 3 : 2, mul(d_model, d_ff)));
  if (mlp_bias) layer = add(layer, add(mul(gated_mlp ? 2 : 1, d_ff), d_model));
  p = add(p, add(mul(n_layer, layer), final_norm ? norm : 0));
  if (!tied_head) p = add(p, mul(vocab, embed_dim));
  return p;
}

ModelConfig parse_model_config(const nlohmann::json& c) {
  if (!c.is_object()) throw FormatError("config.json: expected a JSON object");
  const json* mt = get(c, "model_type");
  if (!mt) bad("model_type", "is missing (expected gpt2, opt or llama)");
  if (!mt->is_string()) bad("model_type", "must be a string, found " + mt->dump());
  ModelConfig m;
  m.model_type = mt->get<std::string>();
  if (m.model_type == "gpt2") {
    m.arch = Arch::kGpt2;
    parse_gpt2(c, m);
  } else if (m.model_type == "opt") {
    m.arch = Arch::kOpt;
    parse_opt(c, m);
  } else if (m.model_type == "llama") {
    m.arch = Arch::kLlama;
    parse_llama(c, m);
  } else {
    bad("model_type", "'" + m.model_type + "' is not supported (supported: gpt2, opt, llama)");
  }
  if (m.embed_dim == 0) m.embed_dim = m.d_model;
  m.tied_head = opt_bool(c, "tie_word_embeddings", true);  // HF default: tied
  m.eos_ids = parse_ids(c, "eos_token_id");
  auto bos = parse_ids(c, "bos_token_id");
  m.bos_id = bos.empty() ? -1 : bos.front();
  for (int32_t id : m.eos_ids)
    if (id >= m.vocab) bad("eos_token_id", "is " + std::to_string(id) + ", not below vocab_size " + std::to_string(m.vocab));
  return m;
}

}  // namespace tsm
