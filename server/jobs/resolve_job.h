// A job's spec and its upload's tensor listing turned into what a worker runs (v1::ResolvedJob):
// every tensor it compresses, with the method of the first per-tensor entry whose pattern fully
// matches its name (else the job's method) and that method's resolved parameters (defaults filled,
// orientation set for GPT-2 Conv1D weights). Runs once, when the job is posted, on the request
// pool (never an I/O thread); the result is stored with the job and the worker never resolves
// again. Pure but for reading a whole-model upload's config.json from its extracted directory.
#pragma once
#include <string>

#include "job.pb.h"
#include "pipeline/memory_estimate.h"
#include "pipeline/model_artifact.h"
#include "pipeline/planner.h"
#include "store/store.h"

namespace tsm::server {

/// Throws tsm::ParamError naming the field: "tensors", "whole_model", "quality_gate.max_kl",
/// "calibrate", "params.<name>" or "entries[i].params.<name>" (with the tensor and its shape).
/// A plan job resolves to no tensors (the planner decides them when it runs) but is checked here:
/// "plan" (not a model tar whose config.json the runtime runs), "tensors" (no 2-D float tensor
/// matches), "plan.target_ratio" / "plan.target_bytes" (the kept tensors fill the budget),
/// "plan.methods" (a candidate that fits no planned tensor), "evaluation.sequences".
tensorslm::v1::ResolvedJob resolve_job(const tensorslm::v1::JobSpec& spec, const UploadRecord& upload,
                                       const std::string& model_dir);

/// "model 'm' already has tag 'v1' (published by job j_...)" when the spec would publish an
/// existing model:tag without publish.replace; "" otherwise.
std::string published_tag_clash(MetadataStore& store, const tensorslm::v1::JobSpec& spec);

/// The job's estimated peak working set (pipeline/memory_estimate.h) from the upload's tensor listing,
/// config.json and the resolved tensors: the largest matrix job plus the others' results for a
/// tensor job, the whole-model or planner estimate otherwise. Cheap; run at POST.
MemoryEstimate job_memory_estimate(const tensorslm::v1::JobSpec& spec, const UploadRecord& upload,
                                   const tensorslm::v1::ResolvedJob& resolved, const std::string& model_dir);

/// Whole-model build options of a job: calibration as its spec asks, evaluation on.
ModelArtifactOptions model_artifact_options(const tensorslm::v1::JobSpec& spec);
/// The planner's options of a plan job (spec.plan set): its target and candidates, `tensors` joined
/// into one regex (empty: every 2-D float tensor), evaluation as the verify set (as
/// model_artifact_options reads it), calibrate.sequences as the calibration count.
PlannerOptions planner_options(const tensorslm::v1::JobSpec& spec);
/// A whole-model job's plan from its resolved tensors (the worker's side of resolve_job).
ModelPlan plan_from_resolved(const tensorslm::v1::ResolvedJob& r, const nlohmann::json& config);
/// What the artifact records as its params_json: {tensors, params, entries?, calibrate?}.
nlohmann::json artifact_job_json(const tensorslm::v1::JobSpec& spec);

}  // namespace tsm::server
