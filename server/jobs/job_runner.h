// One job's computation, independent of HTTP and of the store: compress the selected tensors of an
// upload into an Artifact, describe the result as JSON (the same views as the CLI's --json) and
// check the quality gate. Runs on a worker thread; honours CodecContext's cancel flag.
#pragma once
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "artifact.pb.h"
#include "methods/codec.h"
#include "pipeline/artifact_builder.h"
#include "common/tensor.h"
#include "spec/job_spec.h"

namespace tsm::server {

/// build_artifact (pipeline/artifact_builder.h) with each tensor's resolved method and params
/// (`resolved.tensors(i)` for `tensors[i]`): the same artifact the CLI writes. `job` becomes its
/// params_json. Progress is reported across tensors; wall times go to `timings` (the artifact holds
/// none, so identical jobs store identical bytes). Throws tsm::Canceled, tsm::Error.
v1::Artifact compress_tensors(std::span<const Tensor> tensors, const std::string& source_sha256,
                              const tensorslm::v1::ResolvedJob& resolved, const nlohmann::json& job, const CodecContext& ctx,
                              BuildTimings* timings = nullptr);

/// {tensors: [tensor_report_json], total: metrics_to_json, quality?} (pipeline/metrics_json.h: the CLI's
/// views), with each tensor's and the total's "seconds" from `timings` when given.
nlohmann::json artifact_result_json(const v1::Artifact& a, const BuildTimings* timings = nullptr);

/// Checks the bytes about to be stored as an artifact blob against their own content hash; throws
/// tsm::FormatError naming what is wrong (also when they carry none). Returns the content hash (hex).
std::string verify_artifact_for_store(std::string_view bytes);

/// Empty when the artifact passes the gate; else what missed and by how much.
std::string quality_gate_failure(const v1::Artifact& a, const tensorslm::v1::QualityGate& gate);

}  // namespace tsm::server
