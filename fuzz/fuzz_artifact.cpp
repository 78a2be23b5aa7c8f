// Fuzz target: artifact (.tsm) reading (core/formats/artifact_io check_artifact_content,
// parse_artifact with ContentCheck::kVerify and kSkip). The input is read as it is, and once more
// with its content-hash trailer recomputed (when it has the marker and a trailer's room) so that
// mutations reach the protobuf parser and validate() instead of stopping at the hash. An artifact
// that parses must export (artifact_to_safetensors, which must parse as safetensors) and must
// round-trip: serialize_artifact() of it parses again, verified.
#include <string>

#include "artifact.pb.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/safetensors.h"
#include "fuzz_util.h"

namespace {

void read_one(std::string_view bytes, tsm::ContentCheck check) {
  using namespace tsm;
  v1::Artifact a;
  try {
    ArtifactIntegrity in;
    a = parse_artifact(bytes, check, &in);
    if (a.content_hash_version() != 0 || !a.content_sha256().empty()) fuzz::finding("artifact: parsed message keeps fields 13/14");
  } catch (const Error&) {
    return;
  }
  try {
    const std::string st = artifact_to_safetensors(a);
    (void)SafetensorsFile::parse({reinterpret_cast<const std::byte*>(st.data()), st.size()}, nullptr);
  } catch (const Error& e) {
    fuzz::finding(std::string("artifact: export of a valid artifact fails: ") + e.what());
  }
  std::string again;
  try {
    again = serialize_artifact(a);
  } catch (const Error&) {
    return;  // e.g. past kMaxArtifactBytes
  }
  ArtifactIntegrity in;
  try {
    (void)parse_artifact(again, ContentCheck::kVerify, &in);
  } catch (const Error& e) {
    fuzz::finding(std::string("artifact: serialize_artifact() of a valid artifact does not parse: ") + e.what());
  }
  if (in.state != ArtifactIntegrity::State::kVerified) fuzz::finding("artifact: a freshly written artifact is not verified");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  const std::string_view bytes = fuzz::text(data, size);
  try {
    (void)check_artifact_content(bytes);
  } catch (const Error&) {
  }
  read_one(bytes, ContentCheck::kVerify);
  read_one(bytes, ContentCheck::kSkip);
  // The same bytes with a correct trailer: [0, n-34) hashed, then 0x72 0x20 + digest.
  if (size >= 2 + kArtifactHashTrailerBytes && data[0] == 0x68) {
    std::string fixed(bytes);
    const size_t covered = size - kArtifactHashTrailerBytes;
    Sha256 h;
    h.update(fixed.data(), covered);
    const std::string hex = h.hex_digest();
    fixed[covered] = 0x72;
    fixed[covered + 1] = 0x20;
    for (size_t i = 0; i < 32; ++i) fixed[covered + 2 + i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    read_one(fixed, ContentCheck::kVerify);
  }
  return 0;
}
