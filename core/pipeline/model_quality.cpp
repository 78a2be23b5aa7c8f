// Model-level quality with reference representations and a verdict (see model_quality.h).
#include "pipeline/model_quality.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/number_text.h"
#include "common/tensor_pattern.h"
#include "methods/fp16/fp16_codec.h"
#include "methods/method_table.h"
#include "model/evaluate.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_weights.h"

namespace tsm {

namespace {

std::string describe(const QualityCandidate& c) {
  return c.method + " (" + number_text("%.2fx", c.ratio_f32) + ", KL " + number_text("%.4g", c.kl_mean) + ")";
}

}  // namespace

Verdict judge(const QualityCandidate& result, std::span<const QualityCandidate> alternatives, uint64_t fp16_bytes) {
  Verdict v;
  const double limit = double(result.stored_bytes) * 1.02;
  const QualityCandidate* best = &result;
  const QualityCandidate* runner = nullptr;  // the best alternative at this size, when the result wins
  for (const auto& a : alternatives) {
    if (double(a.stored_bytes) > limit) continue;
    const bool better = a.kl_mean < best->kl_mean || (a.kl_mean == best->kl_mean && a.stored_bytes < best->stored_bytes);
    if (better) best = &a;
    if (!runner || a.kl_mean < runner->kl_mean) runner = &a;
  }
  if (best == &result) {
    v.verdict = "verdict: " + describe(result) + " is the best representation tried at this size by KL";
    if (runner && runner != &result) v.verdict += "; next: " + describe(*runner);
    else v.verdict += " (no reference representation is as small)";
  } else {
    v.verdict = "verdict: prefer " + describe(*best) + " over " + describe(result) + ": lower KL at " +
                number_text("%.0f%%", 100.0 * double(best->stored_bytes) / double(std::max<uint64_t>(1, result.stored_bytes))) +
                " of the bytes";
  }
  if (fp16_bytes > 0 && result.stored_bytes > fp16_bytes)
    v.warning = "warning: " + result.method + " stores " + std::to_string(result.stored_bytes) + " bytes, more than fp16 of the same tensors (" +
                std::to_string(fp16_bytes) + ")";
  return v;
}

v1::ModelQuality measure_model_quality(const HfModelDir& dense_dir, const v1::Artifact& compressed, const ModelArtifactOptions& opt,
                                       const CodecContext* cancel) {
  const auto dense = load_transformer(ModelWeights::from_parts(dense_dir, nullptr));
  const SequenceSet set = opt.eval_sampled ? *opt.eval_sampled : make_sequence_set(*dense, opt.eval_set, "evaluation");
  const ReferenceLogits ref(*dense, set.seqs);  // the dense side once, for the result and every alternative
  // A whole-model artifact runs alone; one that replaces some tensors runs over the directory.
  auto run = [&](const v1::Artifact& a, const SequenceSet& set) {
    const bool whole = !a.config_json().empty();
    const auto net = load_transformer(
        ModelWeights::from_parts(whole ? std::nullopt : std::optional<HfModelDir>(dense_dir), std::make_shared<const v1::Artifact>(a)));
    return ref.compare(*net, set.source);
  };
  v1::ModelQuality q = run(compressed, set).to_proto();
  if (!opt.compare || compressed.tensors_size() == 0) return q;

  // The same tensors in each reference representation, at its defaults.
  const std::vector<TensorMeta> metas = tensor_metas(dense_dir);
  ModelArtifactOptions plain;
  plain.baselines = false;
  plain.eval = false;
  // Whole-model bytes of the result: a partial artifact plus the directory's other tensors as stored.
  QualityCandidate result{compressed.method(), compressed.total().stored_bytes(), compressed.total().ratio_f32(), q.kl_mean()};
  if (compressed.config_json().empty()) {
    std::set<std::string> replaced;
    for (const auto& t : compressed.tensors()) replaced.insert(t.name());
    uint64_t dense_f32 = 0;
    for (const auto& m : metas) {
      int64_t n = 1;
      for (int64_t d : m.shape) n *= d;
      dense_f32 += 4ull * uint64_t(n);
      if (!replaced.count(m.name)) result.stored_bytes += uint64_t(n) * dtype_size(m.dtype) + 8ull * m.shape.size();
    }
    result.ratio_f32 = double(dense_f32) / double(std::max<uint64_t>(1, result.stored_bytes));
  }
  std::vector<QualityCandidate> alts;
  uint64_t fp16_bytes = 0;
  for (const Codec* c : reference_codecs()) {
    if (cancel) cancel->check_cancel();
    std::vector<MethodRule> rules;
    for (const auto& t : compressed.tensors()) rules.push_back({TensorPattern::quote(t.name()), true, std::string(c->name()), json::object()});
    const ModelPlan plan = plan_model_artifact(metas, dense_dir.config(), rules, plain);
    const v1::Artifact alt = build_model_artifact(dense_dir, plan, CodecContext{}, "", plain, json::object());
    const QualityResult r = run(alt, set);
    v1::ModelAlternative* a = q.add_alternatives();
    a->set_method(std::string(c->name()));
    a->set_stored_bytes(alt.total().stored_bytes());
    a->set_ratio_f32(alt.total().ratio_f32());
    a->set_kl_mean(r.kl_mean);
    a->set_top1_agreement(r.top1_agreement);
    a->set_ppl(r.ppl_compressed);
    alts.push_back({a->method(), a->stored_bytes(), a->ratio_f32(), a->kl_mean()});
    if (c->name() == kFp16Method) fp16_bytes = a->stored_bytes();
  }
  const Verdict v = judge(result, alts, fp16_bytes);
  q.set_verdict(v.verdict);
  q.set_warning(v.warning);
  return q;
}

}  // namespace tsm
