// `tensorslm compress-model DIR --tensors REGEX --method saten [--param k=v ...] -o OUT.tsm [--json] [--eval]`:
// compresses every 2-D tensor of an HF model directory whose name matches REGEX, passes the rest
// through and writes a whole-model artifact the runtime can run (build_model_artifact).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/cli_args.h"
#include "cli/command_registry.h"
#include "methods/method_table.h"
#include "pipeline/metrics_json.h"
#include "pipeline/model_artifact.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"

namespace tsm::cli {
namespace {

namespace fs = std::filesystem;

struct CompressModelArgs {
  std::string dir, tensors, method = std::string(default_method(DefaultFor::kWholeModel).name()), out;
  std::vector<std::string> kv;
  bool json_out = false, eval = false, no_baselines = false, calibrate = false;
  int eval_sequences = 4, eval_length = 32, calib_sequences = 8, calib_length = 128, adam_steps = 50;
  std::string whitening = "cholesky";
};

/// sha256 of a model directory: sha256 of "<name> <sha256>\n" over its regular files, sorted by name.
void run(const CompressModelArgs& a) {
  json params = json::object();
  add_params(params, a.kv);
  const HfModelDir model = HfModelDir::open(a.dir);
  ModelArtifactOptions opt;
  opt.eval = a.eval;
  opt.baselines = !a.no_baselines;
  opt.eval_sequences = a.eval_sequences;
  opt.eval_length = a.eval_length;
  opt.calibrate = a.calibrate;
  opt.calib_sequences = a.calib_sequences;
  opt.calib_length = a.calib_length;
  opt.adam_steps = a.adam_steps;
  opt.whitening = a.whitening;
  CodecContext ctx;
  const bool tty = !a.json_out && ::isatty(2);
  if (tty) ctx.progress = [](double p) { std::fprintf(stderr, "\rcompressing %5.1f%%", 100.0 * p); };
  const v1::Artifact art = build_model_artifact(model, a.tensors, a.method, params, ctx, source_sha256(a.dir), opt);
  if (tty) std::fprintf(stderr, "\r%*s\r", 24, "");
  const std::string sha = write_artifact(a.out, art);

  if (a.json_out) {
    json j = artifact_report_json(art);
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
  std::printf("whole model: %llu bytes stored (%d compressed tensors, %d passed through), ratio %.3f vs f32, %.3f vs source\n",
              (unsigned long long)tot.stored_bytes(), art.tensors_size(), art.passthrough_size(), tot.ratio_f32(),
              tot.ratio_source());
  if (art.quality().tokens() > 0) {
    const auto& q = art.quality();
    std::printf("quality: KL %.5f nats/token, top-1 agreement %.3f, ppl dense %.3f -> compressed %.3f (%llu tokens: %s)\n",
                q.kl_mean(), q.top1_agreement(), q.ppl_dense(), q.ppl_compressed(), (unsigned long long)q.tokens(),
                q.source().c_str());
  } else if (!art.quality().source().empty()) {
    std::printf("quality: %s\n", art.quality().source().c_str());
  }
  std::printf("wrote %s (sha256 %s)\n", a.out.c_str(), sha.c_str());
}

}  // namespace

static RegisterCommands reg{20, [](CLI::App& app) {
  auto a = std::make_shared<CompressModelArgs>();
  auto* cmd = app.add_subcommand("compress-model",
                                 "compress every tensor of an HF model directory matching a regex; pass the rest through");
  cmd->add_option("dir", a->dir, "HF model directory (config.json, model.safetensors, tokenizer.json)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--tensors", a->tensors, "regular expression searched in tensor names, e.g. 'mlp|attn'")->required();
  cmd->add_option("--method", a->method, "compression method (default saten; see `tensorslm methods`)");
  cmd->add_option("--param", a->kv, "method parameter key=value (value read as JSON when it parses)");
  cmd->add_option("-o,--output", a->out, "output artifact (.tsm)")->required();
  cmd->add_flag("--json", a->json_out, "print one JSON object instead of a table");
  cmd->add_flag("--eval", a->eval, "measure KL / top-1 / perplexity against the dense model on self-sampled sequences");
  cmd->add_option("--eval-sequences", a->eval_sequences, "sequences for --eval (default 4)");
  cmd->add_option("--eval-length", a->eval_length, "tokens per sequence for --eval (default 32)");
  cmd->add_option("--calib-length", a->calib_length, "tokens per calibration sequence (default 128; capped by the context)");
  cmd->add_flag("--no-baselines", a->no_baselines, "skip the per-tensor baselines");
  cmd->add_flag("--calibrate", a->calibrate, "fit each layer in the norm of its inputs from the dense model (saten: then Adam; q-types: GPTQ with --param calibration=gptq)");
  cmd->add_option("--calib-sequences", a->calib_sequences, "self-sampled calibration sequences (default 8)");
  cmd->add_option("--adam-steps", a->adam_steps, "Adam steps per layer with --calibrate (default 50)");
  cmd->add_option("--whitening", a->whitening, "cholesky | diag | none (default cholesky)");
  cmd->callback([a] { run(*a); });
}};

}  // namespace tsm::cli
