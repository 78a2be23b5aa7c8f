// MetadataStore on one SQLite database file (WAL journal, synchronous=NORMAL, foreign keys on).
// Invariant: the schema version in `schema_migrations` equals the number of applied migrations;
// opening a database runs the missing migrations in order, each in its own transaction.
// The queue's leases use this host's clock (one process: one clock).
// One connection guarded by a mutex: statements are short point reads/writes, prepared once and
// cached by SQL text.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

struct sqlite3;

namespace tsm::server {

class SqliteStore : public MetadataStore {
 public:
  /// Opens (creates) `path` and migrates it. Throws tsm::Error naming the path on failure.
  explicit SqliteStore(const std::string& path);
  ~SqliteStore() override;

  void insert_upload(const UploadRecord& u) override;
  std::optional<UploadRecord> get_upload(const std::string& id) override;
  bool delete_upload(const std::string& id) override;
  int64_t blob_refs(const std::string& sha256) override;

  void insert_job(JobRecord& j) override;
  std::optional<JobRecord> get_job(const std::string& id) override;
  std::vector<JobRecord> list_jobs(const JobFilter& f) override;
  void update_job(const JobRecord& j) override;
  int requeue_running() override;
  std::vector<JobRecord> queued_jobs() override;
  std::map<std::string, int64_t> count_jobs_by_state() override;

  void insert_artifact(const ArtifactRecord& a) override;
  std::optional<ArtifactRecord> get_artifact(const std::string& sha256) override;

  void insert_model_version(ModelVersion& v) override;
  std::vector<std::string> list_models() override;
  std::vector<ModelVersion> model_versions(const std::string& model) override;

  void insert_report(ReportRecord& r) override;
  std::vector<ReportRecord> list_reports(const ReportFilter& f) override;

  int schema_version() override;

  std::optional<JobRecord> claim_job(const std::string& worker, double lease_s, int max_attempts,
                                     ClaimOutcome& out) override;
  LeaseState heartbeat(const std::string& id, const std::string& worker, int attempt, double lease_s,
                       double progress) override;
  bool finish_job(const JobRecord& j, const ArtifactRecord* artifact, ModelVersion* version) override;
  bool release_job(const std::string& id, const std::string& worker, int attempt) override;
  bool cancel_queued(const std::string& id, const std::string& error, int64_t finished_unix) override;
  bool request_cancel(const std::string& id) override;
  int64_t queued_count() override;
  std::string describe() const override { return "sqlite:" + path_; }

  /// The migrations in order (exposed for tests).
  static int latest_schema_version();

  struct StmtCache;
  class Tx;

 private:
  void close() noexcept;  ///< finalizes the statements, then closes the connection
  void exec(const char* sql);
  void migrate();
  std::mutex mu_;
  std::unique_ptr<StmtCache> cache_;  ///< finalized before sqlite3_close
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace tsm::server
