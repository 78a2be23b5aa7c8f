// Quality per byte on the trained fixtures (gpt2-man, llama-man): every representation as a whole
// model, the whole-model ratio (dense f32 bytes of all tensors / stored bytes of all tensors with
// their metadata, passthrough included) and KL(dense || compressed), perplexity and top-1 agreement
// on held-out text (the fixtures' eval_ids: 32 windows of 128 tokens, 4,064 predicted positions,
// never seen by calibration, which samples from the dense model). One iteration each.
//   build/release/bin/bench_quality --benchmark_format=json
#include <benchmark/benchmark.h>

#include <fstream>

#include "common/tensor_pattern.h"
#include "formats/hf_model_dir.h"
#include "model/evaluate.h"
#include "pipeline/model_artifact.h"
#include "pipeline/model_loader.h"

using namespace tsm;

namespace {

struct Repr {
  std::string label;
  std::vector<MethodRule> rules;
  bool calibrate = false;
};

struct Fixture {
  std::string name, linear;  // linear: the attention and MLP weights (RE2, searched)
};

std::vector<Repr> representations(const std::string& emb, const std::string& linear) {
  const std::string all = ".*", e = TensorPattern::quote(emb);
  std::vector<Repr> out;
  for (const char* m : {"fp16", "int8", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"})
    out.push_back({std::string(m) + " (all 2-D)", {{all, false, m, json::object()}}});
  for (const char* m : {"q4_0", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"})
    out.push_back({std::string(m) + " + gptq (all 2-D; gptq on attention + MLP)",
                   {{linear, false, m, {{"calibration", "gptq"}}}, {all, false, m, json::object()}},
                   true});
  // The k-quants on the linear layers alone (the embedding stays f32), with and without calibration:
  // isolates the calibration effect from the embedding, whose 128-wide rows pad to a 256 super-block.
  for (const char* m : {"q4_k", "q3_k", "q2_k"}) {
    out.push_back({std::string(m) + " (attention + MLP)", {{linear, false, m, json::object()}}});
    out.push_back({std::string(m) + " + gptq (attention + MLP)", {{linear, false, m, {{"calibration", "gptq"}}}}, true});
  }
  out.push_back({"svd rank 8 (attention + MLP)", {{linear, false, "svd", {{"rank", 8}}}}});
  out.push_back({"tt-token ratio 2 (embedding; global rank allocation)", {{e, true, "tt-token", {{"ratio", 2}}}}});
  out.push_back({"tt-token ranks 3,3 (embedding; uniform, ~1.8x)", {{e, true, "tt-token", {{"shape", {4, 4, 8}}, {"ranks", {3, 3}}}}}});
  out.push_back({"saten ranks 8, 2:4 (attention + MLP)", {{linear, false, "saten", {{"ranks", 8}, {"sparsity", "2:4"}}}}});
  return out;
}

void run(benchmark::State& st, const std::string& model_name, const Repr& r) {
  const std::string dir = std::string(TSM_FIXTURES_DIR) + "/" + model_name;
  const HfModelDir model = HfModelDir::open(dir);
  std::ifstream f(dir + "/reference.json");
  const auto ids = json::parse(f).at("eval_ids").get<std::vector<int32_t>>();
  const auto windows = split_windows(std::span<const int32_t>(ids.data(), 32 * 128), 128);
  const auto dense = load_transformer(ModelWeights::from_parts(model, nullptr));
  std::vector<TensorMeta> metas;
  for (const auto& n : model.tensor_names()) metas.push_back({n, model.at(n).dtype, model.at(n).shape});
  for (auto _ : st) {
    ModelArtifactOptions opt;
    opt.eval = false;
    opt.baselines = false;
    opt.calibrate = r.calibrate;
    const ModelPlan plan = plan_model_artifact(metas, model.config(), r.rules, opt);
    const auto art = build_model_artifact(model, plan, CodecContext{}, "", opt, json::object());
    const auto comp = load_transformer(ModelWeights::from_parts(std::nullopt, std::make_shared<const v1::Artifact>(art)));
    const QualityResult q = compare_models(*dense, *comp, windows, "held-out eval_ids");
    st.counters["ratio"] = art.total().ratio_f32();
    st.counters["stored_bytes"] = double(art.total().stored_bytes());
    st.counters["kl"] = q.kl_mean;
    st.counters["ppl_dense"] = q.ppl_dense;
    st.counters["ppl"] = q.ppl_compressed;
    st.counters["top1"] = q.top1_agreement;
    st.counters["tokens"] = double(q.tokens);
  }
  st.SetLabel(model_name + ": " + r.label);
}

}  // namespace

int main(int argc, char** argv) {
  const Fixture fixtures[] = {{"gpt2-man", R"(\.h\.\d+\.(attn|mlp)\.)"}, {"llama-man", R"(layers\.\d+\.(self_attn|mlp)\.)"}};
  for (const auto& fx : fixtures) {
    const HfModelDir model = HfModelDir::open(std::string(TSM_FIXTURES_DIR) + "/" + fx.name);
    const std::string emb = embedding_tensor_name(ModelWeights::from_parts(model, nullptr));
    for (const auto& r : representations(emb, fx.linear))
      benchmark::RegisterBenchmark(("Quality/" + fx.name + "/" + r.label).c_str(),
                                   [name = fx.name, r](benchmark::State& st) { run(st, name, r); })
          ->Iterations(1)
          ->Unit(benchmark::kSecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
