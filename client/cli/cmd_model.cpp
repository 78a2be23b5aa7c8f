// Model commands of the `tensorslm` CLI: `run` (generate from a prompt or token ids) and `eval`
// (perplexity, KL and top-1 agreement of a compressed model against its dense original). Both are
// thin wrappers over core/model: load_transformer, generate, compare_models.
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "cli/sequence_args.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"
#include "formats/verified_artifact_cache.h"
#include "model/evaluate.h"
#include "model/generate.h"
#include "pipeline/metrics_json.h"
#include "pipeline/model_loader.h"
#include "pipeline/model_quality.h"
#include "model/tokenizer.h"

namespace tsm::cli {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

/// ModelWeights::open for `run`: artifact files go through the verified-artifact cache in the user's
/// cache dir, so loading an unchanged file again does not hash it again (eval, inspect and decompress
/// hash every time). `checks` gets {path, integrity, cached} per artifact file.
ModelWeights open_weights_for_run(const std::string& model, const std::string& artifact, json& checks) {
  VerifiedArtifactCache cache(VerifiedArtifactCache::default_path());
  checks = json::array();
  auto cached = [&](const std::string& p) {
    ArtifactIntegrity in;
    auto a = std::make_shared<const v1::Artifact>(read_artifact_cached(p, cache, &in));
    checks.push_back({{"path", p}, {"integrity", integrity_name(in.state)}, {"cached", in.cached}});
    return a;
  };
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(model, ec);
  if (!dir && artifact.empty() && std::filesystem::is_regular_file(model, ec)) return ModelWeights::from_parts(std::nullopt, cached(model));
  if (dir && !artifact.empty()) return ModelWeights::from_parts(HfModelDir::open(model), cached(artifact));
  return ModelWeights::open(model, artifact);  // a directory alone, and every error case
}

struct RunArgs {
  std::string model, prompt, ids, artifact, embedding = "auto", head = "materialize";
  int max_new_tokens = 32, top_k = 0, threads = 0;
  float temperature = 0, top_p = 1;
  uint64_t seed = 0;
  bool json_out = false, ignore_eos = false;
};

void cmd_run(const RunArgs& a) {
  set_compute_threads(a.threads);
  auto t0 = clock_type::now();
  json checks;
  ModelWeights w = open_weights_for_run(a.model, a.artifact, checks);
  LoadOptions lo;
  lo.embedding = parse_embedding_mode(a.embedding);
  lo.head = parse_head_mode(a.head);
  auto net = load_transformer(w, lo);
  std::unique_ptr<Tokenizer> tok;
  if (auto tj = w.tokenizer_json()) {
    try {
      tok = load_tokenizer(*tj);
    } catch (const Error&) {
      if (a.ids.empty()) throw;  // with --ids, a tokenizer we cannot read only costs the decoded text
    }
  }
  const double load_s = seconds_since(t0);

  std::vector<int32_t> prompt;
  if (!a.ids.empty()) {
    prompt = parse_ids(a.ids, "--ids");
  } else {
    if (!tok) throw Error(w.origin() + " has no tokenizer.json; give the prompt as token ids with --ids 1,2,3");
    prompt = tok->encode_with_special_tokens(a.prompt);  // Llama: <s> first, as HF's add_special_tokens
  }
  if (prompt.empty()) throw ParamError("--prompt", "the prompt has no tokens");

  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.stop_at_eos = !a.ignore_eos;
  g.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  GenerateResult r = generate(*net, prompt, g);

  std::optional<std::string> text;
  if (tok) text = decode_continuation(*tok, prompt, r.generated);  // in context: SentencePiece strips a leading space
  if (a.json_out) {
    json j = {{"prompt_ids", prompt},
              {"generated_ids", r.generated},
              {"stopped_at_eos", r.stopped_at_eos},
              {"embedding", net->embed->kind()},
              {"head", net->head->kind()},
              {"timings",
               {{"load_s", load_s},
                {"prompt_s", r.prompt_seconds},
                {"prompt_tokens_per_s", r.prompt_tokens_per_s(prompt.size())},
                {"decode_s", r.decode_seconds},
                {"decode_tokens_per_s", r.decode_tokens_per_s()},
                {"ms_per_token", r.generated.size() > 1 ? 1e3 * r.decode_seconds / double(r.generated.size() - 1) : 0.0}}},
              {"peak_rss_bytes", peak_rss_bytes()},
              {"artifacts", checks}};
    if (text) j["text"] = *text;
    std::cout << j.dump() << "\n";
    return;
  }
  if (text) std::cout << (a.ids.empty() ? a.prompt : tok->decode(prompt)) << *text << "\n";
  else std::cout << ids_str(r.generated) << "\n";
  std::fprintf(stderr, "%zu prompt tokens in %.3f s (%.1f tok/s), %zu generated, %.1f tok/s; embedding %s, head %s; load %.2f s; peak RSS %.1f MiB\n",
               prompt.size(), r.prompt_seconds, r.prompt_tokens_per_s(prompt.size()), r.generated.size(),
               r.decode_tokens_per_s(), net->embed->kind(), net->head->kind(), load_s, peak_rss_bytes() / 1048576.0);
}

struct EvalArgs {
  std::string model, artifact, embedding = "auto", head = "materialize";
  SequenceArgs seqs{{}, {}, default_eval_spec()};
  int threads = 0;
  bool json_out = false, compare = false;
};

// Dense alone: perplexity and its sample size. With an artifact: KL, ppl delta, top-1 against the
// dense model; with --compare also every reference representation of the same tensors and a verdict.
void cmd_eval(const EvalArgs& a) {
  set_compute_threads(a.threads);
  ModelWeights dense_w = ModelWeights::open(a.model);
  auto dense = load_transformer(dense_w);
  const SequenceSet set = make_sequence_set(*dense, sequence_spec(a.seqs, dense_w.tokenizer_json(), dense->cfg.max_positions), "evaluation");
  auto t0 = clock_type::now();
  if (a.artifact.empty()) {
    if (a.compare) throw ParamError("--compare", "needs --artifact (the compressed model to judge)");
    uint64_t tokens = 0;
    const double ppl = perplexity(*dense, set.seqs, &tokens);
    const double secs = seconds_since(t0);
    if (a.json_out) {
      std::cout << json{{"ppl_dense", ppl}, {"tokens", tokens}, {"sequences", set.seqs.size()}, {"source", set.source}, {"seconds", secs}}.dump()
                << "\n";
      return;
    }
    std::printf("source          %s\nsequences       %zu\ntokens          %llu\nppl dense       %.4f\n", set.source.c_str(),
                set.seqs.size(), (unsigned long long)tokens, ppl);
    return;
  }
  v1::ModelQuality q;
  std::string embed_kind, head_kind;
  if (a.compare) {
    ModelArtifactOptions opt;
    opt.eval_set.given = set.seqs;
    opt.eval_set.given_source = set.source;
    q = measure_model_quality(HfModelDir::open(a.model), read_artifact(a.artifact), opt);
  } else {
    LoadOptions lo;
    lo.embedding = parse_embedding_mode(a.embedding);
    lo.head = parse_head_mode(a.head);
    auto comp = load_transformer(ModelWeights::open(a.model, a.artifact), lo);
    q = compare_models(*dense, *comp, set.seqs, set.source).to_proto();
    embed_kind = comp->embed->kind();
    head_kind = comp->head->kind();
  }
  const double secs = seconds_since(t0);
  if (a.json_out) {
    json j = quality_to_json(q);
    if (!embed_kind.empty()) j["embedding"] = embed_kind, j["head"] = head_kind;
    j["seconds"] = secs;
    std::cout << j.dump() << "\n";
    return;
  }
  std::fputs(quality_text(q).c_str(), stdout);
}

RegisterCommands reg{30, [](CLI::App& app) {
  auto ra = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "generate from a model directory or whole-model artifact (prompt text or token ids)");
  run->add_option("model", ra->model, "HF model directory or .tsm artifact with a whole model")->required();
  auto* p = run->add_option("--prompt", ra->prompt, "prompt text (needs tokenizer.json)");
  auto* i = run->add_option("--ids", ra->ids, "prompt token ids, e.g. 1,2,3");
  p->excludes(i);
  run->add_option("--max-new-tokens", ra->max_new_tokens, "tokens to generate (default 32)")->check(CLI::Range(1, 1 << 20));
  run->add_option("--temperature", ra->temperature, "0 = greedy (default)")->check(CLI::Range(0.0, 100.0));
  run->add_option("--top-k", ra->top_k, "sample among the k most likely (0 = all)")->check(CLI::NonNegativeNumber);
  run->add_option("--top-p", ra->top_p, "nucleus probability (default 1)");
  run->add_option("--seed", ra->seed, "sampling seed");
  run->add_option("--embedding", ra->embedding, "auto | dense | tt (tt needs a tt-token embedding)");
  run->add_option("--head", ra->head, "materialize | stream (tied head of a tt-token embedding)");
  run->add_option("--artifact", ra->artifact, "artifact whose tensors replace the model's (e.g. a tt-token embedding)");
  run->add_option("--threads", ra->threads, "compute threads (default: all cores)");
  run->add_flag("--ignore-eos", ra->ignore_eos, "do not stop at the EOS token");
  run->add_flag("--json", ra->json_out, "print one JSON object");
  run->callback([ra, run] {
    if (run->count("--prompt") == 0 && run->count("--ids") == 0) throw ParamError("--prompt", "give --prompt TEXT or --ids 1,2,3");
    cmd_run(*ra);
  });

  auto ea = std::make_shared<EvalArgs>();
  auto* ev = app.add_subcommand("eval",
                                "perplexity of a dense model; with --artifact, KL, perplexity delta and top-1 agreement of the "
                                "compressed model against it");
  ev->add_option("model", ea->model, "HF model directory (the dense model)")->required();
  ev->add_option("--artifact", ea->artifact, "artifact with the compressed tensors (whole model, or tensors replacing the directory's)");
  add_sequence_options(ev, ea->seqs, "", "evaluation");
  ev->add_flag("--compare", ea->compare, "also evaluate every reference representation of the same tensors and give a verdict by KL");
  ev->add_option("--embedding", ea->embedding, "auto | dense | tt");
  ev->add_option("--head", ea->head, "materialize | stream");
  ev->add_option("--threads", ea->threads, "compute threads");
  ev->add_flag("--json", ea->json_out, "print one JSON object");
  ev->callback([ea] { cmd_eval(*ea); });
}};

}  // namespace
}  // namespace tsm::cli
