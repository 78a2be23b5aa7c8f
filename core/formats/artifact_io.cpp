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

}  // namespace

v1::Artifact parse_artifact(std::string_view bytes) {
  if (bytes.size() > kMaxArtifactBytes)
    throw FormatError("artifact is " + std::to_string(bytes.size()) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  if (bytes.empty()) throw FormatError("artifact is empty");
  v1::Artifact a;
  if (!a.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    if (bytes.substr(0, 6) == "\x93NUMPY") throw FormatError("this is a .npy file, not a tensorslm artifact (.tsm)");
    throw FormatError("artifact is not a valid tensorslm.v1.Artifact protobuf (truncated or corrupted)");
  }
  validate(a);
  return a;
}

v1::Artifact read_artifact(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read artifact '" + path + "': " + ec.message());
  if (size > kMaxArtifactBytes)
    throw FormatError("artifact '" + path + "' is " + std::to_string(size) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  auto f = MappedFile::open(path);
  auto b = f->bytes();
  try {
    return parse_artifact(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  } catch (const FormatError& e) {
    throw FormatError("'" + path + "': " + e.what());
  }
}

std::string serialize_artifact(const v1::Artifact& a) {
  size_t n = a.ByteSizeLong();
  if (n > kMaxArtifactBytes) throw Error("artifact would be " + std::to_string(n) + " bytes, more than the limit of " + std::to_string(kMaxArtifactBytes));
  std::string out;
  if (!a.SerializeToString(&out)) throw Error("artifact serialization failed");
  // Fields are written in field-number order, so `total` (12) comes last; readers use its presence to
  // detect truncation at a field boundary. Without one, append an empty field 12 (tag 0x62, length 0).
  if (!a.has_total()) out.append("\x62\x00", 2);
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
