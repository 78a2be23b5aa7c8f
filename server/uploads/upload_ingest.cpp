#include "uploads/upload_ingest.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/hf_model_dir.h"
#include "formats/json_matrix.h"
#include "formats/mapped_file.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "common/json_text.h"
#include "http/problem.h"
#include "pipeline/config_check.h"
#include "spec/job_spec.h"

namespace fs = std::filesystem;

namespace tsm::server {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxJsonValues = 16u << 20;  // 64 MiB of f32: past this, .npy is the format

/// Content that is not what it claims, already said in full (the final catch does not re-word it).
class Rejected : public FormatError {
 public:
  using FormatError::FormatError;
};

using Details = std::vector<Error::Detail>;

[[noreturn]] void reject(const std::string& detail, const Details& details = {}) {
  Rejected e(detail);
  for (const auto& [k, v] : details) e.add_detail(k, v);
  throw e;
}

/// 422 naming the tensor and the first non-finite element when `nf` found any.
void reject_nonfinite(const NonFinite& nf, const std::string& name, const std::vector<int64_t>& shape) {
  if (nf.count() == 0) return;
  const int64_t n = shape_numel(shape), cols = shape.size() >= 2 ? n / shape[0] : n;
  reject("tensor '" + name + "' holds " + std::to_string(nf.nan) + " NaN and " + std::to_string(nf.inf) +
             " Inf values (first at element " + std::to_string(nf.first) + " = row " + std::to_string(nf.first / cols) +
             ", col " + std::to_string(nf.first % cols) + "); clean the input before compressing",
         {{"tensor", name}, {"nan", int64_t(nf.nan)}, {"inf", int64_t(nf.inf)}, {"first_index", int64_t(nf.first)}});
}

void check_finite(const Tensor& t) {
  NonFinite nf;
  scan_nonfinite(t.dtype, t.bytes.data(), static_cast<size_t>(t.numel()), 0, nf);
  reject_nonfinite(nf, t.name, t.shape);
}

/// NaN/Inf scan of the elements of `dtype` and `shape` at `offset` of a file, read in 4 MiB chunks
/// with pread (no mapping, so resident memory stays flat however large the upload).
void check_finite_file(const std::string& path, uint64_t offset, DType dtype, const std::vector<int64_t>& shape,
                       const std::string& name) {
  if (!is_float(dtype)) return;
  const size_t es = dtype_size(dtype);
  const uint64_t n = static_cast<uint64_t>(shape_numel(shape));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw StorageError("cannot read " + path + ": " + std::strerror(errno));
  std::vector<char> raw((4u << 20) / es * es);  // (chunk elements * es) bytes
  NonFinite nf;
  for (uint64_t i = 0; i < n;) {
    size_t m = static_cast<size_t>(std::min<uint64_t>(raw.size() / es, n - i));
    ssize_t got = ::pread(fd, raw.data(), m * es, static_cast<off_t>(offset + i * es));
    if (got != static_cast<ssize_t>(m * es)) {
      ::close(fd);
      throw FormatError("data ends early", static_cast<int64_t>(offset + i * es));
    }
    scan_nonfinite(dtype, raw.data(), m, i, nf);
    i += m;
  }
  ::close(fd);
  reject_nonfinite(nf, name, shape);
}

json tensor_entry(const Tensor& t, bool is_default = false) {
  json j = {{"name", t.name}, {"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}};
  if (is_default) j["default"] = true;
  return j;
}

std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string part = s.substr(i, j - i);
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v <= 0)
      throw OptionError("shape", "shape: '" + s + "' is not a comma-separated list of positive sizes");
    out.push_back(v);
    i = j + 1;
  }
  if (out.empty()) throw OptionError("shape", "shape: required for raw uploads");
  return out;
}

/// A relative path of safe components, or "" when the entry must be rejected.
std::string safe_entry_path(std::string p) {
  while (p.rfind("./", 0) == 0) p = p.substr(2);
  if (p.empty() || p.front() == '/') return "";
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string c = p.substr(i, j - i);
    if (!c.empty()) {
      if (c == "." ) { i = j + 1; continue; }
      if (!is_safe_name(c)) return "";
      out += (out.empty() ? "" : "/") + c;
    }
    i = j + 1;
  }
  return out;
}

[[noreturn]] void too_large(const std::string& detail, const char* limit, const json& max, uint64_t extracted,
                            const std::string& entry = "") {
  json extra = {{"limit", limit}, {"max", max}, {"extracted_bytes", extracted}};
  if (!entry.empty()) extra["entry"] = entry;
  throw HttpError(http::status::payload_too_large, detail + " (config " + limit + ")", extra);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Writes all of buf; a full disk is a 507 (the caller's temp directory is removed on the way out).
void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
      throw StorageFull("the disk is full: the tar upload cannot be extracted; nothing was kept");
    if (w <= 0) throw StorageError("cannot write " + path + ": " + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

/// libarchive's message for the last error of `a`; it may have none (NULL), which fuzzing found.
std::string archive_error(struct archive* a) {
  const char* m = archive_error_string(a);
  return m ? m : "unreadable data (libarchive gave no reason)";
}

/// Extracts regular files of a tar (optionally compressed) into `dir`, within `lim` (413 past any bound,
/// checked before a member is written when its header states its size, and as its data streams).
/// Links, devices, sparse files and unsafe paths are refused (422).
void extract_tar(const std::string& tar, const std::string& dir, const TarLimits& lim) {
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_filter_all(a);
  std::unique_ptr<struct archive, decltype(&archive_read_free)> guard(a, archive_read_free);
  if (archive_read_open_filename(a, tar.c_str(), kTarReadBlock) != ARCHIVE_OK)
    reject("not a readable tar: " + archive_error(a));
  // Bytes read from the upload (compressed) and bytes of tar stream decompressed from them.
  auto compressed = [a] { return static_cast<uint64_t>(std::max<la_int64_t>(0, archive_filter_bytes(a, -1))); };
  auto expanded = [a] { return static_cast<uint64_t>(std::max<la_int64_t>(0, archive_filter_bytes(a, 0))); };
  uint64_t total = 0, members = 0;
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%g", lim.max_ratio);
  const std::string ratio_msg = std::string("the tar expands more than ") + ratio + " times its compressed size";
  auto check_ratio = [&](uint64_t out, uint64_t in, const std::string& entry) {
    if (static_cast<double>(out) > lim.max_ratio * static_cast<double>(in + kTarReadBlock))
      too_large(entry.empty() ? ratio_msg : ratio_msg + " in entry '" + entry + "'", "tar_max_ratio", lim.max_ratio, total, entry);
  };
  struct archive_entry* e;
  int rc;
  std::vector<char> buf(1 << 20);
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    std::string raw = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    if (++members > lim.max_members)
      too_large("the tar has more than " + std::to_string(lim.max_members) + " entries", "tar_max_members", lim.max_members, total);
    check_ratio(std::max(total, expanded()), compressed(), "");  // headers and padding count too
    auto type = archive_entry_filetype(e);
    if (type == AE_IFDIR) continue;
    if (type != AE_IFREG || archive_entry_hardlink(e))
      reject("tar entry '" + raw + "' is not a regular file (links and devices are refused)", {{"entry", raw}});
    if (archive_entry_sparse_count(e) > 0)
      reject("tar entry '" + raw + "' is a sparse file (refused: send regular files)", {{"entry", raw}});
    std::string rel = safe_entry_path(raw);
    if (rel.empty()) reject("tar entry '" + raw + "' has an unsafe path (absolute, '..' or odd characters)", {{"entry", raw}});
    if (archive_entry_size_is_set(e)) {  // refused before a byte of it is written
      const uint64_t declared = static_cast<uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e)));
      if (declared > lim.max_member_bytes)
        too_large("tar entry '" + raw + "' holds " + std::to_string(declared) + " bytes, more than the " +
                      std::to_string(lim.max_member_bytes) + " one member may",
                  "tar_max_member_bytes", lim.max_member_bytes, total, raw);
      if (declared > lim.max_extracted_bytes - std::min(total, lim.max_extracted_bytes))
        too_large("the tar's entries hold more than the " + std::to_string(lim.max_extracted_bytes) + " bytes one upload may extract",
                  "tar_max_extracted_bytes", lim.max_extracted_bytes, total, raw);
    }
    fs::path out = fs::path(dir) / rel;
    fs::create_directories(out.parent_path());
    Fd fd{::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (fd.fd < 0 && (errno == ENOSPC || errno == EDQUOT))
      throw StorageFull("the disk is full: the tar upload cannot be extracted; nothing was kept");
    if (fd.fd < 0) reject("tar entry '" + raw + "' appears twice or cannot be written", {{"entry", raw}});
    uint64_t member = 0;
    const uint64_t member_start = compressed();
    la_ssize_t n;
    while ((n = archive_read_data(a, buf.data(), buf.size())) > 0) {
      member += static_cast<uint64_t>(n);
      total += static_cast<uint64_t>(n);
      if (member > lim.max_member_bytes)
        too_large("tar entry '" + raw + "' holds more than the " + std::to_string(lim.max_member_bytes) + " bytes one member may",
                  "tar_max_member_bytes", lim.max_member_bytes, total, raw);
      if (total > lim.max_extracted_bytes)
        too_large("the tar's entries hold more than the " + std::to_string(lim.max_extracted_bytes) + " bytes one upload may extract",
                  "tar_max_extracted_bytes", lim.max_extracted_bytes, total, raw);
      check_ratio(member, compressed() - std::min(member_start, compressed()), raw);
      check_ratio(total, compressed(), "");
      write_all(fd.fd, buf.data(), static_cast<size_t>(n), out.string());
    }
    if (n < 0) reject("tar entry '" + raw + "' is truncated: " + archive_error(a), {{"entry", raw}});
  }
  if (rc != ARCHIVE_EOF) reject("malformed tar: " + archive_error(a));
}

/// The model directory inside an extraction: the root, or its single subdirectory.
std::string model_root(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "config.json")) return dir;
  std::vector<fs::path> subs;
  for (auto& e : fs::directory_iterator(dir)) subs.push_back(e.path());
  if (subs.size() == 1 && fs::is_directory(subs[0]) && fs::exists(subs[0] / "config.json")) return subs[0].string();
  reject("the tar holds no config.json at its root or in a single top-level folder; send an HF model directory");
}

struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

std::string format_from_content_type(const std::string& ct) {
  std::string t = ct.substr(0, ct.find(';'));
  if (t == "application/x-npy" || t == "application/npy") return "npy";
  if (t == "application/x-safetensors" || t == "application/safetensors") return "safetensors";
  if (t == "application/x-tar" || t == "application/tar" || t == "application/gzip" || t == "application/x-gtar") return "tar";
  if (t == "application/json") return "json";
  return "";
}

UploadRecord ingest_upload(std::shared_ptr<BlobSink> sink, const IngestOptions& opt, BlobStore& blobs,
                           const std::string& models_dir, const std::function<void(UploadRecord&)>& commit) {
  UploadRecord u;
  u.sha256 = sink->finish(opt.durable);
  u.size_bytes = sink->bytes();
  if (u.size_bytes == 0) throw OptionError("body", "empty body: send the file as the request body");
  const std::string& head = sink->head();
  std::string detected = detect_format({reinterpret_cast<const std::byte*>(head.data()), head.size()});
  bool raw = !opt.dtype.empty() || !opt.shape.empty() || opt.declared_format == "raw";
  std::string fmt = raw ? "raw" : (opt.declared_format.empty() ? detected : opt.declared_format);
  if (!raw && !opt.declared_format.empty() && !detected.empty() && detected != opt.declared_format)
    reject("declared format '" + opt.declared_format + "' but the content is " + detected, {{"field", "format"}});
  if (fmt.empty())
    throw UnsupportedFormat(
        "unrecognised content: send .npy, .safetensors, a tar of an HF model directory, a JSON array, or "
        "raw little-endian bytes with ?dtype=f32&shape=ROWS,COLS");
  if (!opt.name.empty() && !is_safe_name(opt.name))
    throw OptionError("name", "name: '" + opt.name + "' must be 1-128 characters of [A-Za-z0-9._-]");
  u.name = opt.name.empty() ? "array" : opt.name;
  u.format = fmt;
  json tensors = json::array();
  std::string path = sink->temp_path();
  TempDir extraction;
  std::string final_dir;                // tar uploads: models_dir/<sha>
  std::string extracted_root;           // ... and the model directory inside the extraction, moved there
  bool created_model_dir = false;       // ... made by this ingest (removed again if the blob cannot be adopted)
  std::shared_ptr<BlobSink> converted;  // json uploads become an .npy blob

  try {
    if (fmt == "npy") {
      // Header from the bytes already seen; sizes against the file; data scanned in chunks.
      NpyHeader h = parse_npy_header({reinterpret_cast<const std::byte*>(head.data()), head.size()});
      if (h.shape.empty()) reject("a 0-d array cannot be compressed; send a matrix");
      const uint64_t want = h.data_offset + h.data_bytes;
      if (u.size_bytes < want)
        throw FormatError("truncated: the header promises " + std::to_string(h.data_bytes) + " data bytes (shape " +
                              shape_str(h.shape) + "), the body has " + std::to_string(u.size_bytes - std::min<uint64_t>(u.size_bytes, h.data_offset)),
                          static_cast<int64_t>(u.size_bytes));
      if (u.size_bytes > want)
        throw FormatError(std::to_string(u.size_bytes - want) + " bytes after the data that the header (shape " +
                              shape_str(h.shape) + ") does not account for",
                          static_cast<int64_t>(want));
      check_finite_file(path, h.data_offset, h.dtype, h.shape, u.name);
      tensors.push_back({{"name", u.name}, {"dtype", std::string(dtype_name(h.dtype))}, {"shape", h.shape}});
    } else if (fmt == "safetensors") {
      auto f = SafetensorsFile::open(path);
      if (f.tensors().empty()) reject("the safetensors file holds no tensors");
      for (const auto& t : f.tensors()) {
        check_finite(t);
        tensors.push_back(tensor_entry(t));
      }
    } else if (fmt == "raw") {
      if (opt.dtype.empty()) throw OptionError("dtype", "dtype: required for raw uploads (f32, f16, bf16, f64)");
      DType dt;
      try {
        dt = parse_dtype(opt.dtype);
      } catch (const Error& e) {
        throw OptionError("dtype", std::string("dtype: ") + e.what());
      }
      if (!is_float(dt)) reject("dtype: raw uploads must be floating (f32, f16, bf16, f64)", {{"field", "dtype"}});
      auto shape = parse_shape(opt.shape);
      uint64_t want = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dt);
      if (want != u.size_bytes)
        reject("raw body has " + std::to_string(u.size_bytes) + " bytes but dtype " + opt.dtype + " x shape " +
                   opt.shape + " needs " + std::to_string(want),
               {{"field", "shape"}});
      check_finite_file(path, 0, dt, shape, u.name);
      tensors.push_back({{"name", u.name}, {"dtype", std::string(dtype_name(dt))}, {"shape", shape}});
    } else if (fmt == "json") {
      if (u.size_bytes > (64u << 20)) reject("JSON arrays are for small inputs (<= 64 MiB); send .npy instead");
      JsonMatrix jm;
      try {
        jm = read_json_matrix(read_file(path), kMaxJsonValues);
      } catch (const JsonSyntaxError& e) {
        throw with_detail(OptionError("body", e.what()), "offset", e.offset());
      } catch (const FormatError& e) {
        Rejected r(e.what());
        for (const auto& [k, v] : e.details()) r.add_detail(k, v);
        throw r;
      }
      std::vector<float>& vals = jm.values;  // (rows, cols)
      const int64_t rows = jm.rows, cols = jm.cols;
      const bool nested = !jm.flat;
      Tensor t = Tensor::from_matrix(u.name, Eigen::Map<MatrixRM>(vals.data(), rows, cols));
      if (!nested) t.shape = {cols};
      check_finite(t);
      std::string bytes = npy_bytes(t);
      converted = std::make_shared<BlobSink>(blobs.tmp_dir());
      converted->write(bytes.data(), bytes.size());
      u.sha256 = converted->finish();
      u.size_bytes = bytes.size();
      path = converted->temp_path();
      tensors.push_back(tensor_entry(t));
    } else if (fmt == "tar") {
      final_dir = models_dir + "/" + u.sha256;
      // Unique per ingest: two uploads of the same bytes may extract at once.
      static std::atomic<uint64_t> seq{0};
      extraction.path = blobs.tmp_dir() + "/extract-" + u.sha256.substr(0, 16) + "-" + std::to_string(::getpid()) + "-" +
                        std::to_string(seq.fetch_add(1));
      fs::remove_all(extraction.path);
      fs::create_directories(extraction.path);
      extract_tar(path, extraction.path, opt.tar);
      std::string root = model_root(extraction.path);
      auto m = HfModelDir::open(root);
      // config.json against the weights' shapes (metadata only) before the NaN/Inf scan reads them.
      try {
        check_model_config(ModelWeights::from_parts(m, nullptr));
      } catch (const FormatError& e) {
        Rejected r(std::string("the model's ") + e.what());
        for (const auto& [k, v] : e.details()) r.add_detail(k, v);
        r.add_detail("format", std::string("tar"));
        throw r;
      }
      std::string emb;
      try {
        emb = m.embedding_name();
      } catch (const Error&) {
      }
      for (const auto& n : m.tensor_names()) {
        const Tensor& t = m.at(n);
        check_finite(t);
        tensors.push_back(tensor_entry(t, n == emb));
      }
      extracted_root = root;  // moved into place below, with the blob
    } else {
      throw with_detail(UnsupportedFormat("format '" + fmt + "' is not accepted (npy, safetensors, tar, json, raw)"), "field",
                        std::string("format"));
    }
  } catch (const Rejected&) {
    throw;  // said in full already
  } catch (const StorageError&) {
    throw;  // 507 or 500: the server's disk at fault, not the content
  } catch (const OptionError&) {
    throw;
  } catch (const UnsupportedFormat&) {
    throw;
  } catch (const Error& e) {  // a parser's error: say which format it was read as
    auto w = with_detail(FormatError(std::string("invalid ") + fmt + ": " + e.what()), "format", fmt);
    if (const auto* f = dynamic_cast<const FormatError*>(&e); f && f->offset() >= 0) w.add_detail("offset", f->offset());
    for (const auto& [k, v] : e.details())
      if (k != "format" && k != "offset") w.add_detail(k, v);
    throw w;
  }
  u.tensors_json = dump_json(tensors);
  u.created_unix = static_cast<int64_t>(std::time(nullptr));
  // From the model directory's move to the row's insert the blob gains a reference: under the refs
  // lock, so that a DELETE of the last other upload of these bytes cannot remove them in between.
  std::lock_guard refs(blobs.refs_mutex());
  try {
    if (!final_dir.empty() && !fs::exists(final_dir)) {
      fs::create_directories(models_dir);
      std::error_code ec;
      fs::rename(extracted_root, final_dir, ec);
      if (ec == std::errc::no_space_on_device) throw StorageFull("the disk is full: cannot move the extracted model into place");
      if (ec && !fs::exists(final_dir)) throw StorageError("cannot move the extracted model into " + final_dir + ": " + ec.message());
      created_model_dir = !ec;
    }
    if (converted) {
      blobs.adopt(converted->temp_path(), u.sha256);
      converted->release();
    } else {
      blobs.adopt(sink->temp_path(), u.sha256);
      sink->release();
    }
    if (commit) commit(u);
  } catch (...) {
    std::error_code ec;
    if (created_model_dir) fs::remove_all(final_dir, ec);
    throw;
  }
  return u;
}

}  // namespace tsm::server
