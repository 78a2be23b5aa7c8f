// The metadata store: uploads, jobs (the durable queue), artifacts, model versions, device reports.
// Invariant: every write is one transaction; a job's state only moves queued -> running ->
// succeeded | failed | canceled (or running -> queued at start-up / shutdown). Narrow on purpose:
// plain records in, plain records out, so a PostgreSQL implementation can follow (SqliteStore today).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "job.pb.h"

namespace tsm::server {

struct UploadRecord {
  std::string id;            ///< "u_" + 16 hex
  std::string sha256;        ///< content address of the stored body (blob store key)
  std::string format;        ///< npy | safetensors | tar | raw | json
  std::string name;          ///< client-given name (validated: no path separators)
  uint64_t size_bytes = 0;
  std::string tensors_json;  ///< JSON array of {name, dtype, shape}
  int64_t created_unix = 0;
};

struct JobRecord {
  std::string id;            ///< "j_" + 16 hex
  int64_t seq = 0;           ///< insertion order (cursor for pagination); set by the store
  std::string upload;
  std::string method;
  std::string spec_pb;       ///< the accepted request: a serialized tensorslm.v1.JobSpec (proto/job.proto)
  std::string resolved_pb;   ///< what the worker runs: a serialized tensorslm.v1.ResolvedJob (empty: resolve at run time)
  int priority = 0;          ///< higher runs first
  tensorslm::v1::JobState state = tensorslm::v1::QUEUED;  ///< stored by name (queued, running, ...)
  double progress = 0;       ///< 0..1
  std::string error;         ///< for failed jobs: what went wrong and what to do
  std::string result_json;   ///< for succeeded (and gate-failed) jobs: {artifact, metrics, tensors...}
  std::string timings_json;  ///< {queued_s, load_s, compress_s, store_s, total_s}
  int attempts = 0;          ///< how many times a worker started it
  int64_t created_unix = 0, started_unix = 0, finished_unix = 0;
};

struct JobFilter {
  std::optional<tensorslm::v1::JobState> state;
  std::string method, upload;
  int64_t after_seq = 0;     ///< cursor: only jobs with seq > after_seq
  int limit = 50;
};

struct ArtifactRecord {
  std::string sha256;        ///< also the artifact id and ETag
  uint64_t size_bytes = 0;
  std::string job_id, method;
  int64_t created_unix = 0;
};

struct ModelVersion {
  std::string model, tag, artifact_sha256, job_id;
  uint64_t size_bytes = 0;
  int64_t seq = 0;           ///< set by the store; latest = highest seq
  int64_t created_unix = 0;
};

struct ReportRecord {
  int64_t id = 0;            ///< set by the store
  std::string device, model, tag, artifact_sha256;
  int64_t created_unix = 0;
  std::string report_json;   ///< DeviceReport in its proto3 JSON form
};

struct ReportFilter {
  std::string device, model, tag;
  int64_t since_unix = 0, until_unix = 0;  ///< 0 = unbounded
  int limit = 100;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  virtual void insert_upload(const UploadRecord& u) = 0;
  virtual std::optional<UploadRecord> get_upload(const std::string& id) = 0;
  /// Removes the row; returns false when absent.
  virtual bool delete_upload(const std::string& id) = 0;
  /// How many uploads and artifacts reference blob `sha256` (blob garbage collection).
  virtual int64_t blob_refs(const std::string& sha256) = 0;

  virtual void insert_job(JobRecord& j) = 0;  ///< sets j.seq
  virtual std::optional<JobRecord> get_job(const std::string& id) = 0;
  virtual std::vector<JobRecord> list_jobs(const JobFilter& f) = 0;
  /// Writes state, progress, error, result, timings, attempts and the timestamps of `j`.
  virtual void update_job(const JobRecord& j) = 0;
  /// Start-up recovery: running -> queued, and the model versions those jobs had published before
  /// they could record their end are removed (the rerun publishes again), in one transaction.
  /// Returns how many jobs were moved.
  virtual int requeue_running() = 0;
  /// Every queued job (start-up: refill the in-memory queue).
  virtual std::vector<JobRecord> queued_jobs() = 0;
  virtual std::map<std::string, int64_t> count_jobs_by_state() = 0;

  virtual void insert_artifact(const ArtifactRecord& a) = 0;  ///< idempotent (content-addressed)
  virtual std::optional<ArtifactRecord> get_artifact(const std::string& sha256) = 0;

  virtual void insert_model_version(ModelVersion& v) = 0;  ///< sets v.seq
  virtual std::vector<std::string> list_models() = 0;
  /// Versions of `model`, newest first.
  virtual std::vector<ModelVersion> model_versions(const std::string& model) = 0;

  virtual void insert_report(ReportRecord& r) = 0;  ///< sets r.id
  virtual std::vector<ReportRecord> list_reports(const ReportFilter& f) = 0;

  virtual int schema_version() = 0;
};

}  // namespace tsm::server
