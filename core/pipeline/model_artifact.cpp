#include "pipeline/model_artifact.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "formats/array_pack.h"
#include "pipeline/artifact_builder.h"
#include "pipeline/baselines.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "common/atomic_file.h"
#include "common/tensor_pattern.h"
#include "metrics/metrics.h"
#include "model/arch_table.h"
#include "model/evaluate.h"
#include "model/generate.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_quality.h"
#include "pipeline/model_weights.h"

namespace tsm {

namespace {

// Checkpoint names of the linear weights of every layer, mapped to the layer's operator slot.
struct LinearSlot {
  int64_t layer;
  Role role;
};

std::map<std::string, LinearSlot> linear_slots(const ModelConfig& cfg) {
  const ArchSpec& spec = arch_spec(cfg.arch);
  std::map<std::string, LinearSlot> out;
  for (int64_t l = 0; l < cfg.n_layer; ++l)
    for (Role r : {Role::kQkvW, Role::kQW, Role::kKW, Role::kVW, Role::kOW, Role::kUpW, Role::kGateW, Role::kDownW})
      if (auto n = tensor_name(spec, r, l)) {
        out[*n] = {l, r};
        const std::string pre = spec.optional_prefix;
        if (!pre.empty() && n->rfind(pre, 0) == 0) out[n->substr(pre.size())] = {l, r};
      }
  return out;
}

std::unique_ptr<LinearOp>* slot_op(TransformerLayer& L, Role r) {
  switch (r) {
    case Role::kQkvW: return &L.qkv;
    case Role::kQW: return &L.q;
    case Role::kKW: return &L.k;
    case Role::kVW: return &L.v;
    case Role::kOW: return &L.o;
    case Role::kUpW: return &L.up;
    case Role::kGateW: return &L.gate;
    case Role::kDownW: return &L.down;
    default: return nullptr;
  }
}

// Passes through to the wrapped layer and accumulates the covariance sum x^T x of its inputs.
class RecordingLinear final : public LinearOp {
 public:
  explicit RecordingLinear(std::unique_ptr<LinearOp> op)
      : op_(std::move(op)), sum_(MatrixRMd::Zero(op_->in_features(), op_->in_features())) {}
  int64_t in_features() const override { return op_->in_features(); }
  int64_t out_features() const override { return op_->out_features(); }
  void forward(const float* x, int64_t n, float* y) const override {
    const Eigen::Map<const MatrixRM> X(x, n, in_features());
    const MatrixRMd Xd = X.cast<double>();
    sum_.noalias() += Xd.transpose() * Xd;
    rows_ += n;
    op_->forward(x, n, y);
  }
  MatrixRMd covariance() const { return rows_ > 0 ? MatrixRMd(sum_ / double(rows_)) : sum_; }

 private:
  std::unique_ptr<LinearOp> op_;
  mutable MatrixRMd sum_;  ///< (in, in)
  mutable int64_t rows_ = 0;
};

/// The artifact's method: the one method of the plan, or its methods joined with '+' (a mixed plan).
std::string plan_method(const ModelPlan& plan) {
  std::vector<std::string> ms;
  for (const auto& t : plan.tensors)
    if (std::find(ms.begin(), ms.end(), t.method) == ms.end()) ms.push_back(t.method);
  std::string out;
  for (const auto& m : ms) out += (out.empty() ? "" : "+") + m;
  return out;
}

bool is_in_out_linear(const ModelConfig& cfg, const std::map<std::string, LinearSlot>& slots, const std::string& name) {
  return arch_spec(cfg.arch).linear_layout == WeightLayout::kInOut && slots.count(name) > 0;
}

}  // namespace

ModelPlan plan_model_artifact(const std::vector<TensorMeta>& tensors, const json& config, std::span<const MethodRule> rules,
                              const ModelArtifactOptions& opt) {
  struct Rule {
    const Codec* codec;
    const MethodRule* rule;
    TensorPattern re;
  };
  std::vector<Rule> compiled;
  for (const auto& r : rules)
    compiled.push_back({&find_codec(r.method), &r,
                        TensorPattern(r.pattern, r.full_match ? TensorPattern::Anchor::kFull : TensorPattern::Anchor::kSearch)});
  ModelPlan plan;
  // The architecture is optional for compression (any safetensors model can be compressed) but
  // needed for orientation of Conv1D weights, calibration and evaluation.
  try {
    plan.cfg = parse_model_config(config);
  } catch (const Error&) {
  }
  const auto slots = plan.cfg ? linear_slots(*plan.cfg) : std::map<std::string, LinearSlot>{};
  if (plan.cfg) {  // the user's own sequences, checked before any work
    if (opt.eval) check_given_sequences(opt.eval_set, plan.cfg->vocab, plan.cfg->max_positions, "evaluation.sequences");
    if (opt.calibrate) check_given_sequences(opt.calib_set, plan.cfg->vocab, plan.cfg->max_positions, "calibrate.sequences");
  }
  if (opt.calibrate) {
    bool any = false;
    for (const auto& r : compiled) any = any || r.codec->calibrates();
    if (!any)
      throw ParamError("calibrate", "calibration-aware compression is implemented for " + calibrating_methods() + " only, not " +
                                        (rules.empty() ? std::string("none") : rules.front().method));
    if (!plan.cfg) throw ParamError("calibrate", "needs a model the runtime can run (gpt2, opt or llama config.json)");
  }
  for (const auto& t : tensors) {
    const std::string& n = t.name;
    if (t.shape.size() != 2 || !is_float(t.dtype)) continue;
    const auto hit = std::find_if(compiled.begin(), compiled.end(), [&](const Rule& r) { return r.re.matches(n); });
    if (hit == compiled.end()) continue;
    const Codec& codec = *hit->codec;
    json p = hit->rule->params.is_null() ? json::object() : hit->rule->params;
    if (codec.takes_orientation() && plan.cfg && !p.contains("orientation") && is_in_out_linear(*plan.cfg, slots, n))
      p["orientation"] = "in_out";
    json r;
    try {
      r = codec.resolve(p, t.shape[0], t.shape[1]);
      if (!opt.calibrate && codec.needs_calibration(r))
        throw ParamError("calibrate", "these parameters need calibration data: add calibrate (--calibrate in the CLI)");
    } catch (const ParamError& e) {
      throw ParamError(e.field(), std::string("tensor '") + n + "' (" + std::to_string(t.shape[0]) + " x " +
                                      std::to_string(t.shape[1]) + "): " + e.what());
    }
    plan.tensors.push_back({n, std::string(codec.name()), std::move(r)});
    plan.elements += t.shape[0] * t.shape[1];
  }
  if (plan.tensors.empty()) {
    std::string names, patterns;
    for (const auto& t : tensors) {
      if (t.shape.size() != 2) continue;
      names += (names.empty() ? "" : ", ") + t.name;
      if (names.size() > 300) { names += ", ..."; break; }
    }
    for (const auto& r : rules) patterns += (patterns.empty() ? "'" : ", '") + r.pattern.substr(0, 200) + "'";
    throw ParamError("tensors", "no 2-D float tensor of the model matches " + patterns + " (2-D tensors: " + names + ")");
  }
  return plan;
}

ModelPlan plan_model_artifact(const std::vector<TensorMeta>& tensors, const json& config, const std::string& tensor_regex,
                              const std::string& method, const json& params, const ModelArtifactOptions& opt) {
  const MethodRule rule{tensor_regex, false, method, params};
  return plan_model_artifact(tensors, config, std::span<const MethodRule>(&rule, 1), opt);
}

std::vector<TensorMeta> tensor_metas(const HfModelDir& model) {
  std::vector<TensorMeta> out;
  for (const auto& n : model.tensor_names()) out.push_back({n, model.at(n).dtype, model.at(n).shape});
  return out;
}

ModelPlan plan_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                              const json& params, const ModelArtifactOptions& opt) {
  return plan_model_artifact(tensor_metas(model), model.config(), tensor_regex, method, params, opt);
}

v1::Artifact build_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                                  const json& params, const CodecContext& ctx, const std::string& source_sha256) {
  return build_model_artifact(model, tensor_regex, method, params, ctx, source_sha256, ModelArtifactOptions{});
}

v1::Artifact build_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                                  const json& params, const CodecContext& ctx, const std::string& source_sha256,
                                  const ModelArtifactOptions& opt, BuildTimings* timings) {
  const ModelPlan plan = plan_model_artifact(model, tensor_regex, method, params, opt);
  json job = {{"tensors", tensor_regex}, {"params", params.is_null() ? json::object() : params}};
  return build_model_artifact(model, plan, ctx, source_sha256, opt, job, timings);
}

bool stored_in_out_weight(const ModelConfig& cfg, const std::string& name) { return is_in_out_linear(cfg, linear_slots(cfg), name); }

std::vector<float> token_frequency_weights(const SequenceSet& calib, int64_t vocab) {
  std::vector<double> counts(size_t(vocab), 1.0);
  double total = double(vocab);
  for (const auto& s : calib.seqs)
    for (int32_t id : s) counts[size_t(id)] += 1.0, total += 1.0;
  std::vector<float> w(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) w[i] = float(counts[i] * double(counts.size()) / total);
  return w;
}

std::map<std::string, MatrixRMd> layer_input_covariances(const HfModelDir& model, const std::set<std::string>& names,
                                                         const SequenceSet& calib) {
  std::map<std::string, MatrixRMd> out;
  auto net = load_transformer(ModelWeights::from_parts(model, nullptr));
  const auto slots = linear_slots(net->cfg);
  std::map<std::string, const RecordingLinear*> rec;
  for (const auto& n : names) {
    auto it = slots.find(n);
    if (it == slots.end()) continue;
    auto* p = slot_op(net->layers[it->second.layer], it->second.role);
    if (!p || !*p) continue;
    auto r = std::make_unique<RecordingLinear>(std::move(*p));
    rec[n] = r.get();
    *p = std::move(r);
  }
  if (rec.empty()) return out;
  for (const auto& s : calib.seqs) {
    KvCache cache = net->new_cache(int64_t(s.size()));
    std::vector<float> last(size_t(net->cfg.vocab));
    net->forward(s, cache, last.data(), false);
  }
  for (const auto& [n, r] : rec) out[n] = r->covariance();
  return out;
}

v1::CompressedTensor encode_model_tensor(ConstMatrixRef W, const std::string& name, DType source_dtype, const std::string& method,
                                         const json& params, const MatrixRMd* covariance, const ModelArtifactOptions& opt,
                                         const CodecContext& ctx) {
  const Codec& codec = find_codec(method);
  v1::CompressedTensor ct;
  try {
    if (covariance) {
      const json r = codec.resolve(params, W.rows(), W.cols());
      const Calibration cal{covariance, opt.adam_steps, opt.whitening};
      const auto t0 = std::chrono::steady_clock::now();
      ct = codec.encode_calibrated(W, r, cal, ctx);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ct.set_name(name);
      ct.set_source_dtype(to_proto(source_dtype));
      const MatrixRM Wh = codec.decode(ct);
      fill_metrics(*ct.mutable_metrics(), error_stats(W, Wh), codec.stored_bytes(ct), W.rows(), W.cols(), dtype_size(source_dtype));
      ct.mutable_metrics()->set_seconds(secs);
      if (opt.baselines)  // the same generic baselines as compress_matrix gives an uncalibrated tensor
        for (auto& b : compute_baselines(W, ct.metrics().stored_bytes(), dtype_size(source_dtype))) ct.add_baselines()->Swap(&b);
    } else {
      ct = compress_matrix(W, name, source_dtype, method, params, ctx, CompressOptions{opt.baselines});
    }
  } catch (const ParamError& e) {
    throw ParamError(e.field(), std::string("tensor '") + name + "': " + e.what());
  }
  if (opt.baselines)
    for (auto& b : codec.own_baselines(W, params, ct.metrics().stored_bytes(), dtype_size(source_dtype))) ct.add_baselines()->Swap(&b);
  return ct;
}

v1::Artifact build_model_artifact(const HfModelDir& model, const ModelPlan& plan, const CodecContext& ctx,
                                  const std::string& source_sha256, const ModelArtifactOptions& opt, json job,
                                  BuildTimings* timings) {
  const auto& cfg = plan.cfg;
  const auto slots = cfg ? linear_slots(*cfg) : std::map<std::string, LinearSlot>{};
  std::map<std::string, const ModelPlan::Item*> selected;  // name -> its method and params
  for (const auto& t : plan.tensors) selected[t.name] = &t;
  const int64_t selected_elems = plan.elements;

  // Token weights: how often each id occurs in the calibration sequences (add-one smoothed, mean 1),
  // for codecs that weight the rows of a (vocab, d) table (tt-token's ratio allocation).
  std::vector<float> token_weights;  // (vocab)
  const bool weighted_table = cfg && std::any_of(plan.tensors.begin(), plan.tensors.end(), [&](const ModelPlan::Item& t) {
    return find_method(t.method).make_embedding && model.at(t.name).shape[0] == cfg->vocab;
  });
  const bool want_weights = opt.token_weights && weighted_table;
  // The calibration sequences (token weights, layer inputs), held out from the evaluation ones.
  SequenceSet calib;
  if (want_weights || opt.calibrate) {
    const auto dense = load_transformer(ModelWeights::from_parts(model, nullptr));
    calib = opt.calib_sampled ? *opt.calib_sampled : make_sequence_set(*dense, opt.calib_set, "calibration");
    if (opt.eval) {
      const bool compare_ids = !opt.calib_set.given.empty() || !opt.eval_set.given.empty();
      require_disjoint(opt.calib_set, calib, opt.eval_set,
                       compare_ids ? (opt.eval_sampled ? *opt.eval_sampled : make_sequence_set(*dense, opt.eval_set, "evaluation"))
                                   : SequenceSet{},
                       dense->cfg.max_positions);
    }
  }
  if (want_weights) {
    token_weights = token_frequency_weights(calib, cfg->vocab);
    uint64_t tokens = 0;
    for (const auto& s : calib.seqs) tokens += s.size();
    job["token_weights"] = {{"sequences", calib.seqs.size()}, {"tokens", tokens}};
  }

  // Calibration: inputs of every selected linear layer whose codec calibrates, from the dense model.
  std::map<std::string, MatrixRMd> covariances;
  if (opt.calibrate) {
    std::set<std::string> names;
    for (const auto& [n, item] : selected)
      if (find_codec(item->method).calibrates()) names.insert(n);
    covariances = layer_input_covariances(model, names, calib);
  }

  v1::Artifact art;
  art.set_format_version(kArtifactFormatVersion);
  art.set_source_sha256(source_sha256);
  art.set_method(plan_method(plan));
  if (opt.calibrate)
    job["calibrate"] = {{"sequences", opt.calib_set.given.empty() ? json(opt.calib_set.sequences) : json(opt.calib_set.given.size())},
                        {"length", opt.calib_set.length},
                        {"adam_steps", opt.adam_steps},
                        {"whitening", opt.whitening}};
  art.set_params_json(job.dump());
  art.set_generator(std::string("tensorslm ") + TSM_VERSION);
  art.set_config_json(model.config().dump(2));
  if (auto tp = model.tokenizer_path()) art.set_tokenizer_json(read_file(*tp));

  std::vector<double> sq_norms;
  uint64_t pass_bytes = 0, pass_src_bytes = 0, pass_elems = 0;
  int64_t done_elems = 0;
  for (const auto& n : model.tensor_names()) {
    ctx.check_cancel();
    const Tensor& t = model.at(n);
    const auto pick = selected.find(n);
    if (pick == selected.end()) {
      v1::Array* a = art.add_passthrough();
      a->CopyFrom(make_array(n, t.dtype, t.shape, t.bytes.data(), t.bytes.size()));
      pass_bytes += t.bytes.size() + 8ull * t.shape.size();
      pass_src_bytes += t.bytes.size();
      pass_elems += uint64_t(t.numel());
      continue;
    }
    const MatrixRM W = t.to_matrix();
    const json& p = pick->second->params;
    const std::string& method = pick->second->method;
    CodecContext sub = ctx;
    const int64_t base = done_elems;
    sub.progress = [&, base](double f) {
      ctx.report((double(base) + f * double(t.numel())) / double(selected_elems));
    };
    if (!token_weights.empty() && token_weights.size() == size_t(W.rows())) sub.row_weights = token_weights;
    else if (!(ctx.row_weights.size() == size_t(W.rows()))) sub.row_weights = {};
    const auto cov = covariances.find(n);
    v1::CompressedTensor ct =
        encode_model_tensor(W, n, t.dtype, method, p, cov == covariances.end() ? nullptr : &cov->second, opt, sub);
    sq_norms.push_back(double(W.squaredNorm()));
    art.add_tensors()->Swap(&ct);
    done_elems += t.numel();
  }

  // Whole model: the compressed tensors' totals plus the passthrough bytes.
  v1::Metrics total = total_metrics(art.tensors(), sq_norms);
  total.set_stored_bytes(total.stored_bytes() + pass_bytes);
  total.set_dense_f32_bytes(total.dense_f32_bytes() + 4 * pass_elems);
  total.set_source_bytes(total.source_bytes() + pass_src_bytes);
  total.set_ratio_f32(double(total.dense_f32_bytes()) / double(std::max<uint64_t>(1, total.stored_bytes())));
  total.set_ratio_source(double(total.source_bytes()) / double(std::max<uint64_t>(1, total.stored_bytes())));
  *art.mutable_total() = total;

  if (opt.eval && cfg) {
    ctx.check_cancel();
    try {
      *art.mutable_quality() = measure_model_quality(model, art, opt, &ctx);
    } catch (const Canceled&) {
      throw;
    } catch (const Error& e) {  // architecture the runtime cannot run: report why instead of failing the job
      art.mutable_quality()->set_source(std::string("not evaluated: ") + e.what());
    }
  }
  take_run_measurements(art, timings);
  ctx.report(1.0);
  return art;
}

}  // namespace tsm
