// `tensorslm plan MODEL_DIR (--target-ratio R | --target-bytes B | --max-kl K) [--methods LIST] -o OUT.tsm
// [--plan-out plan.json] [--json]`: the best representation per tensor for a size or quality budget
// (pipeline/planner.h). Prints the frontier, every candidate applied uniformly, the plan per tensor
// group and the held-out KL; --plan-out writes the report with the re-runnable spec, which
// `tensorslm compress-model MODEL_DIR --spec plan.json --eval` turns into the same artifact.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/cli_args.h"
#include "cli/command_registry.h"
#include "cli/sequence_args.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"
#include "model/model_config.h"
#include "pipeline/metrics_json.h"
#include "pipeline/planner.h"

namespace tsm::cli {
namespace {

struct PlanArgs {
  std::string dir, out, plan_out, tensors, methods;
  std::optional<double> ratio, bytes, max_kl;
  bool json_out = false, no_calibrate = false, baselines = false, no_compare = false;
  int sensitivity = PlannerOptions{}.sensitivity_sequences;
  SequenceArgs eval_seqs{{}, {}, default_eval_spec()}, calib_seqs{{}, {}, default_calib_spec()},
      repair_seqs{{}, {}, PlannerOptions::default_repair_spec()};
};

void run(const PlanArgs& a) {
  const int given = int(a.ratio.has_value()) + int(a.bytes.has_value()) + int(a.max_kl.has_value());
  if (given != 1) throw ParamError("target", "give exactly one of --target-ratio, --target-bytes, --max-kl");
  PlannerOptions opt;
  if (a.ratio) opt.target = {PlanTarget::Kind::kRatio, *a.ratio};
  if (a.bytes) opt.target = {PlanTarget::Kind::kBytes, *a.bytes};
  if (a.max_kl) opt.target = {PlanTarget::Kind::kMaxKl, *a.max_kl};
  if (!a.methods.empty()) opt.candidates = parse_plan_candidates(a.methods, "--methods");
  opt.tensors = a.tensors;
  opt.calibrate = !a.no_calibrate;
  opt.sensitivity_sequences = a.sensitivity;
  opt.baselines = a.baselines;
  opt.compare = !a.no_compare;
  const HfModelDir model = HfModelDir::open(a.dir);
  std::optional<std::string> tok;
  if (auto tp = model.tokenizer_path()) tok = read_file(*tp);
  const int64_t context = parse_model_config(model.config()).max_positions;
  opt.verify_set = sequence_spec(a.eval_seqs, tok, context);
  opt.calib_set = sequence_spec(a.calib_seqs, tok, context);
  opt.repair_set = sequence_spec(a.repair_seqs, tok, context);
  CodecContext ctx;
  const bool tty = !a.json_out && ::isatty(2);
  PlanProgress progress;
  if (tty) progress = [](std::string_view phase, double f) { std::fprintf(stderr, "\r%-10.*s %5.1f%%", int(phase.size()), phase.data(), 100.0 * f); };
  const PlanOutcome o = plan_model(model, opt, ctx, source_sha256(a.dir), progress);
  if (tty) std::fprintf(stderr, "\r%*s\r", 24, "");
  json report = plan_report_json(o.report);
  if (!a.plan_out.empty()) write_file_atomic(a.plan_out, report.dump(2) + "\n");
  std::string sha;
  if (o.report.target_met) sha = write_artifact(a.out, o.artifact);
  if (a.json_out) {
    if (o.report.target_met) {
      report["path"] = a.out;
      report["sha256"] = sha;
      report["quality"] = quality_to_json(o.artifact.quality());
      report["seconds"] = o.timings.total_seconds();
    }
    std::cout << report.dump(2) << "\n";
  } else {
    std::fputs(plan_report_text(o.report).c_str(), stdout);
    if (o.report.target_met) {
      std::fputs(quality_text(o.artifact.quality()).c_str(), stdout);
      std::printf("wrote %s (sha256 %s)%s\n", a.out.c_str(), sha.c_str(), a.plan_out.empty() ? "" : (", plan " + a.plan_out).c_str());
    }
  }
  if (!o.report.target_met) throw Error(o.report.message + "; no artifact written");
}

}  // namespace

static RegisterCommands reg{21, [](CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "choose the best representation per tensor for a size or KL budget, build and verify it");
  cmd->add_option("dir", a->dir, "HF model directory (config.json, model.safetensors)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--target-ratio", a->ratio, "whole-model ratio vs f32 (dense f32 bytes of all tensors / stored bytes)");
  cmd->add_option("--target-bytes", a->bytes, "whole-model stored bytes (config and tokenizer apart)");
  cmd->add_option("--max-kl", a->max_kl, "the smallest plan whose KL(dense || plan) stays within this bound (nats per token)");
  cmd->add_option("--methods", a->methods, "candidates, comma-separated, each METHOD or METHOD{json params} (default " +
                                               default_plan_candidates_text() + ")");
  cmd->add_option("--tensors", a->tensors, "regular expression: only matching 2-D tensors are planned (default every one)");
  cmd->add_option("-o,--output", a->out, "output artifact (.tsm)")->required();
  cmd->add_option("--plan-out", a->plan_out, "write the report (frontier, choices, re-runnable spec) as JSON");
  cmd->add_flag("--json", a->json_out, "print the report as one JSON object");
  cmd->add_flag("--no-calibrate", a->no_calibrate, "data-free candidates only (no GPTQ)");
  cmd->add_option("--sensitivity-sequences", a->sensitivity, "calibration sequences that measure each candidate's damage");
  cmd->add_flag("--baselines", a->baselines, "per-tensor baselines in the artifact");
  cmd->add_flag("--no-compare", a->no_compare, "skip the reference representations beside the verified KL");
  add_sequence_options(cmd, a->eval_seqs, "eval", "held-out evaluation (verification)");
  add_sequence_options(cmd, a->calib_seqs, "calib", "calibration (GPTQ inputs, sensitivity)");
  add_sequence_options(cmd, a->repair_seqs, "repair", "repair");
  cmd->callback([a] { run(*a); });
}};

}  // namespace tsm::cli
