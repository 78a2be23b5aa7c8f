// Offline commands of the `tensorslm` CLI: compress, decompress, inspect, export, methods.
// They work on local files only (no server) through the same core calls the server's job runner
// uses: load_tensor -> build_artifact -> write_artifact, read_artifact -> decode_tensor. Every read
// checks the artifact's content hash (a mismatch is one "error:" line and exit 1).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/thread_count.h"
#include "cli/cli_args.h"
#include "common/number_text.h"
#include "cli/command_registry.h"
#include "formats/array_pack.h"
#include "pipeline/artifact_builder.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "pipeline/metrics_json.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/hf_model_dir.h"
#include "formats/npy.h"
#include "formats/safetensors.h"

namespace tsm::cli {
namespace {

namespace fs = std::filesystem;

// ---- parameter parsing ------------------------------------------------------------------------

/// "8,8,12" or "8x8x12" -> [8, 8, 12]; throws naming the option.
json int_list(const std::string& opt, const std::string& text) {
  json out = json::array();
  std::string tok;
  std::string s = text + ",";
  for (char c : s) {
    if (c == ',' || c == 'x' || c == 'X') {
      if (tok.empty()) throw ParamError(opt, "'" + text + "' is not a comma-separated list of positive integers");
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != tok.size() || v < 1) throw ParamError(opt, "'" + text + "' is not a comma-separated list of positive integers");
      out.push_back(v);
      tok.clear();
    } else if (c != ' ') {
      tok += c;
    }
  }
  return out;
}

// ---- text tables ------------------------------------------------------------------------------


std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return number_text("%.2f GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (uint64_t{1} << 20)) return number_text("%.2f MiB", static_cast<double>(b) / (1 << 20));
  if (b >= (uint64_t{1} << 10)) return number_text("%.1f KiB", static_cast<double>(b) / (1 << 10));
  return std::to_string(b) + " B";
}

std::string compact(const std::string& params_json, size_t max = 40) {
  std::string s = params_json;
  json j = json::parse(s, nullptr, false);
  if (!j.is_discarded()) s = j.dump();
  if (s == "{}" || s == "null") s = "";
  return s.size() > max ? s.substr(0, max - 3) + "..." : s;
}

/// Aligned columns; the first `left` columns are left-aligned, the rest (numbers) right-aligned.
void print_table(std::ostream& os, const std::vector<std::vector<std::string>>& rows, size_t left = 2) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (size_t k = 0; k < rows.size(); ++k) {
    std::string line = "  ";
    for (size_t i = 0; i < rows[k].size(); ++i) {
      const std::string& c = rows[k][i];
      std::string pad(w[i] - c.size(), ' ');
      line += (i < left ? c + pad : pad + c) + (i + 1 < rows[k].size() ? "  " : "");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
    if (k == 0) os << "  " << std::string(line.size() - 2, '-') << "\n";
  }
}

std::vector<std::string> metrics_row(const std::string& method, const std::string& params, const v1::Metrics& m) {
  return {method,
          params,
          std::to_string(m.stored_bytes()),
          number_text("%.2fx", m.ratio_f32()),
          number_text("%.4g", m.rel_error()),
          number_text("%.5f", m.cos_mean()),
          number_text("%.5f", m.cos_p01()),
          number_text("%.5f", m.cos_min()),
          number_text("%.4g", m.max_abs_error())};
}

/// The result and its baselines side by side, plus a plain-words note when a baseline is at least as
/// small with a lower weight error; weight error does not rank methods by model quality (svd can beat
/// tt-token on it and lose in KL), so the note points to the model-level comparison.
void print_comparison(std::ostream& os, const v1::CompressedTensor& t) {
  std::vector<std::vector<std::string>> rows{{"method", "params", "bytes", "ratio", "rel_error", "cos_mean", "cos_p01", "cos_min", "max_abs"}};
  rows.push_back(metrics_row(t.method() + " *", compact(t.params_json(), 60), t.metrics()));
  for (const auto& b : t.baselines()) rows.push_back(metrics_row(b.method(), compact(b.params_json(), 60), b.metrics()));
  print_table(os, rows);
  os << "  (* this result; ratio is against dense f32; baselines at their own or the nearest size)\n";
  // "At equal size" allows 1% slack: fp16 is rarely byte-exactly the size of the result.
  const auto& tm = t.metrics();
  for (const auto& b : t.baselines()) {
    const auto& bm = b.metrics();
    if (static_cast<double>(bm.stored_bytes()) <= 1.01 * static_cast<double>(tm.stored_bytes()) && bm.rel_error() < tm.rel_error())
      os << "  note: " << b.method() << " at " << bm.stored_bytes() << " bytes (this result: " << tm.stored_bytes()
         << ") has a lower weight error: rel_error " << number_text("%.4g", bm.rel_error()) << " < " << number_text("%.4g", tm.rel_error()) << "\n";
  }
  os << "  (weight error is not model quality: `tensorslm eval MODEL_DIR --artifact OUT.tsm --compare` judges by KL)\n";
  if (tm.ratio_f32() < 1.0)
    os << "  warning: " << tm.stored_bytes() << " bytes is larger than the dense f32 tensor (" << tm.dense_f32_bytes() << ")\n";
  else if (tm.ratio_f32() < 2.0)
    os << "  warning: " << tm.stored_bytes() << " bytes is larger than fp16 of this tensor (" << tm.dense_f32_bytes() / 2 << ")\n";
}

std::string shape_text(const google::protobuf::RepeatedField<uint64_t>& s) {
  std::string out = "[";
  for (int i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// "verified (content sha256 ...)" or "unverified (...)": what the reader found (artifact_io.h).
std::string integrity_text(const ArtifactIntegrity& in) {
  if (in.state == ArtifactIntegrity::State::kUnverified)
    return "unverified (written before artifacts carried a content hash)";
  return std::string(integrity_name(in.state)) + " (content sha256 " + in.content_sha256 + ")";
}

void print_artifact(std::ostream& os, const v1::Artifact& a, const std::string& path, uint64_t file_bytes, const std::string& sha,
                    const ArtifactIntegrity& integrity) {
  os << "artifact     " << path << " (" << human_bytes(file_bytes) << ", sha256 " << sha << ")\n";
  os << "format       " << a.format_version() << ", written by " << a.generator();
  if (a.created_unix()) os << " at unix " << a.created_unix();  // artifacts before deterministic ones
  os << "\n";
  os << "integrity    " << integrity_text(integrity) << "\n";
  os << "source       sha256 " << a.source_sha256() << "\n";
  os << "method       " << a.method() << " " << compact(a.params_json(), 200) << "\n";
  os << "tensors      " << a.tensors_size() << " compressed, " << a.passthrough_size() << " passthrough";
  uint64_t pbytes = 0;
  for (const auto& p : a.passthrough()) pbytes += p.data().size();
  if (a.passthrough_size()) os << " (" << human_bytes(pbytes) << ")";
  os << (a.config_json().empty() ? "" : ", config.json") << (a.tokenizer_json().empty() ? "" : ", tokenizer.json") << "\n";
  for (const auto& t : a.tensors()) {
    std::string sd = t.source_dtype() == v1::DTYPE_UNSPECIFIED ? "?" : std::string(dtype_name(from_proto(t.source_dtype())));
    os << "\n" << t.name() << "  " << shape_text(t.shape()) << " " << sd << "  method " << t.method() << "  params "
       << compact(t.params_json(), 200) << "\n";
    std::vector<std::vector<std::string>> arrays{{"array", "dtype", "shape", "bytes"}};
    for (const auto& arr : t.arrays())
      arrays.push_back({arr.name(), std::string(dtype_name(from_proto(arr.dtype()))), shape_text(arr.shape()), std::to_string(arr.data().size())});
    print_table(os, arrays, 3);
    os << "\n";
    print_comparison(os, t);
  }
  const auto& m = a.total();
  os << "\ntotal        " << m.stored_bytes() << " bytes stored for " << m.dense_f32_bytes() << " dense f32 bytes: ratio "
     << number_text("%.3fx", m.ratio_f32()) << " (vs source dtype " << number_text("%.3fx", m.ratio_source()) << "), rel_error "
     << number_text("%.4g", m.rel_error()) << ", cos_mean " << number_text("%.5f", m.cos_mean());
  if (m.seconds() > 0) os << ", " << number_text("%.2f", m.seconds()) << " s";  // artifacts before deterministic ones
  os << "\n";
  if (a.has_quality()) {
    const auto& q = a.quality();
    os << "quality      ppl " << number_text("%.3f", q.ppl_dense()) << " -> " << number_text("%.3f", q.ppl_compressed()) << ", KL "
       << number_text("%.4g", q.kl_mean()) << " nats, top-1 agreement " << number_text("%.4f", q.top1_agreement()) << " over " << q.tokens()
       << " tokens\n";
  }
}

uint64_t file_size_of(const std::string& p) { return static_cast<uint64_t>(fs::file_size(p)); }

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// ---- commands ---------------------------------------------------------------------------------

struct CompressArgs {
  std::string input, tensor, method = std::string(default_method(DefaultFor::kEmbedding).name()), shape, ranks, core_dtype, output;
  std::optional<double> eps, ratio;
  std::vector<std::string> kv;
  bool json_out = false, no_baselines = false;
  int threads = 0;
};

void run_compress(const CompressArgs& a) {
  const Codec& codec = find_codec(a.method);  // unknown method: fail before reading anything
  json params = json::object();
  add_params(params, a.kv);
  auto set = [&](const char* key, json v) {
    if (params.contains(key)) throw ParamError(key, "given both as an option and as --param");
    params[key] = std::move(v);
  };
  if (!a.shape.empty()) set("shape", a.shape == "auto" ? json("auto") : int_list("--shape", a.shape));
  if (!a.ranks.empty()) set("ranks", int_list("--ranks", a.ranks));
  if (a.eps) set("eps", *a.eps);
  if (a.ratio) set("ratio", *a.ratio);
  if (int(!a.ranks.empty()) + int(a.eps.has_value()) + int(a.ratio.has_value()) > 1)
    throw ParamError("--ranks/--eps/--ratio", "give only one of them");
  if (!a.core_dtype.empty()) set("core_dtype", a.core_dtype);

  Tensor t = load_tensor(a.input, a.tensor);
  if (t.shape.size() > 2 || t.shape.empty())
    throw Error("tensor '" + t.name + "' has shape " + shape_str(t.shape) + "; compress takes a matrix (2-D) or a vector");
  if (!is_float(t.dtype)) throw Error("tensor '" + t.name + "' has dtype " + std::string(dtype_name(t.dtype)) + "; compress takes f32, f16, bf16 or f64");
  int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1, cols = t.shape.back();
  codec.resolve(params, rows, cols);  // parameter errors before the (possibly long) hashing and encoding

  CodecContext ctx;
  ctx.threads = a.threads > 0 ? a.threads : default_thread_count();
  bool tty = !a.json_out && ::isatty(2);
  int last = -1;
  if (tty)
    ctx.progress = [&last](double p) {
      int pct = static_cast<int>(p * 100);
      if (pct != last) {
        last = pct;
        std::fprintf(stderr, "\rcompressing %3d%%", pct);
        std::fflush(stderr);
      }
    };
  std::string sha = source_sha256(a.input);
  CompressOptions opt;
  opt.baselines = !a.no_baselines;
  std::vector<Tensor> one{t};
  BuildTimings times;  // the artifact holds no wall time, so the same input and options give the same bytes
  v1::Artifact art = build_artifact(one, sha, a.method, params, ctx, opt, &times);
  if (tty) std::fprintf(stderr, "\r                \r");
  std::string art_sha = write_artifact(a.output, art);
  const v1::CompressedTensor& ct = art.tensors(0);
  v1::Metrics m = ct.metrics();
  m.set_seconds(times.total_seconds());

  if (a.json_out) {
    json baselines = json::array();
    for (const auto& b : ct.baselines()) baselines.push_back(baseline_to_json(b));
    json j = {{"output", a.output},
              {"sha256", art_sha},
              {"artifact_bytes", file_size_of(a.output)},
              {"input", a.input},
              {"tensor", ct.name()},
              {"shape", {rows, cols}},
              {"source_dtype", std::string(dtype_name(t.dtype))},
              {"method", ct.method()},
              {"params", json::parse(ct.params_json())},
              {"bytes", m.stored_bytes()},
              {"dense_f32_bytes", m.dense_f32_bytes()},
              {"ratio", m.ratio_f32()},
              {"ratio_source", m.ratio_source()},
              {"rel_error", m.rel_error()},
              {"cos_mean", m.cos_mean()},
              {"cos_min", m.cos_min()},
              {"cos_p01", m.cos_p01()},
              {"max_abs_error", m.max_abs_error()},
              {"seconds", m.seconds()},
              {"baselines", baselines},
              {"metrics", metrics_to_json(m)}};
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << "compressed " << ct.name() << " " << shape_text(ct.shape()) << " " << dtype_name(t.dtype) << " with " << ct.method()
            << " in " << number_text("%.2f", m.seconds()) << " s\n";
  std::cout << "wrote " << a.output << " (" << human_bytes(file_size_of(a.output)) << ", sha256 " << art_sha << ")\n\n";
  print_comparison(std::cout, ct);
}

void run_decompress(const std::string& in, const std::string& out, const std::string& tensor) {
  bool npy = ends_with(out, ".npy"), st = ends_with(out, ".safetensors");
  if (!npy && !st) throw Error("output '" + out + "' must end in .npy or .safetensors");
  v1::Artifact a = read_artifact(in);
  std::vector<const v1::CompressedTensor*> chosen;
  for (const auto& t : a.tensors())
    if (tensor.empty() || t.name() == tensor) chosen.push_back(&t);
  const v1::Array* pass = nullptr;
  if (!tensor.empty() && chosen.empty()) {
    for (const auto& p : a.passthrough())
      if (p.name() == tensor) pass = &p;
    if (!pass) {
      std::string names;
      for (const auto& t : a.tensors()) names += (names.empty() ? "" : ", ") + t.name();
      throw Error("artifact '" + in + "' has no tensor '" + tensor + "' (compressed: " + names + ")");
    }
  }
  if (npy && chosen.size() + (pass ? 1 : 0) != 1)
    throw Error("artifact '" + in + "' holds " + std::to_string(a.tensors_size()) + " tensors; pick one with --tensor for .npy output");

  std::vector<Tensor> outs;
  for (const auto* t : chosen) outs.push_back(Tensor::from_matrix(t->name(), decode_tensor(*t)));
  auto raw_tensor = [](const v1::Array& p) {
    std::vector<std::byte> b(p.data().size());
    std::memcpy(b.data(), p.data().data(), b.size());
    return Tensor::from_bytes(p.name(), from_proto(p.dtype()), array_shape(p), std::move(b));
  };
  if (pass) outs.push_back(raw_tensor(*pass));
  if (st && tensor.empty())
    for (const auto& p : a.passthrough()) outs.push_back(raw_tensor(p));
  if (npy) write_npy(out, outs.front());
  else write_safetensors(out, outs, {{"format", "pt"}, {"tensorslm.source", in}});
  for (const auto& t : outs) std::cout << "wrote " << t.name << " " << shape_str(t.shape) << " " << dtype_name(t.dtype) << "\n";
  std::cout << "to " << out << "\n";
}

void run_inspect(const std::string& path, bool json_out) {
  ArtifactIntegrity integrity;
  v1::Artifact a = read_artifact(path, ContentCheck::kVerify, &integrity);
  std::string sha = sha256_file(path);
  uint64_t bytes = file_size_of(path);
  if (json_out) {
    json j = artifact_report_json(a);
    if (a.created_unix() == 0) j.erase("created_unix");  // not part of deterministic artifacts
    j["file"] = path;
    j["file_bytes"] = bytes;
    j["sha256"] = sha;
    j["integrity"] = {{"state", integrity_name(integrity.state)}};
    if (!integrity.content_sha256.empty()) j["integrity"]["content_sha256"] = integrity.content_sha256;
    std::cout << j.dump() << "\n";
    return;
  }
  print_artifact(std::cout, a, path, bytes, sha, integrity);
}

void run_export(const std::string& in, const std::string& out) {
  v1::Artifact a = read_artifact(in);
  write_file_atomic(out, artifact_to_safetensors(a));
  std::cout << "wrote " << out << " (" << human_bytes(file_size_of(out)) << "): " << a.tensors_size() << " compressed tensors as "
            << "<tensor>/<array>, " << a.passthrough_size() << " passthrough; metadata key tensorslm.tensor.<name> describes each\n";
}

void run_methods(bool json_out) {
  json list = json::array();
  for (const Codec* c : all_codecs())
    list.push_back({{"name", std::string(c->name())}, {"summary", std::string(c->summary())}, {"params", c->param_schema()}});
  if (json_out) {
    std::cout << list.dump() << "\n";
    return;
  }
  for (const auto& m : list) {
    std::cout << m["name"].get<std::string>() << "\n  " << m["summary"].get<std::string>() << "\n";
    const json& props = m["params"].value("properties", json::object());
    std::vector<std::vector<std::string>> rows{{"param", "type", "default / description"}};
    for (auto it = props.begin(); it != props.end(); ++it) {
      const json& p = it.value();
      std::string type = p.contains("type") ? (p["type"].is_string() ? p["type"].get<std::string>() : p["type"].dump())
                                            : (p.contains("oneOf") || p.contains("anyOf") ? "one of" : "");
      if (p.contains("enum")) type = p["enum"].dump();
      std::string desc = p.value("description", "");
      if (p.contains("default")) desc = "default " + p["default"].dump() + (desc.empty() ? "" : "; " + desc);
      rows.push_back({it.key(), type, desc});
    }
    if (rows.size() > 1) print_table(std::cout, rows, 3);
    std::cout << "\n";
  }
}

void add_offline_commands(CLI::App& app) {
  auto c = std::make_shared<CompressArgs>();
  auto* cmd = app.add_subcommand("compress", "compress one tensor of a .npy, .safetensors or HF model directory into a .tsm artifact");
  cmd->add_option("input", c->input, ".npy, .safetensors or a Hugging Face model directory")->required();
  cmd->add_option("--tensor", c->tensor, "tensor name (default: the only tensor, or a model's token embedding)");
  cmd->add_option("--method", c->method, "compression method (see `tensorslm methods`)")->capture_default_str();
  cmd->add_option("--shape", c->shape, "tensor-train mode shape of a row, e.g. 8,8,12, or auto");
  // Exclusions and ranges are checked in run_compress / the codec, so a mistake is one "error:" line.
  cmd->add_option("--ranks", c->ranks, "fixed TT ranks r_1..r_{m-1}, e.g. 4,4");
  cmd->add_option("--eps", c->eps, "relative error tolerance per row (TT-SVD)");
  cmd->add_option("--ratio", c->ratio, "global compression ratio vs dense f32 (budgeted per-row ranks)");
  cmd->add_option("--core-dtype", c->core_dtype, "storage dtype of the cores: f32, f16, bf16 or int8");
  cmd->add_option("--param", c->kv, "extra method parameter key=value (value read as JSON when it parses)");
  cmd->add_option("-o,--output", c->output, "output artifact (.tsm)")->required();
  cmd->add_option("--threads", c->threads, "worker threads (default: all cores)");
  cmd->add_flag("--no-baselines", c->no_baselines, "skip the fp16/int8/q4_0/svd baselines");
  cmd->add_flag("--json", c->json_out, "print one JSON object instead of a table");
  cmd->callback([c] { run_compress(*c); });

  auto d = std::make_shared<std::array<std::string, 3>>();
  auto* dec = app.add_subcommand("decompress", "decode an artifact back to a dense .npy or .safetensors file");
  dec->add_option("artifact", (*d)[0], ".tsm artifact")->required();
  dec->add_option("-o,--output", (*d)[1], "OUT.npy (one tensor) or OUT.safetensors (all, with passthrough)")->required();
  dec->add_option("--tensor", (*d)[2], "tensor name (required for .npy when the artifact holds several)");
  dec->callback([d] { run_decompress((*d)[0], (*d)[1], (*d)[2]); });

  auto i = std::make_shared<std::pair<std::string, bool>>("", false);
  auto* ins = app.add_subcommand("inspect", "describe an artifact: tensors, arrays, bytes, metrics and baselines side by side");
  ins->add_option("artifact", i->first, ".tsm artifact")->required();
  ins->add_flag("--json", i->second, "print one JSON object");
  ins->callback([i] { run_inspect(i->first, i->second); });

  auto e = std::make_shared<std::pair<std::string, std::string>>();
  auto* exp = app.add_subcommand("export", "write an artifact's arrays as safetensors (cores as <tensor>/<array>) for Python");
  exp->add_option("artifact", e->first, ".tsm artifact")->required();
  exp->add_option("-o,--output", e->second, "OUT.safetensors")->required();
  exp->callback([e] { run_export(e->first, e->second); });

  auto m = std::make_shared<bool>(false);
  auto* met = app.add_subcommand("methods", "list the compression methods and their parameters");
  met->add_flag("--json", *m, "print JSON (name, summary, params schema)");
  met->callback([m] { run_methods(*m); });
}

}  // namespace

static RegisterCommands reg{10, add_offline_commands};

}  // namespace tsm::cli
