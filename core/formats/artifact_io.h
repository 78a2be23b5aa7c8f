// Artifact (.tsm) files: one serialized tensorslm.v1.Artifact. Reading checks the file size against
// a limit before allocating and every array's shape x dtype against its bytes after parsing;
// writing is atomic. Export turns an artifact into safetensors for Python users.
// Truncation: the writer always ends the file with field 12 (`total`); a reader refuses a file without it.
#pragma once
#include <string>
#include <string_view>

#include "artifact.pb.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

inline constexpr uint32_t kArtifactFormatVersion = 1;
inline constexpr size_t kMaxArtifactBytes = size_t(1) << 31;  // protobuf's 2 GiB message limit

/// Parses and validates; throws tsm::FormatError (wrong magic/version, size, inconsistent arrays).
v1::Artifact parse_artifact(std::string_view bytes);
v1::Artifact read_artifact(const std::string& path);
std::string serialize_artifact(const v1::Artifact& a);
/// Atomic write; returns the sha256 hex of the written bytes.
std::string write_artifact(const std::string& path, const v1::Artifact& a);

/// safetensors image of an artifact: each codec array as "<tensor>/<array>" (dtype and shape kept),
/// passthrough tensors under their own names, and __metadata__ with method, params and shapes
/// (JSON strings) so numpy code can rebuild every tensor.
std::string artifact_to_safetensors(const v1::Artifact& a);

}  // namespace tsm
