// Fuzz target: upload ingest (server/uploads/upload_ingest ingest_upload), as POST /v1/uploads runs
// it with the server's default limits (Config's tar_max_*): the input is the upload body, its
// format detected from the content (tar / tar.gz / other compressed tar -> extraction within
// TarLimits, then the HF model directory and its config.json against the weights; npy,
// safetensors and JSON arrays too). Blob store and model directories live in a scratch directory
// and are emptied after each input. Documented errors: tsm::Error subclasses and HttpError (413).
#include <filesystem>

#include "common/error.h"
#include "config/config.h"
#include "fuzz_util.h"
#include "http/problem.h"
#include "store/blob_store.h"
#include "uploads/upload_ingest.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  using namespace tsm::server;
  static const std::string root = fuzz::scratch_dir("tar_ingest");
  static BlobStore blobs(root + "/store");
  static const std::string models = root + "/models";
  static const Config cfg;
  IngestOptions opt;
  opt.durable = false;
  opt.tar = {cfg.effective_tar_max_extracted_bytes(), cfg.effective_tar_max_member_bytes(),
             static_cast<uint64_t>(cfg.tar_max_members), cfg.tar_max_ratio};
  try {
    auto sink = std::make_shared<BlobSink>(blobs.tmp_dir());
    sink->write(data, size);
    UploadRecord u = ingest_upload(sink, opt, blobs, models);
    if (u.sha256.size() != 64 || u.tensors_json.empty()) fuzz::finding("tar_ingest: accepted upload without sha256 or tensors");
    if (u.format == "tar" && !fs::is_directory(models + "/" + u.sha256)) fuzz::finding("tar_ingest: accepted tar without its model directory");
    blobs.remove(u.sha256);
  } catch (const Error&) {
  } catch (const HttpError& e) {
    if (e.status != http::status::payload_too_large && e.status != http::status::bad_request &&
        e.status != http::status::unprocessable_entity)
      fuzz::finding(std::string("tar_ingest: unexpected HttpError ") + std::to_string(int(e.status)) + ": " + e.what());
  }
  std::error_code ec;
  fs::remove_all(models, ec);
  for (const auto& e : fs::directory_iterator(blobs.tmp_dir(), ec)) fs::remove_all(e.path(), ec);
  return 0;
}
