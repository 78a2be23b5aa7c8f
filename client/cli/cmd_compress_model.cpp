// `tensorslm compress-model DIR --tensors REGEX --method saten [--param k=v ...] -o OUT.tsm [--json] [--eval]`:
// compresses every 2-D tensor of an HF model directory whose name matches REGEX, passes the rest
// through and writes a whole-model artifact the runtime can run (build_model_artifact). With
// `--spec plan.json` (a planner report or a JobSpec's JSON form) the spec's entries decide instead.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/cli_args.h"
#include "cli/command_registry.h"
#include "cli/sequence_args.h"
#include "common/atomic_file.h"
#include "model/model_config.h"
#include "methods/method_table.h"
#include "pipeline/artifact_builder.h"
#include "pipeline/metrics_json.h"
#include "pipeline/model_artifact.h"
#include "pipeline/planner.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"

namespace tsm::cli {
namespace {

namespace fs = std::filesystem;

struct CompressModelArgs {
  std::string dir, tensors, spec, method = std::string(default_method(DefaultFor::kWholeModel).name()), out;
  std::vector<std::string> kv;
  bool json_out = false, eval = false, no_compare = false, no_baselines = false, calibrate = false, no_token_weights = false;
  SequenceArgs eval_seqs{{}, {}, default_eval_spec()}, calib_seqs{{}, {}, default_calib_spec()};
  int adam_steps = 50;
  std::string whitening = "cholesky";
};

/// The context length when the runtime knows the architecture (sequences are capped by it), else unbounded.
int64_t model_context(const json& config) {
  try {
    return parse_model_config(config).max_positions;
  } catch (const Error&) {
    return int64_t(1) << 30;
  }
}

void run(const CompressModelArgs& a) {
  json params = json::object();
  add_params(params, a.kv);
  const HfModelDir model = HfModelDir::open(a.dir);
  const int64_t context = model_context(model.config());
  std::optional<std::string> tok;
  if (auto tp = model.tokenizer_path()) tok = read_file(*tp);
  ModelArtifactOptions opt;
  opt.eval = a.eval;
  opt.compare = !a.no_compare;
  opt.baselines = !a.no_baselines;
  opt.eval_set = sequence_spec(a.eval_seqs, tok, context);
  opt.calibrate = a.calibrate;
  opt.token_weights = !a.no_token_weights;
  opt.calib_set = sequence_spec(a.calib_seqs, tok, context);
  opt.adam_steps = a.adam_steps;
  opt.whitening = a.whitening;
  CodecContext ctx;
  const bool tty = !a.json_out && ::isatty(2);
  if (tty) ctx.progress = [](double p) { std::fprintf(stderr, "\rcompressing %5.1f%%", 100.0 * p); };
  BuildTimings timings;
  v1::Artifact art;
  if (!a.spec.empty()) {
    if (!a.tensors.empty() || !a.kv.empty()) throw ParamError("--spec", "--spec decides every tensor: drop --tensors and --param");
    json spec;
    try {
      spec = json::parse(read_file(a.spec, 64 << 20));
    } catch (const json::exception& e) {
      throw Error("--spec " + a.spec + ": not JSON (" + e.what() + ")");
    }
    if (spec.is_object() && spec.contains("spec")) spec = spec["spec"];  // a planner report
    art = build_from_spec(model, spec, opt, ctx, source_sha256(a.dir), &timings);
  } else {
    if (a.tensors.empty()) throw ParamError("--tensors", "give --tensors REGEX (or --spec FILE)");
    art = build_model_artifact(model, a.tensors, a.method, params, ctx, source_sha256(a.dir), opt, &timings);
  }
  if (tty) std::fprintf(stderr, "\r%*s\r", 24, "");
  const std::string sha = write_artifact(a.out, art);

  if (a.json_out) {
    json j = artifact_report_json(art);
    for (size_t i = 0; i < j["tensors"].size() && i < timings.tensor_seconds.size(); ++i)
      j["tensors"][i]["metrics"]["seconds"] = timings.tensor_seconds[i];  // measured, not stored in the artifact
    j["total"]["seconds"] = timings.total_seconds();
    j["path"] = a.out;
    j["sha256"] = sha;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("%-48s %-12s %10s %8s %9s  %s\n", "tensor", "shape", "bytes", "ratio", "rel_err", "baselines (rel_err @ bytes)");
  for (const auto& t : art.tensors()) {
    std::string shape = std::to_string(t.shape(0)) + "x" + std::to_string(t.shape(1));
    std::string bl;
    for (const auto& b : t.baselines()) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s %.4f@%llu  ", b.method().c_str(), b.metrics().rel_error(),
                    (unsigned long long)b.metrics().stored_bytes());
      bl += buf;
    }
    std::printf("%-48s %-12s %10llu %8.2f %9.4f  %s\n", t.name().c_str(), shape.c_str(),
                (unsigned long long)t.metrics().stored_bytes(), t.metrics().ratio_f32(), t.metrics().rel_error(), bl.c_str());
  }
  const auto& tot = art.total();
  std::printf("whole model: %llu bytes stored (%d compressed tensors, %d passed through), ratio %.3f vs f32, %.3f vs source;"
              " config.json %zu and tokenizer.json %zu bytes besides\n",
              (unsigned long long)tot.stored_bytes(), art.tensors_size(), art.passthrough_size(), tot.ratio_f32(), tot.ratio_source(),
              art.config_json().size(), art.tokenizer_json().size());
  if (art.quality().tokens() > 0) std::fputs(quality_text(art.quality()).c_str(), stdout);
  else if (!art.quality().source().empty()) std::printf("quality: %s\n", art.quality().source().c_str());
  std::printf("wrote %s (sha256 %s)\n", a.out.c_str(), sha.c_str());
}

}  // namespace

static RegisterCommands reg{20, [](CLI::App& app) {
  auto a = std::make_shared<CompressModelArgs>();
  auto* cmd = app.add_subcommand("compress-model",
                                 "compress every tensor of an HF model directory matching a regex; pass the rest through");
  cmd->add_option("dir", a->dir, "HF model directory (config.json, model.safetensors, tokenizer.json)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--tensors", a->tensors, "regular expression searched in tensor names, e.g. 'mlp|attn'");
  cmd->add_option("--spec", a->spec, "a re-runnable spec (tensorslm plan --plan-out, or a JobSpec JSON with entries) instead of --tensors/--method")
      ->check(CLI::ExistingFile);
  cmd->add_option("--method", a->method, "compression method (default saten; see `tensorslm methods`)");
  cmd->add_option("--param", a->kv, "method parameter key=value (value read as JSON when it parses)");
  cmd->add_option("-o,--output", a->out, "output artifact (.tsm)")->required();
  cmd->add_flag("--json", a->json_out, "print one JSON object instead of a table");
  cmd->add_flag("--eval", a->eval,
                "measure KL / top-1 / perplexity against the dense model on held-out sequences, beside every reference "
                "representation of the same tensors, with a verdict by KL");
  cmd->add_flag("--no-compare", a->no_compare, "with --eval: skip the reference representations and the verdict");
  add_sequence_options(cmd, a->eval_seqs, "eval", "evaluation");
  add_sequence_options(cmd, a->calib_seqs, "calib", "calibration");
  cmd->add_flag("--no-baselines", a->no_baselines, "skip the per-tensor baselines");
  cmd->add_flag("--calibrate", a->calibrate, "fit each layer in the norm of its inputs from the dense model (saten: then Adam; q-types: GPTQ with --param calibration=gptq)");
  cmd->add_flag("--no-token-weights", a->no_token_weights,
                "do not weight embedding rows by their token frequency in the calibration sequences (tt-token ratio allocation)");
  cmd->add_option("--adam-steps", a->adam_steps, "Adam steps per layer with --calibrate (default 50)");
  cmd->add_option("--whitening", a->whitening, "cholesky | diag | none (default cholesky)");
  cmd->callback([a] { run(*a); });
}};

}  // namespace tsm::cli
