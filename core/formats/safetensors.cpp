#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/mapped_file.h"

namespace tsm {

namespace {

using json = nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // as the reference implementation

bool st_dtype(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I8", DType::I8},   {"U8", DType::U8},   {"I16", DType::I16},   {"U16", DType::U16},
      {"I32", DType::I32}, {"U32", DType::U32}, {"I64", DType::I64}};
  for (const auto& [name, t] : table)
    if (s == name) {
      out = t;
      return true;
    }
  return false;
}

std::string st_dtype_name(DType t) {
  std::string s(dtype_name(t));
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

}  // namespace

SafetensorsFile SafetensorsFile::parse(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 8) throw FormatError("safetensors file is " + std::to_string(bytes.size()) + " bytes, too short for the header length", 0);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(p[i]) << (8 * i);
  if (n > kMaxHeaderBytes) throw FormatError("safetensors header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes), 0);
  if (n > bytes.size() - 8)
    throw FormatError("safetensors header declares " + std::to_string(n) + " bytes but the file has only " + std::to_string(bytes.size() - 8) + " after the length", 0);
  std::string_view text(reinterpret_cast<const char*>(p + 8), n);
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = bytes.size() - data_start;

  // Duplicate top-level keys are silently merged by JSON parsers; catch them with the parser callback.
  std::set<std::string> seen;
  std::string duplicate;
  json h;
  try {
    h = json::parse(text, [&](int depth, json::parse_event_t ev, json& parsed) {
      if (depth == 1 && ev == json::parse_event_t::key) {
        std::string k = parsed.get<std::string>();
        if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
      }
      return true;
    });
  } catch (const json::exception& e) {
    throw FormatError(std::string("safetensors header is not valid JSON: ") + e.what(), 8);
  }
  if (!duplicate.empty()) throw FormatError("safetensors header names tensor '" + duplicate + "' twice", 8);
  if (!h.is_object()) throw FormatError("safetensors header is not a JSON object", 8);

  SafetensorsFile f;
  std::vector<Entry> entries;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError("safetensors __metadata__ is not an object", 8);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) throw FormatError("safetensors __metadata__ value of '" + m.key() + "' is not a string", 8);
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return FormatError("safetensors tensor '" + name + "': " + why, 8); };
    if (!v.is_object()) throw bad("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw bad("missing or non-string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) throw bad("missing or non-array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) throw bad("'data_offsets' must be [begin, end]");
    Entry e;
    e.name = name;
    std::string dt = v["dtype"].get<std::string>();
    if (!st_dtype(dt, e.dtype)) throw bad("dtype '" + dt + "' is not supported (F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64)");
    if (v["shape"].size() > 32) throw bad("more than 32 dimensions");
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
      uint64_t x = d.get<uint64_t>();
      if (x > (uint64_t{1} << 62)) throw bad("dimension " + std::to_string(x) + " is too large");
      e.shape.push_back(static_cast<int64_t>(x));
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) throw bad("data_offsets must be non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end) throw bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] are reversed");
    if (e.end > data_size)
      throw FormatError("safetensors tensor '" + name + "': data_offsets end " + std::to_string(e.end) + " lies past the data section of " +
                        std::to_string(data_size) + " bytes", static_cast<int64_t>(data_start + std::min(e.begin, data_size)));
    int64_t numel;
    try {
      numel = shape_numel(e.shape);
    } catch (const FormatError&) {
      throw bad("shape " + shape_str(e.shape) + " is too large");
    }
    uint64_t need = static_cast<uint64_t>(numel);
    if (need > (uint64_t{1} << 62) / dtype_size(e.dtype)) throw bad("shape " + shape_str(e.shape) + " is too large");
    need *= dtype_size(e.dtype);
    if (need != e.end - e.begin)
      throw FormatError("safetensors tensor '" + name + "': shape " + shape_str(e.shape) + " x " + dt + " needs " + std::to_string(need) +
                        " bytes, data_offsets span " + std::to_string(e.end - e.begin), static_cast<int64_t>(data_start + e.begin));
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      throw FormatError("safetensors tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap",
                        static_cast<int64_t>(data_start + entries[i].begin));

  f.tensors_.reserve(entries.size());
  for (auto& e : entries) {
    Tensor t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.bytes = bytes.subspan(data_start + e.begin, e.end - e.begin);
    t.owner = owner;
    f.tensors_.push_back(std::move(t));
  }
  f.origin_ = "safetensors image";
  return f;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto m = MappedFile::open(path);
  try {
    SafetensorsFile f = parse(m->bytes(), m);
    f.origin_ = path;
    return f;
  } catch (const FormatError& e) {
    throw FormatError("'" + path + "': " + e.what());
  }
}

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const Tensor& SafetensorsFile::at(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  std::string has;
  for (size_t i = 0; i < tensors_.size() && i < 20; ++i) has += (i ? ", " : "") + tensors_[i].name;
  if (tensors_.size() > 20) has += ", ... (" + std::to_string(tensors_.size()) + " in all)";
  throw Error("no tensor '" + std::string(name) + "' in " + origin_ + " (has: " + has + ")");
}

namespace {

// The header text padded with spaces to a multiple of 8 (data stays 8-byte aligned, as the reference writer).
std::string header_for(std::span<const Tensor> tensors, const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") throw Error("safetensors: a tensor cannot be named __metadata__");
    if (!names.insert(t.name).second) throw Error("safetensors: tensor name '" + t.name + "' is used twice");
    uint64_t n = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype);
    if (n != t.bytes.size())
      throw Error("safetensors: tensor '" + t.name + "' has " + std::to_string(t.bytes.size()) + " bytes, shape needs " + std::to_string(n));
    h[t.name] = {{"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + text;
}

}  // namespace

std::string safetensors_bytes(std::span<const Tensor> tensors, const std::map<std::string, std::string>& metadata) {
  std::string out = header_for(tensors, metadata);
  for (const auto& t : tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

void write_safetensors(const std::string& path, std::span<const Tensor> tensors, const std::map<std::string, std::string>& metadata) {
  std::string header = header_for(tensors, metadata);
  AtomicFileWriter w(path);
  w.write(header.data(), header.size());
  for (const auto& t : tensors) w.write(t.bytes.data(), t.bytes.size());
  w.commit();
}

}  // namespace tsm
