// Whole-model compression jobs: every 2-D tensor of an HF model directory whose name matches a regex
// (RE2 syntax, common/tensor_pattern.h; searched anywhere in the name, as llama.cpp's --tensor-type) is compressed
// with one method; every other tensor passes through unchanged; config.json and tokenizer.json are
// copied, so the artifact alone is a runnable model. Invariant: tensors + passthrough together hold
// every tensor of the source exactly once. `total` counts the whole model (passthrough bytes
// included); quality is measured when the runtime can run the architecture.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "methods/codec.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"
#include "model/evaluate.h"
#include "model/model_config.h"

namespace tsm {

struct BuildTimings;  // pipeline/artifact_builder.h

struct ModelArtifactOptions {
  bool baselines = true;        ///< generic baselines (compress_matrix) + the method's own (Codec::own_baselines)
  bool eval = true;             ///< measure KL / ppl vs the dense model when the model is runnable (pipeline/model_quality.h)
  SequenceSpec eval_set = default_eval_spec();  ///< evaluation sequences: >= 2,048 predicted tokens by default
  bool compare = true;          ///< with eval: every reference representation of the same tensors, and a verdict
  /// Calibration-aware compression (methods whose codec calibrates(), e.g. saten, or q-types with
  /// calibration gptq): collect the inputs of every compressed linear layer by running the dense
  /// model on `calib_set` (held out from eval_set: require_disjoint) and fit each layer in the
  /// activation-weighted norm (Codec::encode_calibrated). Baselines are computed either way.
  bool calibrate = false;
  /// Weight the rows of a (vocab, d) table compressed by a method with an embedding operator by how
  /// often each token occurs in calib_set (add-one smoothed, mean 1): CodecContext::row_weights, the
  /// objective of tt-token's ratio allocation (unweighted, the budget goes to large-norm rare tokens).
  bool token_weights = true;
  SequenceSpec calib_set = default_calib_spec();
  /// The sets make_sequence_set gives for calib_set / eval_set on this model, when the caller has
  /// them already (the planner): used instead of sampling again. Null: sampled here.
  std::shared_ptr<const SequenceSet> calib_sampled, eval_sampled;
  int adam_steps = 50;
  std::string whitening = "cholesky";
};

/// What a whole-model job will compress: the matching 2-D float tensors in model order, each with
/// the parameters it gets (orientation in_out added for GPT-2 Conv1D weights when the method takes one), already
/// checked by the codec against its shape. Cheap (no compression): the service validates a job
/// with it before queueing.
struct ModelPlan {
  struct Item {
    std::string name;
    std::string method;
    json params;  ///< resolved by the method's codec (defaults filled)
  };
  std::vector<Item> tensors;
  int64_t elements = 0;            ///< sum of the selected tensors' sizes
  std::optional<ModelConfig> cfg;  ///< when config.json names an architecture the runtime knows
};
/// Throws ParamError("tensors") for a bad regex or when no 2-D float tensor matches, the codec's
/// ParamError for bad params (naming the tensor and its shape), ParamError("calibrate") when
/// calibration is asked of a method or model that cannot have it.
ModelPlan plan_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                              const json& params, const ModelArtifactOptions& opt = {});
/// The same from a tensor listing and config.json alone (no model files opened), e.g. what the
/// service recorded for an upload.
struct TensorMeta {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};
/// Every tensor of `model` (name, dtype, shape), in model order.
std::vector<TensorMeta> tensor_metas(const HfModelDir& model);
ModelPlan plan_model_artifact(const std::vector<TensorMeta>& tensors, const json& config, const std::string& tensor_regex,
                              const std::string& method, const json& params, const ModelArtifactOptions& opt = {});

/// One rule of a mixed plan: the 2-D float tensors whose name `pattern` matches (fully, or anywhere
/// in the name) get `method` with `params`. The first rule that matches a tensor decides.
struct MethodRule {
  std::string pattern;
  bool full_match = false;
  std::string method;
  json params;
};
/// The plan for rules (e.g. a job's per-tensor entries, then its method for the rest). Same errors
/// as above; ParamError("calibrate") when calibration is asked and no rule's method calibrates.
ModelPlan plan_model_artifact(const std::vector<TensorMeta>& tensors, const json& config, std::span<const MethodRule> rules,
                              const ModelArtifactOptions& opt = {});

/// The inputs' covariance X^T X / n (in, in) of each linear layer named in `names` (checkpoint
/// names; others are ignored), from the dense model run on `calib`.
std::map<std::string, MatrixRMd> layer_input_covariances(const HfModelDir& model, const std::set<std::string>& names,
                                                         const SequenceSet& calib);
/// Whether `name` is a linear weight that `cfg`'s architecture stores (in, out) (GPT-2 Conv1D).
bool stored_in_out_weight(const ModelConfig& cfg, const std::string& name);
/// How often each id occurs in `calib`, add-one smoothed and scaled to mean 1: (vocab) row weights.
std::vector<float> token_frequency_weights(const SequenceSet& calib, int64_t vocab);
/// One tensor of a whole-model artifact as build_model_artifact encodes it: calibrated when
/// `covariance` is given, metrics filled, baselines (generic and the method's own) when opt.baselines.
/// ParamErrors name the tensor.
v1::CompressedTensor encode_model_tensor(ConstMatrixRef W, const std::string& name, DType source_dtype, const std::string& method,
                                         const json& params, const MatrixRMd* covariance, const ModelArtifactOptions& opt,
                                         const CodecContext& ctx);

/// Compresses per plan_model_artifact (same errors) and measures quality when asked.
v1::Artifact build_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                                  const json& params, const CodecContext& ctx, const std::string& source_sha256);
v1::Artifact build_model_artifact(const HfModelDir& model, const std::string& tensor_regex, const std::string& method,
                                  const json& params, const CodecContext& ctx, const std::string& source_sha256,
                                  const ModelArtifactOptions& opt, BuildTimings* timings = nullptr);

/// Compresses the tensors of `plan` (each with its own method and resolved params); `job` is recorded
/// as the artifact's params_json (calibration added when it ran). Like build_artifact, the artifact
/// holds no creation or wall time (they go to `timings`).
v1::Artifact build_model_artifact(const HfModelDir& model, const ModelPlan& plan, const CodecContext& ctx,
                                  const std::string& source_sha256, const ModelArtifactOptions& opt, json job,
                                  BuildTimings* timings = nullptr);

}  // namespace tsm
