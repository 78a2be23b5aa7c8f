// The planner (see planner.h).
#include "pipeline/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "common/number_text.h"
#include "common/tensor_pattern.h"
#include "methods/method_table.h"
#include "model/evaluate.h"
#include "pipeline/metrics_json.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_weights.h"

namespace tsm {

json with_calibration(const Codec& c, json params, bool calibrate) {
  if (!calibrate || !c.calibrates() || params.contains("calibration")) return params;
  const json schema = c.param_schema();
  const json* prop = schema.contains("properties") && schema["properties"].contains("calibration") ? &schema["properties"]["calibration"] : nullptr;
  if (prop && prop->contains("enum")) {
    for (const auto& v : (*prop)["enum"])
      if (v == "gptq") params["calibration"] = "gptq";
  }
  return params;
}

namespace {

// ---- allocation over Pareto sets --------------------------------------------------------------

struct Pt {
  uint64_t bytes;
  double damage;
};

/// Indices of the lower convex hull of `opts` (bytes ascending, damage descending: a Pareto set).
std::vector<int> lower_hull(const std::vector<Pt>& opts) {
  std::vector<int> h;
  for (int i = 0; i < int(opts.size()); ++i) {
    while (h.size() >= 2) {
      const Pt& a = opts[size_t(h[h.size() - 2])];
      const Pt& b = opts[size_t(h.back())];
      const Pt& c = opts[size_t(i)];
      // b is above the segment a-c (or on it): drop it
      const double cross = (double(b.bytes) - double(a.bytes)) * (c.damage - a.damage) -
                           (b.damage - a.damage) * (double(c.bytes) - double(a.bytes));
      if (cross <= 0) h.pop_back();
      else break;
    }
    h.push_back(i);
  }
  return h;
}

struct Alloc {
  std::vector<int> pick;  ///< per tensor, index into its Pareto options
  uint64_t bytes = 0;     ///< planned tensors only
  double damage = 0;
};

class Allocator {
 public:
  explicit Allocator(std::vector<std::vector<Pt>> opts) : opts_(std::move(opts)) {
    struct Step {
      double slope;
      int tensor, to;
    };
    std::vector<Step> steps;
    Alloc a;
    a.pick.assign(opts_.size(), 0);
    for (size_t t = 0; t < opts_.size(); ++t) {
      const auto h = lower_hull(opts_[t]);
      a.pick[t] = h.front();
      a.bytes += opts_[t][size_t(h.front())].bytes;
      a.damage += opts_[t][size_t(h.front())].damage;
      for (size_t i = 1; i < h.size(); ++i) {
        const Pt& p = opts_[t][size_t(h[i - 1])];
        const Pt& q = opts_[t][size_t(h[i])];
        steps.push_back({(p.damage - q.damage) / double(q.bytes - p.bytes), int(t), h[i]});
      }
    }
    // A tensor's hull slopes decrease, so this order applies each tensor's steps in turn.
    std::stable_sort(steps.begin(), steps.end(), [](const Step& x, const Step& y) { return x.slope > y.slope; });
    states_.push_back(a);
    for (const auto& s : steps) {
      const Pt& from = opts_[size_t(s.tensor)][size_t(a.pick[size_t(s.tensor)])];
      const Pt& to = opts_[size_t(s.tensor)][size_t(s.to)];
      a.bytes += to.bytes - from.bytes;
      a.damage += to.damage - from.damage;
      a.pick[size_t(s.tensor)] = s.to;
      states_.push_back(a);
    }
  }
  /// The sweep's states, bytes ascending, estimated damage descending.
  const std::vector<Alloc>& states() const { return states_; }
  /// The best hull state within `budget`, then filled greedily with any Pareto option that fits
  /// (largest damage saved per byte first). nullopt when even the smallest state does not fit.
  std::optional<Alloc> for_budget(uint64_t budget) const {
    if (states_.front().bytes > budget) return std::nullopt;
    Alloc a = states_.front();
    for (const auto& s : states_)
      if (s.bytes <= budget) a = s;
    for (;;) {
      double best = 0;
      int bt = -1, bi = -1;
      for (size_t t = 0; t < opts_.size(); ++t) {
        const Pt& cur = opts_[t][size_t(a.pick[t])];
        for (size_t i = size_t(a.pick[t]) + 1; i < opts_[t].size(); ++i) {
          const Pt& o = opts_[t][i];
          if (a.bytes + (o.bytes - cur.bytes) > budget) break;
          const double gain = (cur.damage - o.damage) / double(std::max<uint64_t>(1, o.bytes - cur.bytes));
          if (gain > best) best = gain, bt = int(t), bi = int(i);
        }
      }
      if (bt < 0) return a;
      const Pt& cur = opts_[size_t(bt)][size_t(a.pick[size_t(bt)])];
      const Pt& o = opts_[size_t(bt)][size_t(bi)];
      a.bytes += o.bytes - cur.bytes;
      a.damage += o.damage - cur.damage;
      a.pick[size_t(bt)] = bi;
    }
  }
  /// The smallest hull state whose estimated damage is at most `kl` (the most accurate one if none is).
  const Alloc& for_damage(double kl) const {
    for (const auto& s : states_)
      if (s.damage <= kl) return s;
    return states_.back();
  }

 private:
  std::vector<std::vector<Pt>> opts_;
  std::vector<Alloc> states_;
};

/// Up to n states of the sweep, evenly spaced in log bytes, first and last included.
std::vector<size_t> spaced_states(const std::vector<Alloc>& states, size_t n) {
  std::vector<size_t> out;
  const double lo = std::log(double(std::max<uint64_t>(1, states.front().bytes)));
  const double hi = std::log(double(std::max<uint64_t>(1, states.back().bytes)));
  size_t j = 0;
  for (size_t k = 0; k < n; ++k) {
    const double target = n == 1 ? hi : lo + (hi - lo) * double(k) / double(n - 1);
    while (j + 1 < states.size() && std::log(double(std::max<uint64_t>(1, states[j].bytes))) < target) ++j;
    if (out.empty() || out.back() != j) out.push_back(j);
  }
  if (out.back() != states.size() - 1) out.push_back(states.size() - 1);
  return out;
}

}  // namespace

// ---- candidates -------------------------------------------------------------------------------

std::string target_text(const PlanTarget& t) {
  switch (t.kind) {
    case PlanTarget::Kind::kRatio: return "ratio " + number_text("%g", t.value);
    case PlanTarget::Kind::kBytes: return "bytes " + number_text("%.0f", t.value);
    case PlanTarget::Kind::kMaxKl: return "max_kl " + number_text("%g", t.value);
  }
  return "";
}

SequenceSpec PlannerOptions::default_repair_spec() {
  SequenceSpec s = default_eval_spec();
  s.seed = 2000000;
  return s;
}

std::vector<PlanCandidate> parse_plan_candidates(std::string_view list, const std::string& field) {
  std::vector<PlanCandidate> out;
  size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (list[i] == ',' || list[i] == ' ')) ++i;
    if (i >= list.size()) break;
    size_t j = i;
    while (j < list.size() && list[j] != ',' && list[j] != '{' && list[j] != ' ') ++j;
    PlanCandidate c;
    c.method = std::string(list.substr(i, j - i));
    c.params = json::object();
    if (!try_find_method(c.method))
      throw ParamError(field, "unknown method '" + c.method.substr(0, 64) + "' (see `tensorslm methods`)");
    if (j < list.size() && list[j] == '{') {  // a JSON object up to its matching brace
      int depth = 0;
      size_t k = j;
      bool in_str = false;
      for (; k < list.size(); ++k) {
        const char ch = list[k];
        if (in_str) {
          if (ch == '\\') ++k;
          else if (ch == '"') in_str = false;
        } else if (ch == '"') in_str = true;
        else if (ch == '{') ++depth;
        else if (ch == '}' && --depth == 0) break;
      }
      if (k >= list.size()) throw ParamError(field, "unclosed '{' in the params of '" + c.method + "'");
      c.params = json::parse(list.substr(j, k - j + 1), nullptr, false);
      if (!c.params.is_object()) throw ParamError(field, "the params of '" + c.method + "' are not a JSON object");
      j = k + 1;
    }
    c.label = std::string(list.substr(i, j - i));
    if (std::any_of(out.begin(), out.end(), [&](const PlanCandidate& o) { return o.label == c.label; }))
      throw ParamError(field, "'" + c.label + "' is listed twice");
    out.push_back(std::move(c));
    i = j;
  }
  if (out.empty()) throw ParamError(field, "names no method");
  if (out.size() > 64) throw ParamError(field, "at most 64 candidates");
  return out;
}

std::string default_plan_candidates_text() {
  std::string s;
  for (const Codec* c : reference_codecs()) s += (s.empty() ? "" : ",") + std::string(c->name());
  // Corrections of the coarsest types: where a low-rank factor can pay for its bytes.
  return s + ",qlr{\"base\":\"q3_k\",\"rank\":16},qlr{\"base\":\"q2_k\",\"rank\":16}";
}

std::vector<PlanCandidate> default_plan_candidates() { return parse_plan_candidates(default_plan_candidates_text()); }

std::vector<MethodRule> spec_rules(const json& spec) {
  if (!spec.is_object() || !spec.contains("entries") || !spec["entries"].is_array() || spec["entries"].empty())
    throw ParamError("entries", "the spec has no entries (a list of {tensor, method, params})");
  std::vector<MethodRule> rules;
  for (const auto& e : spec["entries"]) {
    if (!e.is_object() || !e.contains("tensor") || !e["tensor"].is_string() || !e.contains("method") || !e["method"].is_string())
      throw ParamError("entries", "every entry needs a string tensor and a string method");
    const json params = e.contains("params") ? e["params"] : json::object();
    if (!params.is_object()) throw ParamError("entries", "the params of '" + e["tensor"].get<std::string>() + "' are not an object");
    rules.push_back({e["tensor"].get<std::string>(), true, e["method"].get<std::string>(), params});
  }
  return rules;
}

// ---- the plan ---------------------------------------------------------------------------------

std::vector<PlanCandidate> calibration_variants(const std::vector<PlanCandidate>& cands, bool calibrate) {
  std::vector<PlanCandidate> out;
  for (const auto& c : cands) {
    const Codec* codec = try_find_codec(c.method);
    const json cal = codec ? with_calibration(*codec, c.params, calibrate) : c.params;
    if (!codec || cal == c.params) {
      out.push_back(c);
      continue;
    }
    PlanCandidate plain = c, fitted = c;
    plain.params["calibration"] = "none";
    fitted.params = cal;
    fitted.label = c.label + "+gptq";
    out.push_back(std::move(plain));
    out.push_back(std::move(fitted));
  }
  return out;
}

PlanOutcome plan_model(const HfModelDir& model, const PlannerOptions& opt_in, const CodecContext& ctx, const std::string& source_sha256,
                       const PlanProgress& progress) {
  // Calibrated candidates are offered with and without GPTQ: on few or unrepresentative calibration
  // sequences error feedback can lose to plain rounding on held-out text, and the planner measures.
  PlannerOptions opt = opt_in;
  opt.candidates = calibration_variants(opt_in.candidates, opt_in.calibrate);
  auto report = [&](std::string_view phase, double f) {
    if (progress) progress(phase, std::clamp(f, 0.0, 1.0));
  };
  PlanOutcome out;
  PlanReport& rep = out.report;
  rep.target = opt.target;
  switch (opt.target.kind) {
    case PlanTarget::Kind::kRatio:
      if (!(opt.target.value > 1) || !std::isfinite(opt.target.value)) throw ParamError("plan.target_ratio", "must be a number > 1");
      break;
    case PlanTarget::Kind::kBytes:
      if (!(opt.target.value >= 1) || !std::isfinite(opt.target.value)) throw ParamError("plan.target_bytes", "must be >= 1");
      break;
    case PlanTarget::Kind::kMaxKl:
      if (!(opt.target.value > 0) || !std::isfinite(opt.target.value)) throw ParamError("plan.max_kl", "must be a number > 0");
      break;
  }
  if (opt.candidates.empty()) throw ParamError("plan.methods", "names no method");
  if (opt.sensitivity_sequences < 1) throw ParamError("plan.sensitivity_sequences", "must be >= 1");

  // What may be planned: the 2-D float tensors matching `tensors`; the rest is fixed.
  const std::vector<TensorMeta> metas = tensor_metas(model);
  std::optional<TensorPattern> pick;
  if (!opt.tensors.empty()) pick.emplace(opt.tensors, TensorPattern::Anchor::kSearch);
  std::vector<const TensorMeta*> planned;
  for (const auto& m : metas) {
    const uint64_t n = uint64_t(shape_numel(m.shape));
    rep.dense_f32_bytes += 4 * n;
    if (m.shape.size() == 2 && is_float(m.dtype) && (!pick || pick->matches(m.name))) planned.push_back(&m);
    else rep.fixed_bytes += n * dtype_size(m.dtype) + 8ull * m.shape.size();
  }
  if (planned.empty()) throw ParamError("tensors", "no 2-D float tensor of the model matches '" + opt.tensors.substr(0, 200) + "'");

  // Byte and ratio targets: the whole-model budget.
  const uint64_t budget = opt.target.kind == PlanTarget::Kind::kBytes   ? uint64_t(opt.target.value)
                          : opt.target.kind == PlanTarget::Kind::kRatio ? uint64_t(std::floor(double(rep.dense_f32_bytes) / opt.target.value))
                                                                        : 0;
  if (opt.target.kind != PlanTarget::Kind::kMaxKl) {  // before any work: a budget the fixed tensors already fill
    if (budget <= rep.fixed_bytes)
      throw ParamError(opt.target.kind == PlanTarget::Kind::kBytes ? "plan.target_bytes" : "plan.target_ratio",
                       target_text(opt.target) + " leaves no bytes for the planned tensors: the tensors kept as stored take " +
                           std::to_string(rep.fixed_bytes) + " of " + std::to_string(budget) + " bytes");
  }

  // The dense model and the three sequence sets (sensitivity = the first calibration sequences).
  const auto dense = load_transformer(ModelWeights::from_parts(model, nullptr));
  const int64_t context = dense->cfg.max_positions;
  check_given_sequences(opt.calib_set, dense->cfg.vocab, context, "calibrate.sequences");
  check_given_sequences(opt.repair_set, dense->cfg.vocab, context, "plan.repair.sequences");
  check_given_sequences(opt.verify_set, dense->cfg.vocab, context, "evaluation.sequences");
  const bool any_embedding_op = std::any_of(opt.candidates.begin(), opt.candidates.end(),
                                            [](const PlanCandidate& c) { return find_method(c.method).make_embedding != nullptr; });
  SequenceSpec calib_spec = opt.calib_set;  // data-free candidates need only the sensitivity sequences
  if (!opt.calibrate && !any_embedding_op && calib_spec.given.empty())
    calib_spec.sequences = std::min(sampled_sequence_count(calib_spec, context), opt.sensitivity_sequences);
  report("calibrate", 0);
  const SequenceSet calib = make_sequence_set(*dense, calib_spec, "calibration");
  ctx.check_cancel();
  report("calibrate", 0.3);
  const SequenceSet repair = make_sequence_set(*dense, opt.repair_set, "repair");
  ctx.check_cancel();
  report("calibrate", 0.45);
  const SequenceSet verify = make_sequence_set(*dense, opt.verify_set, "evaluation");
  ctx.check_cancel();
  report("calibrate", 0.6);
  require_disjoint(opt.calib_set, calib, opt.verify_set, verify, context);
  require_disjoint(opt.repair_set, repair, opt.verify_set, verify, context);
  require_disjoint(opt.calib_set, calib, opt.repair_set, repair, context);
  SequenceSet sens;
  sens.seqs.assign(calib.seqs.begin(), calib.seqs.begin() + std::min<size_t>(calib.seqs.size(), size_t(opt.sensitivity_sequences)));
  sens.source = "the first " + std::to_string(sens.seqs.size()) + " of " + calib.source;
  rep.sensitivity_source = sens.source;
  rep.repair_source = repair.source;
  rep.verify_source = verify.source;

  // Measured or proxy sensitivity (see the header).
  uint64_t params = 0;
  for (const auto& m : metas) params += uint64_t(shape_numel(m.shape));
  const bool proxy = opt.sensitivity == PlannerOptions::Sensitivity::kProxy ||
                     (opt.sensitivity == PlannerOptions::Sensitivity::kAuto &&
                      double(params) * double(planned.size()) * double(opt.candidates.size()) > 5e9);
  rep.sensitivity_mode = proxy ? "proxy" : "measured";
  std::vector<bool> dense_cfg_in_out;
  for (const auto* m : planned) dense_cfg_in_out.push_back(stored_in_out_weight(dense->cfg, m->name));

  // Layer inputs (GPTQ, calibrated corrections, the proxy's norm) and token weights, as the final
  // build computes them.
  std::map<std::string, MatrixRMd> cov;
  if (opt.calibrate || proxy) {
    std::set<std::string> names;
    for (const auto* m : planned) names.insert(m->name);
    cov = layer_input_covariances(model, names, calib);
    ctx.check_cancel();
  }
  report("calibrate", 0.9);
  std::vector<float> token_weights;
  if (any_embedding_op || proxy) token_weights = token_frequency_weights(calib, dense->cfg.vocab);
  report("calibrate", 1);

  // Every candidate of every planned tensor: encoded, sized, and its damage measured.
  const size_t T = planned.size(), C = opt.candidates.size();
  std::vector<std::vector<std::optional<v1::CompressedTensor>>> enc(T, std::vector<std::optional<v1::CompressedTensor>>(C));
  std::vector<std::vector<TensorOption>> all_opts(T);  // per tensor: keep, then the candidates that fit
  std::vector<std::vector<int>> opt_cand(T);            // candidate index per option (-1: keep)
  std::vector<bool> used(C, false);
  ModelArtifactOptions eopt;
  eopt.baselines = false;
  eopt.eval = false;
  const ReferenceLogits sens_ref(*dense, sens.seqs), repair_ref(*dense, repair.seqs);  // the dense side, once
  ctx.check_cancel();
  auto kl_of = [&](const v1::Artifact& partial, const ReferenceLogits& ref) {
    const auto net = load_transformer(ModelWeights::from_parts(model, std::make_shared<const v1::Artifact>(partial)));
    return ref.compare(*net, "").kl_mean;
  };
  // The error of a candidate in the norm the model sees: tr(E C E^T) over the inputs of a linear
  // layer (C its inputs' covariance, E in (out, in) orientation), else the rows' squared error
  // weighted by token frequency (an embedding) or uniformly.
  auto weighted_error = [&](const MatrixRM& W, const MatrixRM& Wh, size_t t) {
    const MatrixRM E = W - Wh;
    const auto cv = cov.find(planned[t]->name);
    if (cv != cov.end()) {
      const bool io = dense_cfg_in_out[t];
      const Eigen::MatrixXf Cf = cv->second.cast<float>();
      if (io) return double(((Cf * E).array() * E.array()).sum());  // E stored (in, out)
      return double(((E * Cf).array() * E.array()).sum());
    }
    const Eigen::VectorXd rows = E.rowwise().squaredNorm().cast<double>();
    if (token_weights.size() == size_t(E.rows())) return (rows.array() * Eigen::Map<const Eigen::VectorXf>(token_weights.data(), E.rows()).cast<double>().array()).sum();
    return rows.sum();
  };
  for (size_t t = 0; t < T; ++t) {
    const TensorMeta& m = *planned[t];
    const Tensor& src = model.at(m.name);
    const MatrixRM W = src.to_matrix();
    all_opts[t].push_back({"keep", "", json::object(), uint64_t(src.bytes.size()) + 8ull * m.shape.size(), 0.0, 0.0});
    opt_cand[t].push_back(-1);
    for (size_t c = 0; c < C; ++c) {
      ctx.check_cancel();
      report("candidates", (double(t) * double(C) + double(c)) / double(T * C));
      const PlanCandidate& cand = opt.candidates[c];
      const Codec& codec = find_codec(cand.method);
      const auto cv = cov.find(m.name);
      const bool cal = opt.calibrate && codec.calibrates() && cv != cov.end();  // linear layers only
      ModelArtifactOptions popt = eopt;
      popt.calibrate = cal;
      const MethodRule rule{TensorPattern::quote(m.name), true, cand.method, with_calibration(codec, cand.params, cal)};
      json resolved;
      try {
        const ModelPlan p = plan_model_artifact(metas, model.config(), std::span<const MethodRule>(&rule, 1), popt);
        resolved = p.tensors.at(0).params;
      } catch (const ParamError&) {
        continue;  // this candidate does not fit this tensor's shape
      }
      CodecContext sub;
      sub.cancel = ctx.cancel;
      sub.threads = ctx.threads;
      if (any_embedding_op && token_weights.size() == size_t(W.rows())) sub.row_weights = token_weights;
      v1::CompressedTensor ct = encode_model_tensor(W, m.name, src.dtype, cand.method, resolved,
                                                    cal ? &cv->second : nullptr, eopt, sub);
      double damage = 0;
      if (proxy) {
        damage = weighted_error(W, codec.decode(ct), t);  // scaled to KL below
      } else {
        v1::Artifact partial;
        *partial.add_tensors() = ct;
        damage = std::max(0.0, kl_of(partial, sens_ref));
      }
      const bool gptq_added = !cand.params.contains("calibration") && resolved.value("calibration", "") == "gptq";
      all_opts[t].push_back({cand.label + (gptq_added ? "+gptq" : ""), cand.method, resolved, ct.metrics().stored_bytes(), damage,
                             ct.metrics().rel_error()});
      opt_cand[t].push_back(int(c));
      enc[t][c] = std::move(ct);
      used[c] = true;
    }
    if (proxy && all_opts[t].size() > 1) {
      // One candidate measured end to end (the median weighted error) scales them all to KL.
      std::vector<size_t> order;  // candidates with a non-zero error, by error
      for (size_t i = 1; i < all_opts[t].size(); ++i)
        if (all_opts[t][i].damage > 0) order.push_back(i);
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return all_opts[t][a].damage < all_opts[t][b].damage; });
      if (order.empty()) continue;  // every candidate exact: no damage to scale
      const size_t ref = order[order.size() / 2];
      v1::Artifact partial;
      *partial.add_tensors() = *enc[t][size_t(opt_cand[t][ref])];
      const double kl = std::max(0.0, kl_of(partial, sens_ref));
      const double err = all_opts[t][ref].damage;
      const double alpha = err > 0 ? kl / err : 0;
      for (size_t i = 1; i < all_opts[t].size(); ++i) all_opts[t][i].damage *= alpha;
    }
  }
  for (size_t c = 0; c < C; ++c)
    if (!used[c]) throw ParamError("plan.methods", "'" + opt.candidates[c].label + "' fits none of the planned tensors");
  report("candidates", 1);

  // Pareto sets (bytes ascending, damage strictly descending).
  std::vector<std::vector<int>> pareto(T);  // indices into all_opts[t]
  std::vector<std::vector<Pt>> pts(T);
  for (size_t t = 0; t < T; ++t) {
    std::vector<int> idx(all_opts[t].size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
      const auto &x = all_opts[t][size_t(a)], &y = all_opts[t][size_t(b)];
      return x.bytes != y.bytes ? x.bytes < y.bytes : x.damage < y.damage;
    });
    double best = std::numeric_limits<double>::infinity();
    for (int i : idx) {
      const auto& o = all_opts[t][size_t(i)];
      if (o.damage < best) {
        pareto[t].push_back(i);
        pts[t].push_back({o.bytes, o.damage});
        best = o.damage;
      }
    }
    PlannedTensor pt;
    pt.name = planned[t]->name;
    pt.shape = planned[t]->shape;
    for (int i : pareto[t]) pt.options.push_back(all_opts[t][size_t(i)]);
    rep.tensors.push_back(std::move(pt));
  }
  const Allocator alloc(pts);
  const auto& states = alloc.states();
  auto whole = [&](uint64_t planned_bytes) { return rep.fixed_bytes + planned_bytes; };
  auto ratio = [&](uint64_t bytes) { return double(rep.dense_f32_bytes) / double(std::max<uint64_t>(1, bytes)); };

  // Measuring a plan end to end: the planned tensors of `picks` over the dense directory.
  auto partial_of = [&](const std::vector<int>& picks) {  // picks: per tensor, index into all_opts
    v1::Artifact a;
    for (size_t t = 0; t < T; ++t) {
      const int c = opt_cand[t][size_t(picks[t])];
      if (c >= 0) *a.add_tensors() = *enc[t][size_t(c)];
    }
    return a;
  };
  auto picks_of = [&](const Alloc& a) {
    std::vector<int> p(T);
    for (size_t t = 0; t < T; ++t) p[t] = pareto[t][size_t(a.pick[t])];
    return p;
  };
  auto bytes_of = [&](const std::vector<int>& picks) {
    uint64_t b = rep.fixed_bytes;
    for (size_t t = 0; t < T; ++t) b += all_opts[t][size_t(picks[t])].bytes;
    return b;
  };
  auto measure = [&](const std::vector<int>& picks) {
    ctx.check_cancel();
    const v1::Artifact a = partial_of(picks);
    return a.tensors_size() == 0 ? 0.0 : std::max(0.0, kl_of(a, repair_ref));
  };

  // The estimated frontier, a few of its points measured; every candidate uniformly.
  report("repair", 0);
  struct Measured {
    std::vector<int> picks;
    uint64_t bytes;
    double est, kl;
    std::string what;
  };
  std::vector<Measured> measured;
  auto keeps_all = [&](const Measured& m) {
    for (size_t t = 0; t < T; ++t)
      if (opt_cand[t][size_t(m.picks[t])] >= 0) return false;
    return true;
  };
  std::map<size_t, double> state_kl;  // sweep state -> measured KL
  const auto spaced = spaced_states(states, 8);
  for (size_t k = 0; k < spaced.size(); ++k) {
    const Alloc& s = states[spaced[k]];
    const auto p = picks_of(s);
    const double kl = measure(p);
    state_kl[spaced[k]] = kl;
    measured.push_back({p, whole(s.bytes), s.damage, kl, "frontier point"});
    report("repair", 0.4 * double(k + 1) / double(spaced.size()));
  }
  std::set<size_t> shown;
  for (size_t i : spaced_states(states, 24)) shown.insert(i);
  for (const auto& [i, kl] : state_kl) shown.insert(i);
  for (size_t i : shown) {  // the frontier as reported: sweep states thinned, the measured ones among them
    const auto it = state_kl.find(i);
    rep.frontier.push_back({whole(states[i].bytes), ratio(whole(states[i].bytes)), std::max(0.0, states[i].damage),
                            it == state_kl.end() ? std::nullopt : std::optional<double>(it->second)});
  }
  for (size_t c = 0; c < C; ++c) {
    // A "+gptq" variant applies to the layers with inputs; elsewhere (embeddings) its plain sibling,
    // listed just before it by calibration_variants, stands in.
    const bool fitted = c > 0 && opt.candidates[c].label == opt.candidates[c - 1].label + "+gptq";
    std::vector<int> p(T, 0);
    for (size_t t = 0; t < T; ++t) {
      for (size_t i = 0; i < opt_cand[t].size(); ++i)
        if (opt_cand[t][i] == int(c)) p[t] = int(i);
      if (p[t] == 0 && fitted)
        for (size_t i = 0; i < opt_cand[t].size(); ++i)
          if (opt_cand[t][i] == int(c - 1)) p[t] = int(i);
    }
    double est = 0;
    for (size_t t = 0; t < T; ++t) est += all_opts[t][size_t(p[t])].damage;
    const double kl = measure(p);
    rep.uniform.push_back({opt.candidates[c].label,
                           bytes_of(p), ratio(bytes_of(p)), kl});
    measured.push_back({p, bytes_of(p), est, kl, "uniform " + opt.candidates[c].label});
    report("repair", 0.4 + 0.4 * double(c + 1) / double(C));
  }
  std::sort(rep.uniform.begin(), rep.uniform.end(), [](const UniformPoint& a, const UniformPoint& b) { return a.bytes < b.bytes; });

  // Choose and repair.
  std::optional<Measured> chosen;
  if (opt.target.kind != PlanTarget::Kind::kMaxKl) {
    rep.budget_bytes = budget;
    const auto a = alloc.for_budget(budget - rep.fixed_bytes);
    if (!a) {  // not an error: the report (frontier, uniform) shows what is reachable
      rep.target_met = false;
      rep.bytes = whole(states.front().bytes);
      rep.kl_estimate = states.front().damage;
      rep.message = target_text(opt.target) + " (" + std::to_string(budget) + " bytes) is out of reach with these methods: the smallest plan takes " +
                    std::to_string(rep.bytes) + " bytes (ratio " + number_text("%.2f", ratio(rep.bytes)) + ")";
      report("repair", 1);
      return out;
    }
    const auto p = picks_of(*a);
    chosen = Measured{p, whole(a->bytes), a->damage, measure(p), "allocation"};
    rep.repairs.push_back("allocation at " + std::to_string(chosen->bytes) + " bytes: estimated KL " + number_text("%.4g", chosen->est) +
                          ", measured " + number_text("%.4g", chosen->kl) + " (repair set)");
    for (const auto& m : measured)  // a measured plan within the budget that does better replaces it
      if (m.bytes <= budget && m.kl < chosen->kl) {
        rep.repairs.push_back("replaced by " + m.what + " at " + std::to_string(m.bytes) + " bytes: measured KL " + number_text("%.4g", m.kl) +
                              " < " + number_text("%.4g", chosen->kl));
        chosen = m;
      }
  } else {
    const double bound = 0.9 * opt.target.value;  // margin for the sampling error of a second set
    double scale = 1;
    std::optional<Measured> best_ok, closest;
    for (int round = 0; round <= opt.repair_rounds; ++round) {
      const Alloc& a = alloc.for_damage(bound / scale);
      const auto p = picks_of(a);
      const Measured m{p, whole(a.bytes), a.damage, measure(p), "allocation"};
      if (keeps_all(m)) break;  // only the dense model meets the bound: not a compression
      rep.repairs.push_back("round " + std::to_string(round) + ": estimated KL " + number_text("%.4g", m.est) + " at " + std::to_string(m.bytes) +
                            " bytes, measured " + number_text("%.4g", m.kl) + " (repair set; bound " + number_text("%.4g", bound) + ")");
      if (!keeps_all(m) && (!closest || m.kl < closest->kl)) closest = m;
      if (m.kl <= bound && !keeps_all(m)) {
        best_ok = m;
        break;
      }
      if (&a == &states.back()) break;  // the most accurate plan already misses
      scale = std::max(scale * 1.05, m.kl / std::max(m.est, 1e-12));
    }
    for (const auto& m : measured) {
      if (keeps_all(m)) continue;
      if (!closest || m.kl < closest->kl) closest = m;
      if (m.kl <= bound && (!best_ok || m.bytes < best_ok->bytes)) {
        if (best_ok) rep.repairs.push_back("replaced by " + m.what + ": " + std::to_string(m.bytes) + " bytes, measured KL " + number_text("%.4g", m.kl));
        best_ok = m;
      }
    }
    if (!best_ok) {
      rep.target_met = false;
      rep.bytes = closest->bytes;
      rep.kl_estimate = closest->est;
      rep.kl_repair = closest->kl;
      rep.message = "max_kl " + number_text("%g", opt.target.value) + " is out of reach with these methods: the closest plan (" + closest->what +
                    ") measures KL " + number_text("%.4g", closest->kl) + " at " + std::to_string(closest->bytes) + " bytes (ratio " +
                    number_text("%.2f", ratio(closest->bytes)) + ") on the repair set";
      report("repair", 1);
      return out;
    }
    chosen = best_ok;
  }
  report("repair", 1);

  // The chosen plan as a re-runnable spec, built and verified on the held-out set.
  json entries = json::array();
  bool calibrated = false;
  for (size_t t = 0; t < T; ++t) {
    const TensorOption& o = all_opts[t][size_t(chosen->picks[t])];
    for (size_t i = 0; i < pareto[t].size(); ++i)
      if (pareto[t][i] == chosen->picks[t]) rep.tensors[t].chosen = int(i);
    if (o.method.empty()) continue;
    entries.push_back({{"tensor", TensorPattern::quote(planned[t]->name)}, {"method", o.method}, {"params", o.params}});
    calibrated = calibrated || (opt.calibrate && find_codec(o.method).calibrates());
  }
  if (entries.empty()) throw ParamError("plan", "the plan keeps every tensor as stored: nothing to compress at " + target_text(opt.target));
  rep.spec = {{"whole_model", true}, {"entries", entries}};
  if (calibrated) rep.spec["calibrate"] = {{"sequences", calib.seqs.size()}};
  ModelArtifactOptions fopt;
  fopt.baselines = opt.baselines;
  fopt.eval = true;
  fopt.compare = opt.compare;
  fopt.eval_set = opt.verify_set;
  fopt.calib_set = opt.calib_set;
  // The sets sampled above, not sampled again (a large vocabulary makes sampling the slowest part).
  fopt.eval_sampled = std::make_shared<const SequenceSet>(verify);
  if (calib_spec.sequences == opt.calib_set.sequences) fopt.calib_sampled = std::make_shared<const SequenceSet>(calib);
  report("build", 0);
  CodecContext bctx = ctx;
  bctx.progress = [&](double f) { report("build", f); };
  out.artifact = build_from_spec(model, rep.spec, fopt, bctx, source_sha256, &out.timings);
  rep.bytes = out.artifact.total().stored_bytes();
  rep.kl_estimate = chosen->est;
  rep.kl_repair = chosen->kl;
  rep.kl_verified = out.artifact.quality().kl_mean();
  if (rep.bytes != chosen->bytes)  // the build must store exactly what was measured
    throw Error("planner: the built artifact stores " + std::to_string(rep.bytes) + " bytes, the plan " + std::to_string(chosen->bytes));
  rep.message = "plan at " + target_text(opt.target) + ": " + std::to_string(rep.bytes) + " bytes (ratio " + number_text("%.2f", ratio(rep.bytes)) +
                "), KL " + number_text("%.4g", rep.kl_verified) + " on held-out sequences (estimated " + number_text("%.4g", rep.kl_estimate) +
                ", repair set " + number_text("%.4g", rep.kl_repair) + ")";
  if (opt.target.kind == PlanTarget::Kind::kMaxKl && rep.kl_verified > opt.target.value) {
    rep.target_met = false;
    rep.message = "max_kl " + number_text("%g", opt.target.value) + " is missed on the held-out sequences: the plan measured " +
                  number_text("%.4g", rep.kl_repair) + " on the repair set but " + number_text("%.4g", rep.kl_verified) + " held out, at " +
                  std::to_string(rep.bytes) + " bytes (ratio " + number_text("%.2f", ratio(rep.bytes)) + ")";
  }
  report("build", 1);
  return out;
}

v1::Artifact build_from_spec(const HfModelDir& model, const json& spec, ModelArtifactOptions opt, const CodecContext& ctx,
                             const std::string& source_sha256, BuildTimings* timings) {
  const auto rules = spec_rules(spec);
  opt.calibrate = spec.contains("calibrate");
  if (opt.calibrate && spec["calibrate"].is_object() && spec["calibrate"].contains("sequences")) {
    if (!spec["calibrate"]["sequences"].is_number_unsigned() || spec["calibrate"]["sequences"].get<uint64_t>() > 100000)
      throw ParamError("calibrate.sequences", "must be an integer 1..100000");
    if (opt.calib_set.given.empty()) opt.calib_set.sequences = spec["calibrate"]["sequences"].get<int>();
  }
  if (spec.contains("token_weights") && spec["token_weights"].is_boolean()) opt.token_weights = spec["token_weights"].get<bool>();
  const std::vector<TensorMeta> metas = tensor_metas(model);
  const ModelPlan plan = plan_model_artifact(metas, model.config(), rules, opt);
  // The artifact records how many entries decided (each tensor holds its own method and params).
  return build_model_artifact(model, plan, ctx, source_sha256, opt, json{{"entries", spec["entries"].size()}}, timings);
}

// ---- views ------------------------------------------------------------------------------------

json plan_report_json(const PlanReport& r) {
  json tensors = json::array();
  for (const auto& t : r.tensors) {
    json opts = json::array();
    for (const auto& o : t.options)
      opts.push_back({{"label", o.label}, {"bytes", o.bytes}, {"damage_kl", o.damage}, {"rel_error", o.rel_error}});
    const TensorOption* c = t.chosen >= 0 ? &t.options[size_t(t.chosen)] : nullptr;
    tensors.push_back({{"name", t.name},
                       {"shape", t.shape},
                       {"chosen", c ? json(c->label) : json(nullptr)},
                       {"bytes", c ? json(c->bytes) : json(nullptr)},
                       {"pareto", opts}});
  }
  json frontier = json::array();
  for (const auto& f : r.frontier) {
    json p = {{"bytes", f.bytes}, {"ratio_f32", f.ratio_f32}, {"kl_estimate", f.kl_estimate}};
    if (f.kl_measured) p["kl_measured"] = *f.kl_measured;
    frontier.push_back(p);
  }
  json uniform = json::array();
  for (const auto& u : r.uniform)
    uniform.push_back({{"method", u.label}, {"bytes", u.bytes}, {"ratio_f32", u.ratio_f32}, {"kl_measured", u.kl_measured}});
  json j = {{"target", {{"kind", r.target.kind == PlanTarget::Kind::kRatio   ? "ratio"
                                 : r.target.kind == PlanTarget::Kind::kBytes ? "bytes"
                                                                             : "max_kl"},
                        {"value", r.target.value}}},
            {"target_met", r.target_met},
            {"message", r.message},
            {"dense_f32_bytes", r.dense_f32_bytes},
            {"fixed_bytes", r.fixed_bytes},
            {"bytes", r.bytes},
            {"ratio_f32", double(r.dense_f32_bytes) / double(std::max<uint64_t>(1, r.bytes))},
            {"kl_estimate", r.kl_estimate},
            {"kl_repair", r.kl_repair},
            {"kl_verified", r.kl_verified},
            {"sensitivity", r.sensitivity_mode},
            {"sets", {{"sensitivity", r.sensitivity_source}, {"repair", r.repair_source}, {"verify", r.verify_source}}},
            {"repairs", r.repairs},
            {"frontier", frontier},
            {"uniform", uniform},
            {"tensors", tensors},
            {"spec", r.spec}};
  if (r.budget_bytes) j["budget_bytes"] = r.budget_bytes;
  return j;
}

std::string plan_report_text(const PlanReport& r) {
  std::string s;
  char b[256];
  s += "frontier (estimated from per-tensor damage; measured on the repair set):\n";
  std::snprintf(b, sizeof b, "  %12s %8s %12s %12s\n", "bytes", "ratio", "KL est", "KL measured");
  s += b;
  for (const auto& f : r.frontier) {
    std::snprintf(b, sizeof b, "  %12llu %8.2f %12.4g %12s\n", (unsigned long long)f.bytes, f.ratio_f32, f.kl_estimate,
                  f.kl_measured ? number_text("%.4g", *f.kl_measured).c_str() : "");
    s += b;
  }
  s += "every candidate on every planned tensor (repair set):\n";
  for (const auto& u : r.uniform) {
    std::snprintf(b, sizeof b, "  %-40s %12llu %8.2f %12.4g\n", u.label.substr(0, 40).c_str(), (unsigned long long)u.bytes, u.ratio_f32,
                  u.kl_measured);
    s += b;
  }
  // The plan per tensor group: tensors that got the same representation.
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& t : r.tensors)
    if (t.chosen >= 0) groups[t.options[size_t(t.chosen)].label].push_back(t.name);
  s += "plan:\n";
  for (const auto& [label, names] : groups) {
    std::string list;
    for (const auto& n : names) {
      if (list.size() > 160) {
        list += ", ...";
        break;
      }
      list += (list.empty() ? "" : ", ") + n;
    }
    std::snprintf(b, sizeof b, "  %-28s %3zu tensors: ", label.substr(0, 28).c_str(), names.size());
    s += b + list + "\n";
  }
  for (const auto& line : r.repairs) s += "repair: " + line + "\n";
  s += r.message + "\n";
  return s;
}

}  // namespace tsm
