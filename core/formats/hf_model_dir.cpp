#include "formats/hf_model_dir.h"

#include <cstring>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/mapped_file.h"
#include "formats/npy.h"

namespace tsm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxJsonFileBytes = size_t(64) << 20;  // config.json / index: small files, refuse anything huge

json read_json_file(const fs::path& p, const std::string& what) {
  std::string text = read_file(p.string(), kMaxJsonFileBytes);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(what + " '" + p.string() + "' is not valid JSON: " + e.what());
  }
}

// Embedding names by model_type. Architectures are data: one table, not scattered literals.
struct ArchEmbedding {
  const char* model_type;
  const char* names[2];
};
constexpr ArchEmbedding kEmbeddingByArch[] = {
    {"gpt2", {"transformer.wte.weight", "wte.weight"}},
    {"opt", {"model.decoder.embed_tokens.weight", "decoder.embed_tokens.weight"}},
    {"llama", {"model.embed_tokens.weight", "embed_tokens.weight"}},
    {"mistral", {"model.embed_tokens.weight", "embed_tokens.weight"}},
    {"qwen2", {"model.embed_tokens.weight", "embed_tokens.weight"}},
    {"gemma", {"model.embed_tokens.weight", "embed_tokens.weight"}},
    {"phi3", {"model.embed_tokens.weight", "embed_tokens.weight"}},
};
constexpr const char* kEmbeddingSuffixes[] = {"wte.weight", "embed_tokens.weight"};

bool ends_with(std::string_view s, std::string_view suf) { return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf; }

}  // namespace

HfModelDir HfModelDir::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("'" + dir + "' is not a directory");
  HfModelDir m;
  m.dir_ = dir;
  fs::path root(dir);
  fs::path cfg = root / "config.json";
  if (!fs::exists(cfg, ec)) throw Error("model directory '" + dir + "' has no config.json");
  m.config_ = read_json_file(cfg, "config.json");
  if (!m.config_.is_object()) throw FormatError("config.json in '" + dir + "' is not a JSON object");

  auto add_shard = [&](const fs::path& p) {
    auto f = std::make_shared<SafetensorsFile>(SafetensorsFile::open(p.string()));
    m.shards_.push_back(f);
    return f;
  };
  fs::path single = root / "model.safetensors";
  fs::path index = root / "model.safetensors.index.json";
  if (fs::exists(single, ec)) {
    auto f = add_shard(single);
    for (const auto& t : f->tensors()) m.index_[t.name] = &t;
  } else if (fs::exists(index, ec)) {
    json idx = read_json_file(index, "model.safetensors.index.json");
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw FormatError("'" + index.string() + "' has no \"weight_map\" object");
    std::map<std::string, std::shared_ptr<SafetensorsFile>> by_file;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw FormatError("'" + index.string() + "': weight_map entry '" + it.key() + "' is not a file name");
      std::string file = it.value().get<std::string>();
      // A shard must be a plain file name inside the directory (no paths out of it).
      if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos || file == "." || file == "..")
        throw FormatError("'" + index.string() + "': shard name '" + file + "' is not a plain file name");
      auto& shard = by_file[file];
      if (!shard) {
        if (!fs::exists(root / file, ec)) throw Error("model directory '" + dir + "': shard '" + file + "' named in the index is missing");
        shard = add_shard(root / file);
      }
      const Tensor* t = shard->find(it.key());
      if (!t) throw FormatError("'" + index.string() + "' maps tensor '" + it.key() + "' to '" + file + "', which does not hold it");
      m.index_[it.key()] = t;
    }
  } else if (fs::exists(root / "pytorch_model.bin", ec)) {
    throw Error("model directory '" + dir + "' has only pytorch_model.bin; save it with safe_serialization=True (model.safetensors)");
  } else {
    throw Error("model directory '" + dir + "' has neither model.safetensors nor model.safetensors.index.json");
  }
  return m;
}

std::string HfModelDir::model_type() const {
  auto it = config_.find("model_type");
  return it != config_.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<std::string> HfModelDir::tensor_names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, t] : index_) out.push_back(name);
  return out;
}

const Tensor* HfModelDir::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const Tensor& HfModelDir::at(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  throw Error("no tensor '" + std::string(name) + "' in model directory '" + dir_ + "' (" + std::to_string(index_.size()) + " tensors)");
}

std::string HfModelDir::embedding_name() const {
  std::string type = model_type();
  for (const auto& a : kEmbeddingByArch)
    if (type == a.model_type)
      for (const char* n : a.names)
        if (find(n)) return n;
  for (const char* suf : kEmbeddingSuffixes)
    for (const auto& [name, t] : index_)
      if (ends_with(name, suf)) return name;
  throw Error("model directory '" + dir_ + "' (model_type '" + type + "'): no token embedding found; name the tensor explicitly");
}

std::optional<std::string> HfModelDir::tokenizer_path() const {
  fs::path p = fs::path(dir_) / "tokenizer.json";
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) return p.string();
  return std::nullopt;
}

std::string detect_format(std::span<const std::byte> head) {
  const auto* p = reinterpret_cast<const unsigned char*>(head.data());
  size_t n = head.size();
  if (n >= 6 && std::memcmp(p, "\x93NUMPY", 6) == 0) return "npy";
  if (n >= 9) {
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= uint64_t(p[i]) << (8 * i);
    if (len >= 2 && len <= 100'000'000ull && p[8] == '{') return "safetensors";
  }
  if (n >= 262 && std::memcmp(p + 257, "ustar", 5) == 0) return "tar";
  // Compressed streams are only ever tar archives here (libarchive reads the filter and checks).
  if (n >= 3 && p[0] == 0x1F && p[1] == 0x8B && p[2] == 0x08) return "tar";                  // gzip
  if (n >= 6 && std::memcmp(p, "\xFD" "7zXZ\x00", 6) == 0) return "tar";                    // xz
  if (n >= 4 && std::memcmp(p, "\x28\xB5\x2F\xFD", 4) == 0) return "tar";                  // zstd
  size_t i = 0;
  if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) i = 3;  // UTF-8 BOM
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) ++i;
  if (i < n && (p[i] == '[' || p[i] == '{')) return "json";
  return "";
}

Tensor load_tensor(const std::string& path, const std::string& name) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    HfModelDir m = HfModelDir::open(path);
    return m.at(name.empty() ? m.embedding_name() : name);  // the copy keeps the shard's mapping alive
  }
  auto f = MappedFile::open(path);
  std::string fmt = detect_format(f->bytes().first(std::min<size_t>(f->bytes().size(), 512)));
  if (fmt == "npy") {
    try {
      return parse_npy(f->bytes(), f, name.empty() ? fs::path(path).stem().string() : name);  // w.npy -> "w"
    } catch (const FormatError& e) {
      throw FormatError("'" + path + "': " + e.what());
    }
  }
  if (fmt == "safetensors") {
    SafetensorsFile s = SafetensorsFile::open(path);
    if (!name.empty()) return s.at(name);
    if (s.tensors().size() == 1) return s.tensors().front();
    std::string names;
    for (size_t i = 0; i < s.tensors().size() && i < 10; ++i) names += (i ? ", " : "") + s.tensors()[i].name;
    if (s.tensors().size() > 10) names += ", ...";
    throw Error("'" + path + "' holds " + std::to_string(s.tensors().size()) + " tensors; pick one with --tensor (" + names + ")");
  }
  throw FormatError("'" + path + "' is neither .npy, .safetensors nor a model directory" + (fmt.empty() ? "" : " (looks like " + fmt + ")"));
}

}  // namespace tsm
