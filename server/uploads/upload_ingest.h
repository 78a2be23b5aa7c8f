// Validation of a streamed upload before it is accepted: format from the content's magic bytes
// (?format= or Content-Type may state it; a contradiction is an error), then a full check of that
// format (npy header vs size, safetensors header vs data, tar -> HF model directory, raw dtype x shape,
// JSON arrays) and a scan for NaN/Inf in every floating tensor. Runs on the blocking pool.
// Invariant: on any throw nothing is left behind (the sink removes its temp file, extraction dirs are removed).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

struct IngestOptions {
  std::string declared_format;   ///< from ?format= or Content-Type; empty = detect
  std::string name;              ///< ?name= (validated)
  std::string dtype, shape;      ///< raw uploads: ?dtype=f32&shape=50257,768
  bool durable = true;           ///< fsync the body before it is accepted (Config::fsync_uploads)
};

/// Finishes the sink, validates, moves the blob into the store (and extracts a model tar under
/// models_dir/<sha>), and returns the record to insert (id not set). Throws the core error types the HTTP
/// edge maps (http/problem.h problem_for): OptionError 400, UnsupportedFormat 415, FormatError 422
/// (with details: the tensor and its NaN/Inf counts, a tar entry, the format read).
UploadRecord ingest_upload(std::shared_ptr<BlobSink> sink, const IngestOptions& opt, BlobStore& blobs,
                           const std::string& models_dir);

/// The format a Content-Type names ("" when it names none).
std::string format_from_content_type(const std::string& content_type);

}  // namespace tsm::server
