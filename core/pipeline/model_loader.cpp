// ModelWeights -> Transformer (see model_loader.h).
#include "pipeline/model_loader.h"

#include <cmath>

#include "common/error.h"
#include "common/tensor.h"
#include "methods/method_table.h"
#include "model/arch_table.h"
#include "pipeline/config_check.h"

namespace tsm {

namespace {

class Loader {
 public:
  Loader(const ModelWeights& w, const ModelConfig& cfg) : w_(w), cfg_(cfg), spec_(arch_spec(cfg.arch)) {}

  /// The name of `role` as stored (with or without the optional prefix); "" when absent and not required.
  std::string name(Role role, int64_t layer, bool required) const {
    auto n = tensor_name(spec_, role, layer);
    if (!n) {
      if (required) throw Error(std::string("architecture ") + arch_name(cfg_.arch) + " has no such tensor role");
      return "";
    }
    std::string stored = stored_tensor_name(w_, spec_, role, layer);
    if (stored.empty() && required)
      throw Error(w_.origin() + " has no tensor '" + *n + "' (required by config.json, model_type " + cfg_.model_type + ")");
    return stored;
  }

  void expect_shape(const std::string& n, std::vector<int64_t> expected, const MatrixRM* m = nullptr) const {
    auto s = m ? std::vector<int64_t>{m->rows(), m->cols()} : w_.shape(n);
    if (s.size() == 1 && expected.size() == 2 && expected[0] == 1) s.insert(s.begin(), 1);
    if (s != expected)
      throw Error("tensor '" + n + "' in " + w_.origin() + " has shape " + shape_str(s) + ", expected " + shape_str(expected) +
                  " from config.json");
  }

  std::vector<float> vec(Role role, int64_t layer, int64_t width, bool required = true) const {
    std::string n = name(role, layer, required);
    if (n.empty()) return {};
    auto v = w_.vector(n);
    if (int64_t(v.size()) != width) expect_shape(n, {width});
    return v;
  }

  NormWeights norm(Role wr, Role br, int64_t layer, int64_t width) const {
    NormWeights nw;
    nw.w = vec(wr, layer, width);
    if (!cfg_.rms_norm) nw.b = vec(br, layer, width);
    return nw;
  }

  /// A linear layer in -> out with an optional bias. Checkpoint layout per the architecture table;
  /// the stored shapes were checked up front (find_shape_mismatch), the decoded ones are checked here.
  std::unique_ptr<LinearOp> linear(Role wr, Role br, int64_t layer, int64_t in, int64_t out, bool with_b) const {
    std::string n = name(wr, layer, true);
    const bool in_out = spec_.linear_layout == WeightLayout::kInOut;
    std::vector<float> bias = with_b ? vec(br, layer, out) : std::vector<float>{};
    // A compressed operator works in the logical (out, in) orientation whatever the stored one (the
    // table needs the checkpoint's layout for codecs that do not record it: fp16, int8).
    if (const auto* ct = w_.compressed(n)) {
      if (auto op = make_compressed_linear(*ct, in_out)) {
        if (op->in_features() != in || op->out_features() != out)
          throw Error("compressed tensor '" + n + "' is " + std::to_string(op->out_features()) + " x " +
                      std::to_string(op->in_features()) + ", expected " + std::to_string(out) + " x " + std::to_string(in));
        return with_bias(std::move(op), std::move(bias));
      }
    }
    MatrixRM m = w_.matrix(n);
    if (in_out) {
      expect_shape(n, {in, out}, &m);
      m = MatrixRM(m.transpose());  // Conv1D (in, out) -> (out, in)
    } else {
      expect_shape(n, {out, in}, &m);
    }
    return std::make_unique<DenseLinear>(std::move(m), std::move(bias));
  }

 private:
  const ModelWeights& w_;
  const ModelConfig& cfg_;
  const ArchSpec& spec_;
};

}  // namespace

EmbeddingMode parse_embedding_mode(const std::string& s) {
  if (s == "auto") return EmbeddingMode::kAuto;
  if (s == "dense") return EmbeddingMode::kDense;
  if (s == "tt" || s == "compressed") return EmbeddingMode::kCompressed;
  throw ParamError("embedding", "must be dense, tt (compressed) or auto, not '" + s + "'");
}

HeadMode parse_head_mode(const std::string& s) {
  if (s == "materialize") return HeadMode::kMaterialize;
  if (s == "stream") return HeadMode::kStream;
  throw ParamError("head", "must be materialize or stream, not '" + s + "'");
}

std::string embedding_tensor_name(const ModelWeights& weights) {
  ModelConfig cfg = parse_model_config(weights.config());
  return Loader(weights, cfg).name(Role::kTokEmbed, -1, true);
}

std::unique_ptr<Transformer> load_transformer(const ModelWeights& weights, const LoadOptions& opt) {
  auto net = std::make_unique<Transformer>();
  net->cfg = parse_model_config(weights.config());
  const ModelConfig& c = net->cfg;
  // Every stored shape against config.json before anything is decoded (the same check as at upload).
  if (auto mismatch = find_shape_mismatch(weights, c)) throw Error(mismatch->message(weights, c));
  Loader ld(weights, c);
  const int64_t d = c.d_model, E = c.embed_dim;

  // Token embedding: a dense table, or the operator of its compression method (e.g. tt-token cores).
  const std::string emb = ld.name(Role::kTokEmbed, -1, true);
  const v1::CompressedTensor* emb_ct = weights.compressed(emb);
  const Method* emb_method = emb_ct ? try_find_method(emb_ct->method()) : nullptr;
  const bool emb_has_op = emb_method && emb_method->make_embedding;
  const bool use_op = opt.embedding == EmbeddingMode::kCompressed || (opt.embedding == EmbeddingMode::kAuto && emb_has_op);
  if (use_op && !emb_has_op)
    throw ParamError("embedding", "tt needs an embedding compressed with a method that runs as an embedding operator (" +
                                      methods_with_embedding_op() + "), but '" + emb + "' in " + weights.origin() +
                                      (emb_ct ? " is compressed with '" + emb_ct->method() + "'" : " is dense"));
  std::shared_ptr<const MatrixRM> table;           // (vocab, E) when dense
  std::shared_ptr<const TokenEmbedding> emb_op;    // when compressed
  if (use_op) {
    emb_op = emb_method->make_embedding(*emb_ct);
    net->embed = emb_op;
  } else {
    table = std::make_shared<const MatrixRM>(weights.matrix(emb));
    net->embed = std::make_shared<const DenseEmbedding>(table);
  }

  if (c.learned_positions) {
    std::string pn = ld.name(Role::kPosEmbed, -1, true);
    net->pos_embed = weights.matrix(pn);
    ld.expect_shape(pn, {c.max_positions + c.position_offset, d}, &net->pos_embed);
  } else {
    net->rope_inv_freq.resize(size_t(c.head_dim / 2));
    for (int64_t j = 0; j < c.head_dim / 2; ++j)  // as HF: 1 / theta^(2j / head_dim) in float32
      net->rope_inv_freq[j] = 1.0f / std::pow(c.rope_theta, float(2 * j) / float(c.head_dim));
  }
  if (E != d) {
    net->project_in = ld.linear(Role::kProjectIn, Role::kProjectIn, -1, E, d, false);
    net->project_out = ld.linear(Role::kProjectOut, Role::kProjectOut, -1, d, E, false);
  }

  net->layers.resize(size_t(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    TransformerLayer& L = net->layers[l];
    L.attn_norm = ld.norm(Role::kAttnNormW, Role::kAttnNormB, l, d);
    L.mlp_norm = ld.norm(Role::kMlpNormW, Role::kMlpNormB, l, d);
    if (tensor_name(arch_spec(c.arch), Role::kQkvW, l)) {
      L.qkv = ld.linear(Role::kQkvW, Role::kQkvB, l, d, c.q_dim() + 2 * c.kv_dim(), c.attn_bias);
    } else {
      L.q = ld.linear(Role::kQW, Role::kQB, l, d, c.q_dim(), c.attn_bias);
      L.k = ld.linear(Role::kKW, Role::kKB, l, d, c.kv_dim(), c.attn_bias);
      L.v = ld.linear(Role::kVW, Role::kVB, l, d, c.kv_dim(), c.attn_bias);
    }
    L.o = ld.linear(Role::kOW, Role::kOB, l, c.q_dim(), d, c.attn_bias);
    L.up = ld.linear(Role::kUpW, Role::kUpB, l, d, c.d_ff, c.mlp_bias);
    if (c.gated_mlp) L.gate = ld.linear(Role::kGateW, Role::kGateB, l, d, c.d_ff, c.mlp_bias);
    L.down = ld.linear(Role::kDownW, Role::kDownB, l, c.d_ff, d, c.mlp_bias);
  }
  if (c.final_norm) net->final_norm = ld.norm(Role::kFinalNormW, Role::kFinalNormB, -1, d);

  // LM head: tied to the embedding, or its own (possibly compressed) matrix. A head whose rows are
  // an embedding operator (tied to a compressed embedding, or compressed that way itself) is
  // streamed from it or decoded once ("materialize").
  const std::string head_name = c.tied_head ? "" : ld.name(Role::kLmHead, -1, true);
  const v1::CompressedTensor* head_ct = head_name.empty() ? nullptr : weights.compressed(head_name);
  std::shared_ptr<const TokenEmbedding> head_rows = c.tied_head ? emb_op : nullptr;
  if (head_ct)
    if (auto op = make_compressed_embedding(*head_ct)) head_rows = std::move(op);
  if (head_rows && opt.head == HeadMode::kStream) {
    net->head = std::make_unique<StreamHead>(head_rows, opt.stream_block_rows);
  } else if (head_rows) {
    auto m = std::make_shared<MatrixRM>(head_rows->vocab(), head_rows->dim());
    head_rows->decode_range(0, head_rows->vocab(), m->data());
    net->head = std::make_unique<MatrixHead>(std::move(m), "materialize");
  } else if (c.tied_head) {
    net->head = std::make_unique<MatrixHead>(table, "dense");
  } else if (auto op = head_ct ? make_compressed_linear(*head_ct) : nullptr) {
    net->head = std::make_unique<LinearHead>(std::move(op));
  } else {
    net->head = std::make_unique<MatrixHead>(std::make_shared<const MatrixRM>(weights.matrix(head_name)), "dense");
  }
  return net;
}

}  // namespace tsm
