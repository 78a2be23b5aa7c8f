// config.json against the weights (see config_check.h).
#include "pipeline/config_check.h"

#include "common/error.h"
#include "common/tensor.h"

namespace tsm {

namespace {

using json = nlohmann::json;

bool is_vector(const ExpectedTensor& e) { return e.shape.size() == 1; }

/// A vector matches when it has `width` elements and at most one dimension above 1 (ModelWeights::vector).
bool vector_matches(const std::vector<int64_t>& s, int64_t width) {
  int64_t n = 1, big = 0;
  for (int64_t x : s) {
    n *= x;
    big += x > 1;
  }
  return n == width && big <= 1;
}

/// A matrix matches exactly, or as a 1-D tensor standing for one row (the loader's rule).
bool matrix_matches(std::vector<int64_t> s, const std::vector<int64_t>& expected) {
  if (s.size() == 1 && expected.size() == 2 && expected[0] == 1) s.insert(s.begin(), 1);
  return s == expected;
}

/// Whether the weights hold any per-layer tensor of layer `l`.
bool layer_present(const ModelWeights& w, const ArchSpec& spec, int64_t l) {
  for (const auto& s : spec.slots)
    if (std::string(s.pattern).find("{L}") != std::string::npos && !stored_tensor_name(w, spec, s.role, l).empty())
      return true;
  return false;
}

int64_t layers_present(const ModelWeights& w, const ArchSpec& spec) {
  int64_t n = 0;
  while (n < (int64_t(1) << 20) && layer_present(w, spec, n)) ++n;
  return n;
}

std::string layers_field(const ModelConfig& c) { return c.arch == Arch::kGpt2 ? "n_layer" : "num_hidden_layers"; }

/// The value of `field` in config.json as written, or "its default" when absent.
std::string field_value(const json& config, const std::string& field) {
  auto it = config.find(field);
  if (it == config.end() || it->is_null()) return "its default";
  return it->dump();
}

[[noreturn]] void contradiction(const std::string& what, const std::string& field, const std::string& tensor) {
  FormatError e("config.json contradicts the weights: " + what);
  if (!field.empty()) e.add_detail("field", field);
  e.add_detail("file", std::string("config.json"));
  if (!tensor.empty()) e.add_detail("tensor", tensor);
  throw e;
}

/// The field a parse_model_config error names: its "field" detail, else the "config.json: field 'X'"
/// prefix of its message (the form model_config.cpp writes every field error in).
std::string parse_error_field(const FormatError& e) {
  for (const auto& [k, v] : e.details())
    if (k == "field" && std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  const std::string msg = e.what(), prefix = "config.json: field '";
  if (msg.rfind(prefix, 0) != 0) return "";
  auto end = msg.find('\'', prefix.size());
  return end == std::string::npos ? "" : msg.substr(prefix.size(), end - prefix.size());
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  using D = ShapeDim;
  struct Size {
    int64_t n;
    ShapeDim d;
  };
  const bool in_out = arch_spec(c.arch).linear_layout == WeightLayout::kInOut;
  const Size vocab{c.vocab, D::kVocab}, d{c.d_model, D::kDModel}, E{c.embed_dim, D::kEmbedDim}, ff{c.d_ff, D::kFF};
  std::vector<ExpectedTensor> out;
  auto mat = [&](Role r, int64_t l, Size a, Size b) { out.push_back({r, l, {a.n, b.n}, {a.d, b.d}}); };
  auto vec = [&](Role r, int64_t l, Size a) { out.push_back({r, l, {a.n}, {a.d}}); };
  auto linear = [&](Role w, Role b, int64_t l, Size in, Size o, bool bias) {
    if (in_out) mat(w, l, in, o);
    else mat(w, l, o, in);
    if (bias) vec(b, l, o);
  };
  auto norm = [&](Role w, Role b, int64_t l) {
    vec(w, l, d);
    if (!c.rms_norm) vec(b, l, d);
  };

  mat(Role::kTokEmbed, -1, vocab, E);
  if (c.learned_positions) mat(Role::kPosEmbed, -1, {c.max_positions + c.position_offset, D::kPositions}, d);
  if (c.embed_dim != c.d_model) {
    linear(Role::kProjectIn, Role::kProjectIn, -1, E, d, false);
    linear(Role::kProjectOut, Role::kProjectOut, -1, d, E, false);
  }
  const Size q{c.q_dim(), D::kQDim}, kv{c.kv_dim(), D::kKvDim};
  for (int64_t l = 0; l < c.n_layer; ++l) {
    norm(Role::kAttnNormW, Role::kAttnNormB, l);
    norm(Role::kMlpNormW, Role::kMlpNormB, l);
    if (tensor_name(arch_spec(c.arch), Role::kQkvW, l)) {
      linear(Role::kQkvW, Role::kQkvB, l, d, {c.q_dim() + 2 * c.kv_dim(), D::kQkvDim}, c.attn_bias);
    } else {
      linear(Role::kQW, Role::kQB, l, d, q, c.attn_bias);
      linear(Role::kKW, Role::kKB, l, d, kv, c.attn_bias);
      linear(Role::kVW, Role::kVB, l, d, kv, c.attn_bias);
    }
    linear(Role::kOW, Role::kOB, l, q, d, c.attn_bias);
    linear(Role::kUpW, Role::kUpB, l, d, ff, c.mlp_bias);
    if (c.gated_mlp) linear(Role::kGateW, Role::kGateB, l, d, ff, c.mlp_bias);
    linear(Role::kDownW, Role::kDownB, l, ff, d, c.mlp_bias);
  }
  if (c.final_norm) norm(Role::kFinalNormW, Role::kFinalNormB, -1);
  if (!c.tied_head) mat(Role::kLmHead, -1, vocab, E);  // (vocab, E) in every layout
  return out;
}

std::string stored_tensor_name(const ModelWeights& w, const ArchSpec& spec, Role role, int64_t layer) {
  auto n = tensor_name(spec, role, layer);
  if (!n) return "";
  if (w.has(*n)) return *n;
  const std::string prefix = spec.optional_prefix;
  if (!prefix.empty() && n->rfind(prefix, 0) == 0 && w.has(n->substr(prefix.size()))) return n->substr(prefix.size());
  return "";
}

std::string ShapeMismatch::message(const ModelWeights& w, const ModelConfig& c) const {
  if (found.empty())
    return w.origin() + " has no tensor '" + tensor + "' (required by config.json, model_type " + c.model_type + ")";
  return "tensor '" + tensor + "' in " + w.origin() + " has shape " + shape_str(found) + ", expected " + shape_str(expected) +
         " from config.json";
}

std::optional<ShapeMismatch> find_shape_mismatch(const ModelWeights& w, const ModelConfig& c) {
  const ArchSpec& spec = arch_spec(c.arch);
  for (const ExpectedTensor& e : expected_tensors(c)) {
    std::string n = stored_tensor_name(w, spec, e.role, e.layer);
    if (n.empty()) {
      auto table_name = tensor_name(spec, e.role, e.layer);
      return ShapeMismatch{table_name.value_or("?"), {}, e.shape, std::nullopt, e.layer};
    }
    auto s = w.shape(n);
    if (is_vector(e) ? vector_matches(s, e.shape[0]) : matrix_matches(s, e.shape)) continue;
    ShapeMismatch m{n, s, e.shape, std::nullopt, e.layer};
    if (is_vector(e)) {
      m.dim = e.dims[0];
    } else {
      if (s.size() == 1 && e.shape[0] == 1) s.insert(s.begin(), 1);
      if (s.size() == e.shape.size())
        for (size_t i = 0; i < s.size(); ++i)
          if (s[i] != e.shape[i]) {
            m.dim = e.dims[i];
            break;
          }
    }
    return m;
  }
  return std::nullopt;
}

std::string config_field(const ModelConfig& c, const json& config, ShapeDim d) {
  const bool gpt2 = c.arch == Arch::kGpt2, opt = c.arch == Arch::kOpt;
  auto has = [&](const char* k) { return config.contains(k) && !config.at(k).is_null(); };
  switch (d) {
    case ShapeDim::kVocab: return "vocab_size";
    case ShapeDim::kDModel: return gpt2 ? "n_embd" : "hidden_size";
    case ShapeDim::kEmbedDim: return gpt2 ? "n_embd" : (opt && has("word_embed_proj_dim")) ? "word_embed_proj_dim" : "hidden_size";
    case ShapeDim::kPositions: return gpt2 ? "n_positions" : "max_position_embeddings";
    case ShapeDim::kQDim:
      if (c.arch == Arch::kLlama) return has("head_dim") ? "head_dim" : "num_attention_heads";
      return gpt2 ? "n_embd" : "hidden_size";
    case ShapeDim::kKvDim: return c.arch == Arch::kLlama ? "num_key_value_heads" : gpt2 ? "n_embd" : "hidden_size";
    case ShapeDim::kQkvDim: return gpt2 ? "n_embd" : "hidden_size";
    case ShapeDim::kFF: return gpt2 ? "n_inner" : opt ? "ffn_dim" : "intermediate_size";
  }
  return "";
}

ModelConfig check_model_config(const ModelWeights& w) {
  ModelConfig c;
  try {
    c = parse_model_config(w.config());
  } catch (const FormatError& e) {
    FormatError r(e.what());
    if (std::string f = parse_error_field(e); !f.empty()) r.add_detail("field", f);
    r.add_detail("file", std::string("config.json"));
    throw r;
  }
  const ArchSpec& spec = arch_spec(c.arch);
  const std::string lf = layers_field(c);
  if (auto m = find_shape_mismatch(w, c)) {
    if (m->found.empty()) {
      if (m->layer >= 0 && !layer_present(w, spec, m->layer))
        contradiction("field '" + lf + "' declares " + std::to_string(c.n_layer) + " layers, but the weights hold " +
                          std::to_string(layers_present(w, spec)) + " (no tensor '" + m->tensor + "')",
                      lf, m->tensor);
      std::string field;
      if (m->tensor == tensor_name(spec, Role::kLmHead).value_or("")) field = "tie_word_embeddings";
      contradiction(m->message(w, c), field, m->tensor);
    }
    if (!m->dim) contradiction(m->message(w, c), "", m->tensor);
    const std::string f = config_field(c, w.config(), *m->dim);
    contradiction("field '" + f + "' (" + field_value(w.config(), f) + ") implies shape " + shape_str(m->expected) +
                      " for tensor '" + m->tensor + "', which has shape " + shape_str(m->found),
                  f, m->tensor);
  }
  if (layer_present(w, spec, c.n_layer))
    contradiction("field '" + lf + "' declares " + std::to_string(c.n_layer) + " layers, but the weights hold " +
                      std::to_string(layers_present(w, spec)),
                  lf, "");
  return c;
}

}  // namespace tsm
