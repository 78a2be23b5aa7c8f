// The job schema at the server's edge: tensorslm.v1.JobSpec (proto/job.proto) is the one form of a
// job from the HTTP body to the worker. A request body is checked field by field (a ParamError
// names the field), then mapped onto the message by protobuf's JSON mapping; the JSON a client
// reads back is the message printed by the same mapping (snake_case names, numbers as numbers,
// defaults printed). Method parameters cross into core as JSON objects (the codec border), so a
// new method never touches proto/.
// Invariant: a JobSpec from parse_job_spec has a known method (or per-tensor entries that all
// name known methods, or a plan: exactly one target, candidates that parse, whole_model set and no
// method, params or entries) and well-formed optional parts; parameter values are checked against each
// tensor's shape when the job is resolved (resolve_job.h).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "job.pb.h"

namespace tsm::server {

namespace v1 = ::tensorslm::v1;

/// Throws tsm::ParamError naming the field (e.g. "publish.model", "entries[1].method") and why.
v1::JobSpec parse_job_spec(const nlohmann::json& body);
/// The spec as clients read it (the "spec" member of a job).
nlohmann::json job_spec_json(const v1::JobSpec& s);
/// The spec of a stored job (JobRecord::spec_pb). Throws tsm::FormatError when the bytes do not parse.
v1::JobSpec stored_job_spec(const std::string& spec_pb);

/// A Struct as a JSON object and back (numbers are doubles in a Struct; whole numbers come back
/// as JSON integers). struct_from_json throws tsm::ParamError(field) for a non-object.
nlohmann::json struct_json(const google::protobuf::Struct& s);
google::protobuf::Struct struct_from_json(const nlohmann::json& j, const std::string& field = "params");

/// "queued", "running", "succeeded", "failed", "canceled" (the names in JSON and the store).
const std::string& state_name(v1::JobState s);
std::optional<v1::JobState> parse_state(std::string_view name);
bool is_terminal(v1::JobState s);

/// Names that become URL segments or labels: [A-Za-z0-9._-], 1..128 chars, not "." or "..".
bool is_safe_name(const std::string& s);

}  // namespace tsm::server
