// Model commands of the `tensorslm` CLI: `run` (generate from a prompt or token ids) and `eval`
// (perplexity, KL and top-1 agreement of a compressed model against its dense original). Both are
// thin wrappers over core/model: load_transformer, generate, compare_models.
#include <sys/resource.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command_registry.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "model/evaluate.h"
#include "model/generate.h"
#include "pipeline/model_loader.h"
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
  ModelWeights w = ModelWeights::open(a.model, a.artifact);
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
    prompt = tok->encode(a.prompt);
  }
  if (prompt.empty()) throw ParamError("--prompt", "the prompt has no tokens");

  GenerateOptions g;
  g.max_new_tokens = a.max_new_tokens;
  g.stop_at_eos = !a.ignore_eos;
  g.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  GenerateResult r = generate(*net, prompt, g);

  std::optional<std::string> text;
  if (tok) text = tok->decode(r.generated);
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
              {"peak_rss_bytes", peak_rss_bytes()}};
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
  std::string model, artifact, text, ids_file, embedding = "auto", head = "materialize";
  int samples = 8, length = 64, window = 256, threads = 0;
  uint64_t seed = 0;
  bool json_out = false;
};

void cmd_eval(const EvalArgs& a) {
  set_compute_threads(a.threads);
  ModelWeights dense_w = ModelWeights::open(a.model);
  ModelWeights comp_w = ModelWeights::open(a.model, a.artifact);
  auto dense = load_transformer(dense_w);
  LoadOptions lo;
  lo.embedding = parse_embedding_mode(a.embedding);
  lo.head = parse_head_mode(a.head);
  auto comp = load_transformer(comp_w, lo);

  std::vector<std::vector<int32_t>> seqs;
  std::string source;
  const int64_t window = std::min<int64_t>(a.window, dense->cfg.max_positions);
  if (!a.ids_file.empty()) {
    seqs = split_windows(read_ids_file(a.ids_file), window);
    source = "ids file " + a.ids_file;
  } else if (!a.text.empty()) {
    auto tj = dense_w.tokenizer_json();
    if (!tj) throw Error(dense_w.origin() + " has no tokenizer.json; give token ids with --ids-file");
    seqs = split_windows(load_tokenizer(*tj)->encode(read_file(a.text)), window);
    source = "text file " + a.text;
  } else {
    seqs = sample_sequences(*dense, a.samples, std::min<int>(a.length, int(dense->cfg.max_positions)), a.seed);
    source = "self-sampled: " + std::to_string(a.samples) + " x " + std::to_string(seqs.front().size()) + " tokens, seed " +
             std::to_string(a.seed) + ", temperature 1";
  }
  if (seqs.empty()) throw Error("evaluation: the input has fewer than 2 tokens");
  auto t0 = clock_type::now();
  QualityResult q = compare_models(*dense, *comp, seqs, source);
  const double secs = seconds_since(t0);
  if (a.json_out) {
    std::cout << json{{"ppl_dense", q.ppl_dense},         {"ppl_compressed", q.ppl_compressed}, {"kl_mean", q.kl_mean},
                      {"kl_max", q.kl_max},               {"top1_agreement", q.top1_agreement}, {"nll_delta_mean", q.nll_delta_mean},
                      {"tokens", q.tokens},               {"source", q.source},                 {"embedding", comp->embed->kind()},
                      {"head", comp->head->kind()},       {"seconds", secs}}
                     .dump()
              << "\n";
    return;
  }
  std::printf("source          %s\ntokens          %llu\nppl dense       %.4f\nppl compressed  %.4f\nKL mean         %.6g nats\n"
              "KL max          %.6g nats\ntop-1 agreement %.4f\nNLL delta mean  %.6g nats\n",
              q.source.c_str(), (unsigned long long)q.tokens, q.ppl_dense, q.ppl_compressed, q.kl_mean, q.kl_max,
              q.top1_agreement, q.nll_delta_mean);
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
  auto* ev = app.add_subcommand("eval", "perplexity, KL and top-1 agreement of a compressed model against the dense one");
  ev->add_option("model", ea->model, "HF model directory (the dense model)")->required();
  ev->add_option("--artifact", ea->artifact, "artifact with the compressed tensors")->required();
  auto* t = ev->add_option("--text", ea->text, "text file to evaluate on (tokenized with the model's tokenizer)");
  auto* f = ev->add_option("--ids-file", ea->ids_file, "token-id file (JSON array or whitespace/comma separated)");
  t->excludes(f);
  ev->add_option("--samples", ea->samples, "without --text/--ids-file: sequences the dense model samples (default 8)");
  ev->add_option("--length", ea->length, "tokens per sampled sequence (default 64)");
  ev->add_option("--window", ea->window, "tokens per evaluated window of a file (default 256, at most the context)");
  ev->add_option("--seed", ea->seed, "seed of the sampled sequences");
  ev->add_option("--embedding", ea->embedding, "auto | dense | tt");
  ev->add_option("--head", ea->head, "materialize | stream");
  ev->add_option("--threads", ea->threads, "compute threads");
  ev->add_flag("--json", ea->json_out, "print one JSON object");
  ev->callback([ea] { cmd_eval(*ea); });
}};

}  // namespace
}  // namespace tsm::cli
