// The planner: the best representation for every tensor of a model under a size or quality budget.
//
// 1. Candidates: every planned tensor (each 2-D float tensor matching `tensors`) is encoded with
//    every candidate representation (block types with GPTQ when calibrating, casts, low-rank
//    corrections of quantization error, ...; `--methods`), and kept at its source dtype as one more
//    option. Its damage is KL(dense || model with only this tensor replaced) on the first
//    `sensitivity_sequences` calibration sequences: measured for every candidate (small models), or
//    (large ones, or `sensitivity` proxy) measured for one candidate per tensor and carried to the
//    others in proportion to their error in the norm of the layer's inputs, tr(E C E^T) (C: the
//    inputs' covariance; embeddings: the rows' squared error weighted by token frequency), as KL
//    grows with the square of a small perturbation.
// 2. Allocation: each tensor's Pareto set of (stored bytes, damage); the global budget is spread
//    over them by a Lagrangian sweep over the lower convex hulls (steps in order of damage saved per
//    byte; the sweep's states are the estimated frontier), then a greedy fill of the bytes left with
//    any Pareto option. Estimated model KL = the sum of the tensors' damages.
// 3. Repair: the chosen allocation, points of the frontier and every candidate applied uniformly are
//    measured end to end on a second sequence set (repair_set); byte targets take the lowest
//    measured KL within the budget, max_kl targets rescale the estimate by measured / estimated and
//    choose again until the measured KL is within 90% of the bound (or no plan is).
// 4. The chosen plan is built as a whole-model artifact (build_model_artifact, so the re-runnable
//    spec gives the identical bytes) and its KL reported on a third set (verify_set, the usual
//    evaluation set) that neither calibration nor repair saw, beside every reference representation.
//
// Sizes are whole-model: dense f32 bytes of every tensor over the stored bytes of every tensor with
// its metadata (tensors the planner does not touch pass through at their source dtype); config.json
// and tokenizer.json are reported apart. Invariants: the artifact's total stored bytes never exceed
// a byte or ratio target; the three sequence sets are disjoint (require_disjoint).
// Memory: every candidate encoding of every planned tensor is held (about the model's f32 bytes
// times the number of candidates / 3).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/hf_model_dir.h"
#include "pipeline/artifact_builder.h"
#include "pipeline/model_artifact.h"

namespace tsm {

struct PlanTarget {
  enum class Kind { kRatio, kBytes, kMaxKl };
  Kind kind = Kind::kRatio;
  double value = 4;  ///< ratio vs f32 (> 1), whole-model bytes, or KL in nats per token (> 0)
};
/// "ratio 4", "bytes 123456", "max_kl 0.05".
std::string target_text(const PlanTarget& t);

/// One representation the planner may give a tensor: a method with its params (unresolved).
struct PlanCandidate {
  std::string method;
  json params;  ///< object
  std::string label;  ///< as listed: "q4_k", "qlr{\"base\":\"q3_k\"}"
};
/// Parses "q4_k,q8_0,qlr{\"base\":\"q3_k\",\"rank\":8}": method names from the method table, each
/// optionally followed by a JSON object of params. Throws ParamError(field) naming the bad item.
std::vector<PlanCandidate> parse_plan_candidates(std::string_view list, const std::string& field = "plan.methods");
/// A candidate's params as the planner encodes it: calibration gptq added for a codec that offers it
/// when `calibrate` (unless the params name a calibration).
json with_calibration(const Codec& c, json params, bool calibrate);
/// Each candidate that with_calibration() would give GPTQ as two: "<label>" with calibration none
/// and "<label>+gptq"; the others unchanged. plan_model plans over these.
std::vector<PlanCandidate> calibration_variants(const std::vector<PlanCandidate>& cands, bool calibrate);
/// fp16, int8, every block type, and qlr corrections of q3_k and q2_k at rank 16.
std::vector<PlanCandidate> default_plan_candidates();
/// The default candidates as parse_plan_candidates reads them.
std::string default_plan_candidates_text();

struct PlannerOptions {
  PlanTarget target;
  std::vector<PlanCandidate> candidates = default_plan_candidates();
  std::string tensors;            ///< RE2 searched in names; empty: every 2-D float tensor
  /// GPTQ for the candidates that offer it (calibration gptq), from the inputs of each layer on
  /// calib_set; off: every candidate data-free.
  bool calibrate = true;
  SequenceSpec calib_set = default_calib_spec();
  int sensitivity_sequences = 8;  ///< the first calibration sequences measure each candidate's damage
  enum class Sensitivity { kAuto, kMeasured, kProxy };
  /// auto: measured when (parameters x planned tensors x candidates) <= 5e9, else proxy.
  Sensitivity sensitivity = Sensitivity::kAuto;
  SequenceSpec repair_set = default_repair_spec();
  SequenceSpec verify_set = default_eval_spec();
  int repair_rounds = 4;          ///< max_kl: re-allocations at most
  bool baselines = false;         ///< per-tensor baselines in the artifact
  bool compare = true;            ///< the reference representations beside the verified KL
  static SequenceSpec default_repair_spec();  ///< >= 2,048 tokens of 129, seeds 2,000,000..
};

struct TensorOption {
  std::string label;   ///< the candidate's label, or "keep" (source dtype, passed through)
  std::string method;  ///< empty for keep
  json params;         ///< resolved
  uint64_t bytes = 0;  ///< stored bytes with metadata, as the artifact's totals count them
  double damage = 0;   ///< KL with only this tensor replaced, sensitivity sequences
  double rel_error = 0;
};
struct PlannedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<TensorOption> options;  ///< the Pareto set, bytes ascending, damage descending
  int chosen = -1;                    ///< index into options
};
struct FrontierPoint {
  uint64_t bytes = 0;
  double ratio_f32 = 0;
  double kl_estimate = 0;
  std::optional<double> kl_measured;  ///< repair set
};
struct UniformPoint {
  std::string label;  ///< one candidate on every planned tensor
  uint64_t bytes = 0;
  double ratio_f32 = 0;
  double kl_measured = 0;  ///< repair set
};

struct PlanReport {
  PlanTarget target;
  uint64_t dense_f32_bytes = 0;   ///< every tensor
  uint64_t fixed_bytes = 0;       ///< tensors the planner does not touch, as stored
  uint64_t budget_bytes = 0;      ///< byte and ratio targets
  std::vector<PlannedTensor> tensors;
  std::vector<FrontierPoint> frontier;  ///< bytes ascending
  std::vector<UniformPoint> uniform;    ///< bytes ascending
  uint64_t bytes = 0;                   ///< the chosen plan, whole model
  double kl_estimate = 0, kl_repair = 0;
  double kl_verified = 0;               ///< verify set (the artifact's quality)
  bool target_met = true;
  std::string message;                  ///< one line: what was chosen, or why the target is out of reach
  std::vector<std::string> repairs;     ///< what the repair step changed, one line each
  std::string sensitivity_source, repair_source, verify_source;
  std::string sensitivity_mode;         ///< "measured" | "proxy"
  json spec;                            ///< re-runnable job spec: {whole_model, entries, calibrate?}
};

struct PlanOutcome {
  v1::Artifact artifact;  ///< built only when the target is met (empty otherwise)
  PlanReport report;
  BuildTimings timings;
};

/// Called with a phase ("calibrate", "candidates", "repair", "build") and 0..1 within it.
using PlanProgress = std::function<void(std::string_view phase, double fraction)>;

/// Plans, repairs, builds and verifies (see above). ctx.cancel is honoured throughout. Throws
/// ParamError("plan.target_ratio" | "plan.target_bytes" | "plan.methods" | "tensors" | ...) for a
/// budget the untouched tensors already fill or a candidate that fits no tensor, tsm::Error when the
/// runtime cannot run the model (the planner measures KL). A target out of reach after measuring
/// (a budget below the smallest plan, a max_kl no plan meets) is not an error: the report says so
/// (target_met false, message naming the smallest or closest plan, frontier) and no artifact is built.
PlanOutcome plan_model(const HfModelDir& model, const PlannerOptions& opt, const CodecContext& ctx, const std::string& source_sha256,
                       const PlanProgress& progress = {});

/// The report as JSON (frontier, uniform, per-tensor choices and Pareto sets, spec).
json plan_report_json(const PlanReport& r);
/// The frontier and the uniform methods as tables, the plan per tensor group, the repairs.
std::string plan_report_text(const PlanReport& r);

/// Builds the whole-model artifact a re-runnable spec describes (PlanReport::spec, the JSON form of a
/// JobSpec with entries): its entries, calibrated when it has "calibrate" (with its "sequences"
/// count), `opt` for the rest (evaluation, baselines). The planner builds its artifact with this, so
/// `tensorslm compress-model DIR --spec plan.json --eval` gives the same bytes.
v1::Artifact build_from_spec(const HfModelDir& model, const json& spec, ModelArtifactOptions opt, const CodecContext& ctx,
                             const std::string& source_sha256, BuildTimings* timings = nullptr);

/// The rules a re-runnable spec (PlanReport::spec, or a JobSpec's JSON form) describes: its
/// entries, each a full-match pattern. Throws ParamError("entries") when it has none or one is malformed.
std::vector<MethodRule> spec_rules(const json& spec);

}  // namespace tsm
