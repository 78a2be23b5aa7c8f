// Validation of a streamed upload before it is accepted: format from the content's magic bytes
// (?format= or Content-Type may state it; a contradiction is an error), then a full check of that
// format (npy header vs size, safetensors header vs data, tar -> HF model directory within extraction
// limits and with its config.json checked against the weights, raw dtype x shape, JSON arrays) and a
// scan for NaN/Inf in every floating tensor. Runs on the blocking pool.
// Invariant: on any throw nothing is left behind (the sink removes its temp file, extraction dirs are
// removed, models_dir/<sha> appears only once the upload is accepted).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

/// Bounds of one tar upload's extraction (Config::tar_max_*; the effective values, no 0s). The
/// ratio compares the bytes extracted with the compressed bytes read, as the archive streams:
/// over the whole archive and within each member, with one read block (kTarReadBlock) of slack so
/// that small archives and read-ahead never trip it. A bomb stops after about max_ratio x 64 KiB.
struct TarLimits {
  uint64_t max_extracted_bytes = uint64_t(16) << 30;  ///< all members together
  uint64_t max_member_bytes = uint64_t(16) << 30;     ///< one member
  uint64_t max_members = 10000;                       ///< entries (files and directories)
  double max_ratio = 200;                             ///< extracted / compressed bytes
};
constexpr size_t kTarReadBlock = 64 << 10;            ///< bytes libarchive reads from the upload at a time

struct IngestOptions {
  std::string declared_format;   ///< from ?format= or Content-Type; empty = detect
  std::string name;              ///< ?name= (validated)
  std::string dtype, shape;      ///< raw uploads: ?dtype=f32&shape=50257,768
  bool durable = true;           ///< fsync the body before it is accepted (Config::fsync_uploads)
  TarLimits tar;                 ///< extraction bounds of a tar upload
};

/// Finishes the sink, validates, moves the blob into the store (and extracts a model tar under
/// models_dir/<sha>, within opt.tar, and checks its config.json against its weights), and returns the
/// record to insert (id not set). Throws the core error types the HTTP edge maps (http/problem.h
/// problem_for): OptionError 400, UnsupportedFormat 415, FormatError 422 (with details: the tensor and
/// its NaN/Inf counts, a tar entry, the format read, the config.json field that contradicts the
/// weights); and HttpError 413 for a tar past a TarLimits bound (details: limit = the config key,
/// max, entry when one member is at fault, extracted_bytes); StorageFull (507) when the disk is full.
/// `commit` (when set) runs once the blob (and model directory) are in place, under
/// BlobStore::refs_mutex(): the caller inserts the row there, so that no DELETE of another upload of
/// the same bytes removes them in between. When it throws, the model directory this ingest created is
/// removed again (the blob is the caller's to remove when no row references it) and the error passes.
UploadRecord ingest_upload(std::shared_ptr<BlobSink> sink, const IngestOptions& opt, BlobStore& blobs,
                           const std::string& models_dir, const std::function<void(UploadRecord&)>& commit = {});

/// The format a Content-Type names ("" when it names none).
std::string format_from_content_type(const std::string& content_type);

}  // namespace tsm::server
