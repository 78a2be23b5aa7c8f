// Artifact (.tsm) files: one serialized tensorslm.v1.Artifact that proves its own integrity. Reading
// checks the file size against a limit before allocating, the content hash, and every array's
// shape x dtype against its bytes after parsing; writing is atomic. Export turns an artifact into
// safetensors for Python users.
//
// File layout (format version 1, content hash version 1), n bytes in all:
//   [0, 2)        0x68 0x01           field 13 content_hash_version = 1 (a marker: a hash trailer ends the file)
//   [2, n-34)     the Artifact message without fields 13 and 14, as protobuf serializes it, ending with
//                 field 12 (`total`; 0x62 0x00 when it is empty)
//   [n-34, n)     0x72 0x20 + 32 bytes field 14 content_sha256 = SHA-256 of bytes [0, n-34)
// The whole file is one valid protobuf message (readers that predate the hash skip fields 13 and 14
// as unknown), and the digest covers the exact stored bytes, so nothing relies on protobuf
// serialization being canonical. A later layout with a raw data section after the message keeps
// the marker first and the trailer last, covering the data section too.
// Artifacts written before content hashes start with field 1 (0x08) and end with field 12; they
// stay readable and are reported as unverified. Truncation: a hashed file loses its trailer (the
// marker promises one); an unhashed file must still end with `total`.
#pragma once
#include <string>
#include <string_view>

#include "artifact.pb.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

inline constexpr uint32_t kArtifactFormatVersion = 1;
inline constexpr uint32_t kArtifactContentHashVersion = 1;
inline constexpr size_t kArtifactHashTrailerBytes = 34;  // tag, length, 32-byte SHA-256
inline constexpr size_t kMaxArtifactBytes = size_t(1) << 31;  // protobuf's 2 GiB message limit

/// What a reader knows about an artifact's content hash.
struct ArtifactIntegrity {
  enum class State {
    kVerified,    ///< the file carries a content hash and its bytes match it
    kUnverified,  ///< written before artifacts carried a content hash: nothing to check
    kSkipped,     ///< the file carries a content hash that this read did not check (ContentCheck::kSkip)
  };
  State state = State::kUnverified;
  std::string content_sha256;  ///< hex of the digest the file carries ("" when kUnverified)
  bool cached = false;         ///< read_artifact_cached: verified earlier for this file identity, not hashed now
};
/// "verified", "unverified" or "not checked".
const char* integrity_name(ArtifactIntegrity::State s);

/// kVerify hashes the bytes (one SHA-256 pass); kSkip only checks the framing, for a caller that has
/// verified these exact bytes before (read_artifact_cached, a store that checked them on the way in).
enum class ContentCheck { kVerify, kSkip };

/// The content hash of a whole file image, without parsing it. Throws tsm::FormatError "content hash
/// mismatch ..." when the digest differs or the marker and trailer disagree, "... truncated ..." when
/// the marker promises a trailer that is not there.
ArtifactIntegrity check_artifact_content(std::string_view bytes);
/// The same on a file (mapped, not read into memory); errors name the path.
ArtifactIntegrity check_artifact_file(const std::string& path);

/// Parses and validates; throws tsm::FormatError (wrong magic/version, size, content hash,
/// inconsistent arrays). The returned message never has fields 13 and 14 set (they describe the
/// file, see `integrity`).
v1::Artifact parse_artifact(std::string_view bytes, ContentCheck check = ContentCheck::kVerify,
                            ArtifactIntegrity* integrity = nullptr);
v1::Artifact read_artifact(const std::string& path, ContentCheck check = ContentCheck::kVerify,
                           ArtifactIntegrity* integrity = nullptr);
/// The file image described above. Throws tsm::Error when `a` has fields 13 or 14 set (only the
/// writer sets them) or would exceed kMaxArtifactBytes.
std::string serialize_artifact(const v1::Artifact& a);
/// Atomic write; returns the sha256 hex of the written bytes (the artifact's id; not the content hash).
std::string write_artifact(const std::string& path, const v1::Artifact& a);

class VerifiedArtifactCache;
/// read_artifact that hashes a file only when `cache` has not seen its identity (device, inode,
/// size, mtime, ctime) verify before, and records it after a successful verification.
v1::Artifact read_artifact_cached(const std::string& path, VerifiedArtifactCache& cache, ArtifactIntegrity* integrity = nullptr);

/// safetensors image of an artifact: each codec array as "<tensor>/<array>" (dtype and shape kept),
/// passthrough tensors under their own names, and __metadata__ with method, params and shapes
/// (JSON strings) so numpy code can rebuild every tensor.
std::string artifact_to_safetensors(const v1::Artifact& a);

}  // namespace tsm
