// The metadata store: uploads, jobs (the durable queue), artifacts, model versions, device reports.
// Invariant: every write is one transaction; a job's state only moves queued -> running ->
// succeeded | failed | canceled (or running -> queued at start-up / shutdown, or when a lease
// expires). Narrow on purpose: plain records in, plain records out. Two implementations share the
// job runner: SqliteStore (one process) and PostgresStore (many API and worker processes).
// The queue: a worker claims a job (state running, locked_by = the worker, lease_until = now +
// lease), extends the lease by heartbeats, and ends it with finish_job, which writes the result,
// the artifact row and the model-version publish in one transaction, and only while the worker
// still holds the lease (same locked_by and attempt). A running job whose lease expired is taken
// over by the next claim (attempts + 1), or failed once it has used max_attempts.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "job.pb.h"
#include "store/storage_error.h"

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
  std::string locked_by;     ///< the worker holding the lease while running ("" otherwise)
  double lease_until = 0;    ///< unix seconds (the database's clock) the lease runs to; 0 when not running
  bool cancel_requested = false;  ///< DELETE reached a running job; its worker stops it
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

/// What one claim found besides the job it returned.
struct ClaimOutcome {
  bool takeover = false;                 ///< the returned job's previous lease had expired
  std::vector<std::string> exhausted;    ///< expired jobs that had used max_attempts: now failed
};

/// The answer to a heartbeat.
enum class LeaseState { Held, CancelRequested, Lost };

/// Events a shared store delivers from other processes (PostgreSQL LISTEN/NOTIFY).
enum class StoreEvent {
  Submitted,  ///< a job was queued (wake idle workers)
  Done,       ///< job `id` ended (wake ?wait long polls)
  Cancel,     ///< DELETE of running job `id` (stop it if it runs here)
  Resync,     ///< the event connection was re-established: events may have been missed
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

  // --- the queue (see the header comment) ---
  /// Claims the runnable job first in order (priority desc, then seq): a queued one, or a running
  /// one whose lease expired (attempts kept and incremented). Before that, expired jobs with
  /// attempts >= max_attempts become failed (listed in `out.exhausted`). Sets state running,
  /// locked_by, lease_until = now + lease_s, attempts + 1, progress 0, started_unix.
  virtual std::optional<JobRecord> claim_job(const std::string& worker, double lease_s, int max_attempts,
                                             ClaimOutcome& out) = 0;
  /// Extends the lease of job `id` held by (`worker`, `attempt`) and records its progress.
  virtual LeaseState heartbeat(const std::string& id, const std::string& worker, int attempt, double lease_s,
                               double progress) = 0;
  /// The job's end, in one transaction: the artifact row (idempotent) when given, the model version
  /// when given (sets v->seq), then state, progress, error, result, timings, finished_unix of `j`;
  /// only while (j.locked_by, j.attempts) still holds the lease of a running job. False (nothing
  /// written) when the lease was lost.
  virtual bool finish_job(const JobRecord& j, const ArtifactRecord* artifact, ModelVersion* version) = 0;
  /// Shutdown checkpoint: the lease holder's running job goes back to queued. False when not held.
  virtual bool release_job(const std::string& id, const std::string& worker, int attempt) = 0;
  /// queued -> canceled with `error`; false when the job was not queued.
  virtual bool cancel_queued(const std::string& id, const std::string& error, int64_t finished_unix) = 0;
  /// Marks running job `id` cancel_requested (its worker is told); false when it is not running.
  virtual bool request_cancel(const std::string& id) = 0;
  virtual int64_t queued_count() = 0;

  /// True when other processes share this store (no start-up requeue: leases recover jobs).
  virtual bool shared() const { return false; }
  /// Events from other processes; a store without them never calls `handler`.
  virtual void on_event(std::function<void(StoreEvent, const std::string& id)> handler) { (void)handler; }
  /// False while the database cannot be reached: asks the database now (may block on it).
  virtual bool reachable() { return true; }
  /// What the store's own background check last saw (a shared store: its event thread, at most
  /// ~1 s old), for the I/O threads (/readyz): never blocks on a database. Embedded stores answer
  /// from reachable() and schema_version() themselves.
  struct Health {
    bool up = true;
    int schema_version = 0;
  };
  virtual Health health() { return {reachable(), schema_version()}; }
  /// Where the store is, safe to log (no password).
  virtual std::string describe() const = 0;
};

}  // namespace tsm::server
