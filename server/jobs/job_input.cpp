#include "jobs/job_input.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/tensor_pattern.h"
#include "formats/hf_model_dir.h"
#include "formats/mapped_file.h"
#include "formats/npy.h"
#include "formats/safetensors.h"

namespace tsm::server {

int64_t TensorInfo::rows() const { return shape.size() >= 2 ? shape[0] : 1; }
int64_t TensorInfo::cols() const {
  if (shape.empty()) return 1;
  if (shape.size() == 1) return shape[0];
  int64_t c = 1;
  for (size_t i = 1; i < shape.size(); ++i) c *= shape[i];
  return c;
}

std::vector<TensorInfo> upload_tensors(const UploadRecord& u) {
  std::vector<TensorInfo> out;
  auto j = nlohmann::json::parse(u.tensors_json);
  for (const auto& t : j) {
    TensorInfo i;
    i.name = t.at("name").get<std::string>();
    i.dtype = t.at("dtype").get<std::string>();
    i.shape = t.at("shape").get<std::vector<int64_t>>();
    i.is_default = t.value("default", false);
    out.push_back(std::move(i));
  }
  return out;
}

std::vector<TensorInfo> select_tensors(const UploadRecord& u, const std::vector<std::string>& selectors) {
  auto all = upload_tensors(u);
  // Names and patterns quoted in messages are cut to a readable length (either may be huge).
  auto cut = [](const std::string& s) { return s.size() <= 120 ? s : s.substr(0, 120) + "..."; };
  auto listing = [&] {
    std::string s;
    for (size_t i = 0; i < all.size() && i < 8; ++i) s += (i ? ", " : "") + cut(all[i].name);
    if (all.size() > 8) s += ", ... (" + std::to_string(all.size()) + " in all)";
    return s;
  };
  std::vector<TensorInfo> out;
  if (selectors.empty()) {
    if (all.size() == 1) return all;
    for (const auto& t : all)
      if (t.is_default) return {t};
    throw ParamError("tensors", "upload " + u.id + " holds " + std::to_string(all.size()) +
                                    " tensors; name the ones to compress (" + listing() + ")");
  }
  for (const auto& sel : selectors) {
    size_t before = out.size();
    for (const auto& t : all)
      if (t.name == sel) out.push_back(t);
    if (out.size() == before) {
      const TensorPattern re(sel, TensorPattern::Anchor::kFull);
      for (const auto& t : all)
        if (re.matches(t.name)) out.push_back(t);
    }
    if (out.size() == before)
      throw ParamError("tensors", "'" + cut(sel) + "' matches no tensor of upload " + u.id + " (" + listing() + ")");
  }
  // one entry per tensor, in upload order
  std::vector<TensorInfo> uniq;
  for (const auto& t : all)
    for (const auto& o : out)
      if (o.name == t.name) {
        uniq.push_back(t);
        break;
      }
  return uniq;
}

std::string whole_model_regex(const UploadRecord& u, const std::vector<std::string>& tensors) {
  std::string re;
  for (const auto& t : tensors) re += (re.empty() ? "" : "|") + t;
  if (!re.empty()) return re;
  for (const auto& t : upload_tensors(u))
    if (t.is_default) return "^" + TensorPattern::quote(t.name) + "$";
  throw ParamError("tensors", "upload " + u.id + " has no token embedding; name the tensors to compress (regex)");
}

std::vector<Tensor> load_tensors(const UploadRecord& u, const std::string& blob_path, const std::string& model_dir,
                                 const std::vector<TensorInfo>& which) {
  std::vector<Tensor> out;
  if (u.format == "npy" || u.format == "json") {
    out.push_back(read_npy(blob_path));
    out.back().name = which.at(0).name;
  } else if (u.format == "safetensors") {
    auto f = SafetensorsFile::open(blob_path);
    for (const auto& w : which) out.push_back(f.at(w.name));
  } else if (u.format == "tar") {
    auto m = HfModelDir::open(model_dir);
    for (const auto& w : which) out.push_back(m.at(w.name));
  } else if (u.format == "raw") {
    auto f = MappedFile::open(blob_path);
    const auto& w = which.at(0);
    Tensor t;
    t.name = w.name;
    t.dtype = parse_dtype(w.dtype);
    t.shape = w.shape;
    t.bytes = f->bytes();
    t.owner = f;
    if (static_cast<int64_t>(t.bytes.size()) != shape_numel(t.shape) * static_cast<int64_t>(dtype_size(t.dtype)))
      throw FormatError("raw upload " + u.id + " does not match its shape");
    out.push_back(std::move(t));
  } else {
    throw Error("upload " + u.id + " has unknown format '" + u.format + "'");
  }
  return out;
}

}  // namespace tsm::server
