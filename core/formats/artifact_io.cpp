#include "formats/artifact_io.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/array_pack.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/sha256.h"
#include "common/tensor.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "formats/verified_artifact_cache.h"

namespace tsm {

namespace {

using json = nlohmann::json;

void check_params_json(const std::string& text, const std::string& where) {
  if (text.empty()) return;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw FormatError("artifact: " + where + " params_json is not a JSON object");
}

void validate(const v1::Artifact& a) {
  if (a.format_version() == 0) throw FormatError("not a tensorslm artifact (no format_version; is this a .tsm file?)");
  if (!a.has_total()) throw FormatError("artifact is truncated: its trailing 'total' field is missing");
  if (a.format_version() > kArtifactFormatVersion)
    throw FormatError("artifact format version " + std::to_string(a.format_version()) + " is newer than this build reads (" +
                      std::to_string(kArtifactFormatVersion) + "); upgrade tensorslm");
  check_params_json(a.params_json(), "job");
  std::set<std::string> names;
  for (const auto& t : a.tensors()) {
    if (!names.insert(t.name()).second) throw FormatError("artifact names tensor '" + t.name() + "' twice");
    if (t.method().empty()) throw FormatError("artifact tensor '" + t.name() + "' has no method");
    if (t.shape_size() != 2) throw FormatError("artifact tensor '" + t.name() + "' has " + std::to_string(t.shape_size()) + " shape entries, expected 2 (rows, cols)");
    std::vector<int64_t> shape;
    for (uint64_t d : t.shape()) {
      if (d > (uint64_t{1} << 40)) throw FormatError("artifact tensor '" + t.name() + "' has an implausible dimension " + std::to_string(d));
      shape.push_back(static_cast<int64_t>(d));
    }
    shape_numel(shape);
    if (t.source_dtype() != v1::DTYPE_UNSPECIFIED) {  // fuzzing found an unknown one, refused only at export
      try {
        (void)from_proto(t.source_dtype());
      } catch (const FormatError&) {
        throw FormatError("artifact tensor '" + t.name() + "' has an unknown source dtype " + std::to_string(int(t.source_dtype())));
      }
    }
    check_params_json(t.params_json(), "tensor '" + t.name() + "'");
    std::set<std::string> arrays;
    for (const auto& arr : t.arrays()) {
      if (!arrays.insert(arr.name()).second) throw FormatError("artifact tensor '" + t.name() + "' has array '" + arr.name() + "' twice");
      try {
        check_array(arr);
      } catch (const FormatError& e) {
        throw FormatError("artifact tensor '" + t.name() + "': " + e.what());
      }
    }
  }
  for (const auto& arr : a.passthrough()) {
    if (!names.insert(arr.name()).second) throw FormatError("artifact names tensor '" + arr.name() + "' twice (passthrough)");
    try {
      check_array(arr);
    } catch (const FormatError& e) {
      throw FormatError("artifact passthrough: " + std::string(e.what()));
    }
  }
}

constexpr char kMarker[2] = {'\x68', '\x01'};    // field 13 (varint) = 1
constexpr char kTrailerTag[2] = {'\x72', '\x20'};  // field 14 (bytes), length 32

std::string to_hex(std::string_view raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

bool has_marker(std::string_view b) { return b.size() >= 1 && b[0] == kMarker[0]; }

/// The framing of a hashed file (marker, trailer tag) without hashing; returns the digest it carries.
std::string_view hash_trailer(std::string_view b) {
  if (b.size() < 2 || b[1] != kMarker[1]) {
    const unsigned v = b.size() < 2 ? 0u : static_cast<unsigned char>(b[1]);
    throw FormatError("artifact header names content hash version " + std::to_string(v) +
                      ", which this build does not know (not a .tsm file, a corrupted one, or one a newer tensorslm wrote)");
  }
  if (b.size() < sizeof kMarker + kArtifactHashTrailerBytes ||
      b.substr(b.size() - kArtifactHashTrailerBytes, 2) != std::string_view(kTrailerTag, 2))
    throw FormatError("artifact is truncated or corrupted: its header promises a content hash trailer, and the file does not end with one");
  return b.substr(b.size() - 32);
}

}  // namespace

const char* integrity_name(ArtifactIntegrity::State s) {
  switch (s) {
    case ArtifactIntegrity::State::kVerified: return "verified";
    case ArtifactIntegrity::State::kUnverified: return "unverified";
    case ArtifactIntegrity::State::kSkipped: return "not checked";
  }
  return "?";
}

ArtifactIntegrity check_artifact_content(std::string_view bytes) {
  ArtifactIntegrity in;
  if (!has_marker(bytes)) return in;  // written before content hashes (starts with field 1)
  const std::string_view digest = hash_trailer(bytes);
  const std::string_view covered = bytes.substr(0, bytes.size() - kArtifactHashTrailerBytes);
  const std::string actual = sha256_hex(covered);
  in.content_sha256 = to_hex(digest);
  if (actual != in.content_sha256)
    throw FormatError("content hash mismatch: SHA-256 of the first " + std::to_string(covered.size()) + " bytes is " + actual +
                      ", the artifact says " + in.content_sha256 + " (the file is corrupted or was modified; fetch or write it again)");
  in.state = ArtifactIntegrity::State::kVerified;
  return in;
}

ArtifactIntegrity check_artifact_file(const std::string& path) {
  auto f = MappedFile::open(path);
  auto b = f->bytes();
  try {
    return check_artifact_content(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  } catch (const FormatError& e) {
    throw FormatError("'" + path + "': " + e.what());
  }
}

v1::Artifact parse_artifact(std::string_view bytes, ContentCheck check, ArtifactIntegrity* integrity) {
  if (bytes.size() > kMaxArtifactBytes)
    throw FormatError("artifact is " + std::to_string(bytes.size()) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  if (bytes.empty()) throw FormatError("artifact is empty");
  // The hash first: a flipped byte is reported as what it is, not as whatever the parser trips on.
  ArtifactIntegrity in;
  if (check == ContentCheck::kVerify) {
    in = check_artifact_content(bytes);
  } else if (has_marker(bytes)) {
    in.content_sha256 = to_hex(hash_trailer(bytes));
    in.state = ArtifactIntegrity::State::kSkipped;
  }
  v1::Artifact a;
  if (!a.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    if (bytes.substr(0, 6) == "\x93NUMPY") throw FormatError("this is a .npy file, not a tensorslm artifact (.tsm)");
    throw FormatError("artifact is not a valid tensorslm.v1.Artifact protobuf (truncated or corrupted)");
  }
  // Fields 13 and 14 describe the file; they must agree with its framing (a damaged marker byte
  // would otherwise make a hashed file pass as an unhashed one).
  if (in.state == ArtifactIntegrity::State::kUnverified) {
    if (a.content_hash_version() != 0 || !a.content_sha256().empty())
      throw FormatError("content hash mismatch: the artifact carries a content hash but its header marker is damaged (the file is corrupted)");
  } else if (a.content_hash_version() != kArtifactContentHashVersion || to_hex(a.content_sha256()) != in.content_sha256) {
    throw FormatError("content hash mismatch: the artifact's content hash fields disagree with its header and trailer (the file is corrupted)");
  }
  a.clear_content_hash_version();
  a.clear_content_sha256();
  validate(a);
  if (integrity) *integrity = std::move(in);
  return a;
}

namespace {

v1::Artifact parse_mapped(const MappedFile& f, ContentCheck check, ArtifactIntegrity* integrity) {
  auto b = f.bytes();
  try {
    return parse_artifact(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), check, integrity);
  } catch (const FormatError& e) {
    throw FormatError("'" + f.path() + "': " + e.what());
  }
}

std::shared_ptr<MappedFile> open_artifact_file(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read artifact '" + path + "': " + ec.message());
  if (size > kMaxArtifactBytes)
    throw FormatError("artifact '" + path + "' is " + std::to_string(size) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  return MappedFile::open(path);
}

}  // namespace

v1::Artifact read_artifact(const std::string& path, ContentCheck check, ArtifactIntegrity* integrity) {
  return parse_mapped(*open_artifact_file(path), check, integrity);
}

v1::Artifact read_artifact_cached(const std::string& path, VerifiedArtifactCache& cache, ArtifactIntegrity* integrity) {
  auto f = open_artifact_file(path);
  const bool seen = cache.contains(f->identity());
  const int64_t hashed_at = VerifiedArtifactCache::now_ns();
  ArtifactIntegrity in;
  v1::Artifact a = parse_mapped(*f, seen ? ContentCheck::kSkip : ContentCheck::kVerify, &in);
  if (seen && in.state == ArtifactIntegrity::State::kSkipped) {
    in.state = ArtifactIntegrity::State::kVerified;
    in.cached = true;
  } else if (in.state == ArtifactIntegrity::State::kVerified) {
    cache.add(f->identity(), in.content_sha256, hashed_at);
  }
  if (integrity) *integrity = std::move(in);
  return a;
}

std::string serialize_artifact(const v1::Artifact& a) {
  if (a.content_hash_version() != 0 || !a.content_sha256().empty())
    throw Error("artifact has content_hash_version / content_sha256 set; only the writer sets them");
  size_t n = a.ByteSizeLong() + sizeof kMarker + 2 + kArtifactHashTrailerBytes;
  if (n > kMaxArtifactBytes) throw Error("artifact would be " + std::to_string(n) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  std::string out;
  out.reserve(n);
  out.append(kMarker, sizeof kMarker);
  if (!a.AppendToString(&out)) throw Error("artifact serialization failed");
  // Fields are written in field-number order, so `total` (12) comes last; readers of unhashed files
  // use its presence to detect truncation at a field boundary. Without one, append an empty field 12.
  if (!a.has_total()) out.append("\x62\x00", 2);
  const std::string digest = from_hex(sha256_hex(out));
  out.append(kTrailerTag, sizeof kTrailerTag);
  out.append(digest);
  return out;
}

std::string write_artifact(const std::string& path, const v1::Artifact& a) {
  std::string bytes = serialize_artifact(a);
  write_file_atomic(path, bytes);
  return sha256_hex(bytes);
}

namespace {

Tensor array_tensor(std::string name, const v1::Array& arr) {
  check_array(arr);
  Tensor t;
  t.name = std::move(name);
  t.dtype = from_proto(arr.dtype());
  t.shape = array_shape(arr);
  t.bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(arr.data().data()), arr.data().size());
  return t;  // borrows the artifact's bytes; the image is built before `a` can go away
}

json parse_or_empty(const std::string& s) {
  if (s.empty()) return json::object();
  json j = json::parse(s, nullptr, false);
  return j.is_discarded() ? json(s) : j;
}

}  // namespace

std::string artifact_to_safetensors(const v1::Artifact& a) {
  std::vector<Tensor> tensors;
  std::map<std::string, std::string> meta;
  json index = json::array();
  for (const auto& t : a.tensors()) {
    json arrays = json::array();
    for (const auto& arr : t.arrays()) {
      std::string full = t.name() + "/" + arr.name();
      tensors.push_back(array_tensor(full, arr));
      arrays.push_back({{"name", arr.name()}, {"tensor", full}, {"dtype", dtype_name(from_proto(arr.dtype()))}, {"shape", array_shape(arr)}});
    }
    json shape = json::array();
    for (uint64_t d : t.shape()) shape.push_back(d);
    json entry = {{"name", t.name()},
                  {"method", t.method()},
                  {"shape", shape},
                  {"source_dtype", t.source_dtype() == v1::DTYPE_UNSPECIFIED ? "" : std::string(dtype_name(from_proto(t.source_dtype())))},
                  {"params", parse_or_empty(t.params_json())},
                  {"arrays", arrays}};
    meta["tensorslm.tensor." + t.name()] = entry.dump();
    index.push_back(t.name());
  }
  json passthrough = json::array();
  for (const auto& arr : a.passthrough()) {
    tensors.push_back(array_tensor(arr.name(), arr));
    passthrough.push_back(arr.name());
  }
  meta["format"] = "tensorslm";
  meta["tensorslm.format_version"] = std::to_string(a.format_version());
  meta["tensorslm.generator"] = a.generator();
  meta["tensorslm.source_sha256"] = a.source_sha256();
  meta["tensorslm.method"] = a.method();
  meta["tensorslm.params"] = parse_or_empty(a.params_json()).dump();
  meta["tensorslm.tensors"] = index.dump();
  meta["tensorslm.passthrough"] = passthrough.dump();
  if (!a.config_json().empty()) meta["tensorslm.config_json"] = a.config_json();
  if (!a.tokenizer_json().empty()) meta["tensorslm.tokenizer_json"] = a.tokenizer_json();
  return safetensors_bytes(tensors, meta);
}

}  // namespace tsm
